//! The tuned shoot-out's sections ([`crate::shootout`]), one per workload of a file: how each
//! optimizer's learning rate was chosen, the best metric so far against steps and against
//! training time (the mean over seeds, with a band from the worst seed to the best), and a table
//! of the final metric, the time per step and the optimizer's state.

use super::figures::{Band, draw_bands};
use super::tables::{cell, distinct, marked, slug};
use super::{Report, Source};
use crate::schema::Record;
use crate::shootout::{RUN, TUNE, Workload};
use adamlab_optim::{OptimizerSpec, Value};
use std::fmt::Write as _;

/// How a workload's metric reads.
#[derive(Debug, Clone, Copy)]
struct Reading {
    higher_is_better: bool,
    /// Shown as a percentage (an accuracy).
    percent: bool,
    /// Drawn on a log scale (a distance that shrinks by orders of magnitude).
    log: bool,
}

impl Reading {
    fn of(model: &str, name: &str) -> Self {
        let higher_is_better = Workload::parse(model).map_or(name.contains("accuracy"), |w| w.metric().higher_is_better);
        Self {
            higher_is_better,
            percent: name.contains("accuracy"),
            log: name.contains("distance"),
        }
    }

    fn show(self, value: f64) -> f64 {
        if self.percent { 100.0 * value } else { value }
    }

    fn format(self, value: f64) -> String {
        if self.percent {
            format!("{:.2} %", 100.0 * value)
        } else if value == 0.0 {
            "0".into()
        } else if value.abs() < 1e-3 {
            format!("{value:.2e}")
        } else {
            format!("{value:.4}")
        }
    }

    fn better(self, a: f64, b: f64) -> bool {
        if self.higher_is_better { a > b } else { a < b }
    }

    /// The best of `values` so far, at each position.
    fn best_so_far(self, values: &[f64]) -> Vec<f64> {
        let mut best = Vec::with_capacity(values.len());
        for &v in values {
            let b = match best.last() {
                Some(&last) if !self.better(v, last) => last,
                _ => v,
            };
            best.push(b);
        }
        best
    }
}

/// One optimizer's runs at its tuned rate, one curve per seed that did not diverge.
struct Runs<'a> {
    optimizer: &'a str,
    lr: Option<f64>,
    /// Per seed: (step, metric, training seconds), in order of steps.
    curves: Vec<Vec<(u64, f64, f64)>>,
    seeds: usize,
    diverged: usize,
    step_ms: Vec<f64>,
    state_bytes: Option<u64>,
}

impl Report {
    pub(super) fn tuned_shootout_section(&mut self, source: &Source, records: &[&Record]) -> Result<(), crate::BenchError> {
        let model_of = |r: &Record| r.model.clone().unwrap_or_else(|| "?".into());
        let models: Vec<String> = distinct(records.iter().map(|r| r.model.as_deref().unwrap_or("?")))
            .into_iter()
            .map(String::from)
            .collect();
        for model in models {
            let rows: Vec<&Record> = records.iter().copied().filter(|r| model_of(r) == model).collect();
            self.workload_section(source, &model, &rows)?;
        }
        Ok(())
    }

    fn workload_section(&mut self, source: &Source, model: &str, rows: &[&Record]) -> Result<(), crate::BenchError> {
        let name = rows.iter().find_map(|r| r.metric_name.clone()).unwrap_or_else(|| "metric".into());
        let reading = Reading::of(model, &name);
        let _ = writeln!(self.markdown, "## Optimizer shoot-out: {} (`{}`)\n", cell(model), source.path.display());
        source.busy_warning(&mut self.markdown);
        let tune: Vec<&Record> = rows.iter().copied().filter(|r| r.phase.as_deref() == Some(TUNE)).collect();
        let run: Vec<&Record> = rows.iter().copied().filter(|r| r.phase.as_deref() == Some(RUN)).collect();
        let optimizers = distinct(rows.iter().map(|r| r.optimizer.as_deref().unwrap_or("—")));
        let tune_steps = tune.iter().filter(|r| r.note.is_none()).filter_map(|r| r.step).max().unwrap_or(0);
        let run_steps = run.iter().filter_map(|r| r.step).max().unwrap_or(0);
        let seeds = distinct_u64(run.iter().filter_map(|r| r.seed));
        let tune_seed = tune.iter().find_map(|r| r.seed);
        let backends = distinct(rows.iter().map(|r| r.backend.as_str()));
        let (scored, reported) = match Workload::parse(model) {
            Some(w) if w.is_deterministic() => ("", ""),
            Some(Workload::CharGpt) => (
                " on the first half of the validation text",
                " on the second half of the validation text",
            ),
            _ => (
                " on the validation split (the last tenth of the training images, not trained on)",
                " on the test set",
            ),
        };
        let seeds = match seeds.as_slice() {
            [one] => format!("with seed {one}"),
            many => format!("for each of the seeds {}", many.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
        };
        let tuning = if tune.is_empty() {
            // `--lr-grid` of one rate: nothing was tuned.
            "Each optimizer ran at the learning rate given (no tuning: a grid of one rate); it".to_string()
        } else {
            format!(
                "Each optimizer trained {tune_steps} steps at every learning rate of its grid{} and \
                 was scored by its {}{scored}; the best rate then",
                tune_seed.map_or(String::new(), |s| format!(" (seed {s})")),
                cell(&name),
            )
        };
        let _ = writeln!(
            self.markdown,
            "{tuning} trained {run_steps} steps {seeds}, evaluated{reported} as it went. Time is \
             training time: the evaluations are not counted. {}\n",
            source.markdown_caption(&backends),
        );
        let mut groups: Vec<Runs> = optimizers.iter().map(|o| runs(o, &run)).collect();
        groups.sort_by(|a, b| ranking(reading, a.final_mean(), b.final_mean()));
        if !tune.is_empty() {
            self.tuning_table(&optimizers, &tune, reading);
        }
        let caption = source.caption(&backends);
        let label = |g: &Runs| g.tuned_spec();
        // The figures draw the best few, from the first evaluation after the start (the initial
        // weights' metric would squash every curve against one end of the axis); the table has all.
        let drawn = &groups[..groups.len().min(MOST_DRAWN)];
        let bands = |x: &dyn Fn(&(u64, f64, f64)) -> f64| -> Vec<Band> {
            drawn
                .iter()
                .filter_map(|g| band(g, reading, x).map(|points| Band { label: label(g), points }))
                .collect()
        };
        let (by_step, by_time) = (bands(&|p| p.0 as f64), bands(&|p| p.2));
        let y_desc = format!("best {name} so far{}", if reading.percent { " (%)" } else { "" });
        if !by_step.is_empty() {
            let stem = format!("shootout-{}-step", slug(model));
            let which = if drawn.len() < groups.len() {
                format!(" (the {} best of {})", drawn.len(), groups.len())
            } else {
                String::new()
            };
            let title = format!("{model}: best {name} so far against steps{which}");
            self.figure(&stem, &title, |svg| {
                draw_bands(svg, &title, ("optimizer steps", &y_desc), reading.log, reading.higher_is_better, &by_step, &caption)
            })?;
            let stem = format!("shootout-{}-time", slug(model));
            let title = format!("{model}: best {name} so far against training time{which}");
            self.figure(&stem, &title, |svg| {
                draw_bands(svg, &title, ("training time (s)", &y_desc), reading.log, reading.higher_is_better, &by_time, &caption)
            })?;
        }
        self.final_table(source, &groups, &name, reading);
        Ok(())
    }

    /// Every rate each optimizer tried and its validation score; the chosen one in bold, and a
    /// warning where it is at an end of the grid (the best rate may lie beyond it).
    fn tuning_table(&mut self, optimizers: &[&str], tune: &[&Record], reading: Reading) {
        let md = &mut self.markdown;
        let _ = writeln!(md, "| optimizer | learning rates tried: validation score (chosen in bold) |");
        let _ = writeln!(md, "|---|---|");
        for optimizer in optimizers {
            let tried: Vec<&&Record> = tune.iter().filter(|r| r.optimizer.as_deref() == Some(optimizer)).collect();
            if tried.is_empty() {
                continue;
            }
            let scores: Vec<Option<f64>> = tried.iter().map(|r| r.metric).collect();
            let best = scores
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|s| (i, s)))
                .fold(None, |best: Option<(usize, f64)>, (i, s)| match best {
                    Some((_, b)) if !reading.better(s, b) => best,
                    _ => Some((i, s)),
                })
                .map(|(i, _)| i);
            let cells: Vec<String> = tried
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let lr = r.lr.map_or("—".into(), |x| format!("{x}"));
                    let score = match (r.metric, &r.note) {
                        (Some(m), _) => reading.format(m),
                        (None, Some(note)) if note.starts_with("diverged") => "diverged".into(),
                        (None, Some(note)) => cell(note),
                        (None, None) => "—".into(),
                    };
                    if Some(i) == best { format!("**{lr}: {score}**") } else { format!("{lr}: {score}") }
                })
                .collect();
            let edge = match best {
                Some(i) if tried.len() > 1 && (i == 0 || i + 1 == tried.len()) => " ⚠ at the grid's edge",
                _ => "",
            };
            let _ = writeln!(md, "| `{}` | {}{edge} |", cell(optimizer), cells.join(" · "));
        }
        let _ = writeln!(md);
    }

    /// The runs at the tuned rate, best final metric first.
    fn final_table(&mut self, source: &Source, groups: &[Runs], name: &str, reading: Reading) {
        let busy = source.busy.any();
        let md = &mut self.markdown;
        let _ = writeln!(
            md,
            "| optimizer, at its tuned rate | lr | final {0}, mean ± sd over seeds | best {0} so far, mean | diverged | ms per step | optimizer state |",
            cell(name)
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for g in groups {
            let (final_mean, values) = (g.final_mean(), g.finals());
            let spread = match (final_mean, sd(&values)) {
                (Some(m), Some(s)) if reading.percent => format!("{:.2} ± {:.2} %", 100.0 * m, 100.0 * s),
                (Some(m), Some(s)) => format!("{} ± {}", reading.format(m), reading.format(s)),
                (Some(m), None) => reading.format(m),
                (None, _) => "—".into(),
            };
            let bests: Vec<f64> = g.curves.iter().map(|c| {
                let metrics: Vec<f64> = c.iter().map(|p| p.1).collect();
                reading.best_so_far(&metrics).last().copied().unwrap_or(f64::NAN)
            }).collect();
            let step_ms = crate::stats::Summary::of(&g.step_ms).map_or("—".into(), |s| super::fmt_ms(s.median));
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {}/{} | {} | {} |",
                cell(g.tuned_spec()),
                g.lr.map_or("—".into(), |x| format!("{x}")),
                spread,
                mean(&bests).map_or("—".into(), |m| reading.format(m)),
                g.diverged,
                g.seeds,
                marked(step_ms, busy),
                g.state_bytes.map_or("—".into(), fmt_bytes),
            );
        }
        let _ = writeln!(md);
    }
}

/// Curves drawn in a figure at the most: beyond ten, colours repeat and the legend hides them.
const MOST_DRAWN: usize = 10;

impl Runs<'_> {
    /// The metric at the end of each seed's run that did not diverge.
    fn finals(&self) -> Vec<f64> {
        self.curves.iter().filter_map(|c| c.last().map(|p| p.1)).collect()
    }

    /// The spec as it ran: its centre's `lr` replaced by the tuned one (`muon(lr=0.03)`, not the
    /// `muon(lr=0.01)` the grid was centred on).
    fn tuned_spec(&self) -> String {
        let tuned = OptimizerSpec::parse(self.optimizer)
            .ok()
            .zip(self.lr)
            .and_then(|(spec, lr)| spec.with("lr", Value::Number(lr)).ok());
        match tuned {
            Some(spec) => spec.to_string(),
            None => self.optimizer.to_string(),
        }
    }

    fn final_mean(&self) -> Option<f64> {
        mean(&self.finals())
    }
}

/// The better of two means first; one without a value (every seed diverged) last.
fn ranking(reading: Reading, a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match (a, b) {
        (Some(a), Some(b)) if reading.better(a, b) => Less,
        (Some(a), Some(b)) if reading.better(b, a) => Greater,
        (Some(_), None) => Less,
        (None, Some(_)) => Greater,
        _ => Equal,
    }
}

/// `optimizer`'s records at its tuned rate, grouped by seed.
fn runs<'a>(optimizer: &'a str, run: &[&'a Record]) -> Runs<'a> {
    let mine: Vec<&Record> = run.iter().copied().filter(|r| r.optimizer.as_deref() == Some(optimizer)).collect();
    let seeds = distinct_u64(mine.iter().filter_map(|r| r.seed));
    let mut curves = Vec::new();
    let mut diverged = 0;
    let mut step_ms = Vec::new();
    for &seed in &seeds {
        let of_seed: Vec<&&Record> = mine.iter().filter(|r| r.seed == Some(seed)).collect();
        if of_seed.iter().any(|r| r.metric.is_none()) {
            diverged += 1;
            continue;
        }
        let mut curve: Vec<(u64, f64, f64)> = of_seed
            .iter()
            .filter_map(|r| Some((r.step?, r.metric?, r.train_s.unwrap_or(0.0))))
            .collect();
        curve.sort_by_key(|p| p.0);
        if let Some(ms) = of_seed.iter().filter_map(|r| r.step.zip(r.median_ms)).max_by_key(|p| p.0).map(|p| p.1) {
            step_ms.push(ms);
        }
        curves.push(curve);
    }
    Runs {
        optimizer,
        lr: mine.iter().find_map(|r| r.lr),
        curves,
        seeds: seeds.len(),
        diverged,
        step_ms,
        state_bytes: mine.iter().find_map(|r| r.state_bytes),
    }
}

/// The band of `runs`' best-so-far curves against `x` (the step, or the training time), over the
/// steps every seed reached; `None` without a curve.
fn band(runs: &Runs, reading: Reading, x: &dyn Fn(&(u64, f64, f64)) -> f64) -> Option<Vec<(f64, f64, f64, f64)>> {
    let length = runs.curves.iter().map(Vec::len).min()?;
    if length == 0 {
        return None;
    }
    let bests: Vec<Vec<f64>> = runs
        .curves
        .iter()
        .map(|c| reading.best_so_far(&c.iter().map(|p| p.1).collect::<Vec<_>>()))
        .collect();
    // From the first evaluation after the start (see the figures).
    let first = usize::from(runs.curves.iter().all(|c| c[0].0 == 0) && length > 1);
    let points = (first..length)
        .map(|i| {
            let values: Vec<f64> = bests.iter().map(|b| reading.show(b[i])).collect();
            let xs: Vec<f64> = runs.curves.iter().map(|c| x(&c[i])).collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (mean(&xs).unwrap_or(0.0), mean(&values).unwrap_or(f64::NAN), lo, hi)
        })
        .collect();
    Some(points)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The sample standard deviation (n − 1); `None` below two values.
fn sd(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    (values.len() > 1).then(|| (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt())
}

fn distinct_u64(items: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Bytes in KiB or MiB.
fn fmt_bytes(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}
