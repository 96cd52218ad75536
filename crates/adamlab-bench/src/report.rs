//! `adamlab bench report`: bench files in, one Markdown report and its SVG figures (drawn with
//! plotters) out. Each file gets its own sections, so that every table, ratio and figure comes from
//! one run on one machine, and every figure names that machine, its backends and the command that
//! made it.

use crate::load::{self, Verdict};
use crate::schema::{Bench, BenchFile, Record};
use adamlab_data::paths;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the report goes.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The folder of the SVG figures (created if missing).
    pub out_dir: PathBuf,
    /// The Markdown file; its links to the figures are relative to its folder.
    pub markdown: PathBuf,
    /// The command that writes this report, quoted at its top.
    pub command: String,
    /// Markdown placed after the title: conditions of the run, caveats.
    pub preface: Option<String>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The Markdown file.
    pub markdown: PathBuf,
    /// Every figure.
    pub figures: Vec<PathBuf>,
}

/// One input: its path, as given, and its contents.
pub type Input = (PathBuf, BenchFile);

/// The name of the file, in the figures' folder, that lists what the last report wrote there: the
/// files a new report may replace without `--overwrite`.
pub const MANIFEST: &str = ".adamlab-report";

/// A report rendered in memory: every file it will write, named before anything is written.
#[derive(Debug, Clone)]
pub struct Rendered {
    out_dir: PathBuf,
    markdown: (PathBuf, String),
    figures: Vec<(PathBuf, String)>,
}

/// Every string of `file` on one line: control characters (a newline in a machine name, a label
/// or an optimizer spec) become spaces, so that no field can end a table row, a heading or a
/// caption early.
fn one_line(file: &BenchFile) -> BenchFile {
    fn clean(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) if text.chars().any(char::is_control) => {
                *text = one_line_text(text);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(clean),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(file).expect("bench files serialise");
    clean(&mut value);
    serde_json::from_value(value).expect("the same file, with other strings")
}

/// `text` with its control characters turned into spaces.
fn one_line_text(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// `text` as one Markdown table cell: `|` escaped (GFM reads `\|` as a pipe, in code spans too)
/// and backticks, which would end a code span, turned into quotes.
fn cell(text: impl std::fmt::Display) -> String {
    text.to_string().replace('|', "\\|").replace('`', "'")
}

/// Renders the Markdown report and its figures for `inputs`, writing nothing. Any field of the
/// files may hold any text: each table cell is escaped ([`cell`]) and every string is put on one
/// line first ([`one_line`]).
pub fn render(inputs: &[Input], options: &ReportOptions) -> Result<Rendered, crate::BenchError> {
    let cleaned: Vec<Input> = inputs.iter().map(|(path, file)| (path.clone(), one_line(file))).collect();
    let inputs = cleaned.as_slice();
    let md_dir = options
        .markdown
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut report = Report {
        out_dir: options.out_dir.clone(),
        link_prefix: link_prefix(&md_dir, &options.out_dir),
        markdown: String::new(),
        figures: Vec::new(),
        used_names: BTreeMap::new(),
    };
    report.title(inputs, options);
    for bench in [Bench::Step, Bench::Train, Bench::Optimizers] {
        for (path, file) in inputs {
            let records: Vec<&Record> = file.records.iter().filter(|r| r.bench == bench).collect();
            if records.is_empty() {
                continue;
            }
            let source = Source { path, file, busy: Busy::of(file) };
            match bench {
                Bench::Step => report.step_section(&source, &records)?,
                Bench::Train => report.train_section(&source, &records)?,
                Bench::Optimizers => report.shootout_section(&source, &records)?,
                Bench::Triad => {}
            }
        }
    }
    Ok(Rendered {
        out_dir: options.out_dir.clone(),
        markdown: (options.markdown.clone(), report.markdown),
        figures: report.figures,
    })
}

impl Rendered {
    /// Every file [`write`](Self::write) would write: the Markdown first, then the figures.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.markdown.0.as_path()).chain(self.figures.iter().map(|(p, _)| p.as_path()))
    }

    /// Writes the report. Without `overwrite`, it refuses (writing nothing) when the figures'
    /// folder holds a file that the last report there did not write (its [`MANIFEST`] lists what
    /// it wrote), or when the Markdown file exists and that report did not write it. Figures of
    /// the last report that this one does not draw again are removed.
    pub fn write(&self, overwrite: bool) -> Result<Written, crate::BenchError> {
        let io = |path: &Path, e: std::io::Error| crate::BenchError::Report(format!("{}: {e}", path.display()));
        let manifest_path = self.out_dir.join(MANIFEST);
        let previous = read_manifest(&manifest_path).map_err(|e| io(&manifest_path, e))?;
        let ours = |path: &Path| previous.iter().any(|p| paths::same_file(p, path));
        if !overwrite {
            let mut foreign = Vec::new();
            if self.out_dir.exists() {
                let entries = std::fs::read_dir(&self.out_dir).map_err(|e| io(&self.out_dir, e))?;
                for entry in entries {
                    let path = entry.map_err(|e| io(&self.out_dir, e))?.path();
                    if path.file_name() != Some(MANIFEST.as_ref()) && !ours(&path) {
                        foreign.push(path);
                    }
                }
            }
            let markdown = &self.markdown.0;
            if markdown.exists() && !ours(markdown) && !foreign.iter().any(|p| paths::same_file(p, markdown)) {
                foreign.push(markdown.clone());
            }
            if !foreign.is_empty() {
                foreign.sort();
                let shown: Vec<String> = foreign.iter().take(3).map(|p| p.display().to_string()).collect();
                let more = foreign.len().saturating_sub(shown.len());
                return Err(crate::BenchError::Invalid(format!(
                    "{}{} not written by adamlab's last report there: give an empty or new --out \
                     folder and --markdown file, or --overwrite to replace them",
                    shown.join(", "),
                    if more > 0 { format!(" and {more} more file(s)") } else { String::new() },
                )));
            }
        }
        std::fs::create_dir_all(&self.out_dir).map_err(|e| io(&self.out_dir, e))?;
        if let Some(md_dir) = self.markdown.0.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(md_dir).map_err(|e| io(md_dir, e))?;
        }
        // The manifest first lists the union of the old and new files, so that a run killed midway
        // leaves nothing a later report would refuse as foreign.
        let new: Vec<PathBuf> = self.paths().map(paths::resolve).collect();
        let mut union = previous.clone();
        union.extend(new.iter().cloned());
        write_manifest(&manifest_path, &union).map_err(|e| io(&manifest_path, e))?;
        for (path, text) in std::iter::once(&self.markdown).chain(&self.figures) {
            std::fs::write(path, text).map_err(|e| io(path, e))?;
        }
        for old in &previous {
            let stale = !new.iter().any(|p| p == old) && old.parent() == Some(&paths::resolve(&self.out_dir));
            if stale && old.extension().is_some_and(|e| e == "svg") {
                let _ = std::fs::remove_file(old);
            }
        }
        write_manifest(&manifest_path, &new).map_err(|e| io(&manifest_path, e))?;
        Ok(Written {
            markdown: self.markdown.0.clone(),
            figures: self.figures.iter().map(|(p, _)| p.clone()).collect(),
        })
    }
}

/// The files a manifest lists, one resolved path a line; none when it does not exist.
fn read_manifest(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn write_manifest(path: &Path, files: &[PathBuf]) -> std::io::Result<()> {
    let mut text = String::new();
    for file in files {
        let _ = writeln!(text, "{}", file.display());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The path from the Markdown file's folder to the figures' folder, for links.
fn link_prefix(md_dir: &Path, out_dir: &Path) -> String {
    let (md, out) = (paths::resolve(md_dir), paths::resolve(out_dir));
    match out.strip_prefix(&md) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => out.display().to_string(),
    }
}

struct Source<'a> {
    path: &'a Path,
    file: &'a BenchFile,
    busy: Busy,
}

impl Source<'_> {
    /// The caption line every figure carries: machine, backends, command; and a warning when the
    /// machine was busy.
    fn caption(&self, backends: &[&str]) -> [String; 2] {
        let busy = if self.busy.any() { " · ⚠ BUSY MACHINE: not a result" } else { "" };
        [
            format!("{} · backends: {}{busy}", self.file.machine.summary(), backends.join(", ")),
            format!("$ {}", self.file.command),
        ]
    }

    /// A warning under a section's heading when the machine was busy during the run.
    fn busy_warning(&self, md: &mut String) {
        if let Verdict::Busy(sides) = load::verdict(&self.file.load) {
            let sides: Vec<String> = sides.iter().map(|side| side.describe()).collect();
            let _ = writeln!(
                md,
                "> **⚠ Busy machine.** {}. Other processes took more than {} of a core: the times \
                 marked \"{BUSY_MARK}\" below, and every ratio marked so, are not results.\n",
                sides.join("; "),
                load::BUSY_OTHER_CORES
            );
        }
    }

    fn markdown_caption(&self, backends: &[&str]) -> String {
        format!(
            "*Machine: {}. Backends: {}. Reproduce: `{}` (then `adamlab bench report`). Data: `{}`.*",
            self.file.machine.summary(),
            backends.join(", "),
            self.file.command,
            self.path.display()
        )
    }
}

struct Report {
    out_dir: PathBuf,
    link_prefix: String,
    markdown: String,
    figures: Vec<(PathBuf, String)>,
    used_names: BTreeMap<String, usize>,
}

type DrawResult = Result<(), Box<dyn Error>>;

impl Report {
    fn title(&mut self, inputs: &[Input], options: &ReportOptions) {
        let md = &mut self.markdown;
        let _ = writeln!(md, "# adamlab benchmarks\n");
        let _ = writeln!(
            md,
            "Generated by `{}` from the bench files below (schema `{}` version {}, described in \
             `docs/bench-schema.md`). Every figure names the command that measured it.\n",
            options.command,
            crate::schema::SCHEMA_NAME,
            crate::schema::SCHEMA_VERSION
        );
        if let Some(preface) = &options.preface {
            let _ = writeln!(md, "{}\n", preface.trim_end());
        }
        let _ = writeln!(md, "| file | command | machine | started (UTC) | load average | machine load | commit | burn | torch |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
        for (path, file) in inputs {
            let m = &file.machine;
            let _ = writeln!(
                md,
                "| `{}` | `{}` | {} | {} | {} | {} | {} | {} | {} |",
                cell(one_line_text(&path.display().to_string())),
                cell(&file.command),
                cell(m.summary()),
                cell(&m.started_at),
                m.load_average.map_or("—".into(), |[a, b, c]| format!("{a:.1} {b:.1} {c:.1}")),
                cell(load_cell(file)),
                cell(m.git_commit.as_deref().unwrap_or("—")),
                cell(&m.burn_version),
                cell(m.torch_version.as_deref().unwrap_or("—")),
            );
        }
        let _ = writeln!(md);
    }

    /// A figure file name not used yet in this report.
    fn figure_path(&mut self, stem: &str) -> (PathBuf, String) {
        let count = self.used_names.entry(stem.to_string()).or_insert(0);
        *count += 1;
        let name = if *count == 1 {
            format!("{stem}.svg")
        } else {
            format!("{stem}-{count}.svg")
        };
        let link = if self.link_prefix == "." {
            name.clone()
        } else {
            format!("{}/{name}", self.link_prefix)
        };
        (self.out_dir.join(&name), link)
    }

    fn figure(&mut self, stem: &str, alt: &str, draw: impl FnOnce(&mut String) -> DrawResult) -> Result<(), crate::BenchError> {
        let (path, link) = self.figure_path(stem);
        let mut svg = String::new();
        draw(&mut svg).map_err(|e| crate::BenchError::Report(format!("{}: {e}", path.display())))?;
        let _ = writeln!(self.markdown, "![{alt}]({link})\n");
        self.figures.push((path, svg));
        Ok(())
    }

    fn step_section(&mut self, source: &Source, records: &[&Record]) -> Result<(), crate::BenchError> {
        let _ = writeln!(self.markdown, "## Optimizer step (`{}`)\n", source.path.display());
        source.busy_warning(&mut self.markdown);
        let triad = source.file.records.iter().find(|r| r.bench == Bench::Triad);
        if let Some(t) = triad {
            let _ = writeln!(
                self.markdown,
                "Streaming bandwidth of this machine, measured in the same run (triad `a = b + s·c` \
                 over three {} MiB f32 arrays, {} threads): **{:.1} GB/s**, its fastest of {} \
                 repetitions ({}–{} ms). A step's bandwidth counts the least bytes it must move (read \
                 θ, g and every state tensor, write θ and the state: `docs/bench-schema.md`) over its \
                 median time; steps small enough to stay in cache can exceed the triad.\n",
                t.params.unwrap_or(0) * 4 / (1 << 20),
                source.file.machine.threads,
                t.bandwidth_gbps.unwrap_or(0.0),
                t.repeats.unwrap_or(0),
                fmt_ms(t.min_ms.unwrap_or(0.0)),
                fmt_ms(t.max_ms.unwrap_or(0.0)),
            );
        }
        let mut by_algorithm: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        for r in records {
            by_algorithm.entry(algorithm(r).to_lowercase()).or_default().push(r);
        }
        for rows in by_algorithm.values() {
            // burn spells some names its own way (Sgd, AdaGrad, RmsProp): the group is named as
            // the other implementations name it.
            let first = rows.iter().find(|r| !is_burn(r)).unwrap_or(&rows[0]);
            let algorithm = &algorithm(first);
            let _ = writeln!(self.markdown, "### {algorithm}\n");
            let backends = distinct(rows.iter().map(|r| r.backend.as_str()));
            let lines = step_lines(rows);
            let title = format!("One {algorithm} step: median time against parameters");
            let caption = source.caption(&backends);
            self.figure(&format!("step-{}", slug(algorithm)), &title, |svg| {
                draw_step_figure(svg, &title, &lines, &caption)
            })?;
            let _ = writeln!(self.markdown, "{}\n", source.markdown_caption(&backends));
            self.step_table(rows, source.busy);
            self.step_ratios(rows, source.busy);
        }
        Ok(())
    }

    fn step_table(&mut self, rows: &[&Record], busy: Busy) {
        let md = &mut self.markdown;
        let _ = writeln!(
            md,
            "| backend | optimizer | implementation | params | tensors | median ms | min–max ms | B/param | GB/s | of triad | extra MiB |"
        );
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            let _ = writeln!(
                md,
                "| {} | `{}` | {} | {} | {} | {} | {}–{} | {} | {} | {} | {} |",
                cell(&r.backend),
                cell(r.optimizer.as_deref().unwrap_or("—")),
                cell(r.implementation.as_deref().unwrap_or("—")),
                fmt_count(r.params),
                r.tensors.map_or("—".into(), |t| t.to_string()),
                marked(opt_ms(r.median_ms), busy.row(r)),
                opt_ms(r.min_ms),
                opt_ms(r.max_ms),
                r.bytes_per_param.map_or("—".into(), |b| b.to_string()),
                r.bandwidth_gbps.map_or("—".into(), |g| format!("{g:.2}")),
                r.bandwidth_fraction.map_or("—".into(), |f| format!("{:.0} %", f * 100.0)),
                r.step_extra_mib.map_or("—".into(), |m| format!("{m:.0}")),
            );
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "*extra MiB*: peak resident memory during the steps above what the process held just \
             before them, with parameters, gradients and state allocated (CPU backends; \
             `docs/bench-schema.md`). An in-place step allocates nothing per step.\n"
        );
    }

    /// Each adamlab or burn row against burn's row on the same backend and PyTorch's rows on the
    /// same kind of device ([`torch_counterpart`]), same size, same run: the ratio of medians
    /// (above 1: slower than the other).
    fn step_ratios(&mut self, rows: &[&Record], busy: Busy) {
        let torch_impls = distinct(
            rows.iter()
                .filter(|r| r.backend.starts_with("torch"))
                .filter_map(|r| r.implementation.as_deref()),
        );
        let ours: Vec<&&Record> = rows.iter().filter(|r| !r.backend.starts_with("torch")).collect();
        if ours.is_empty() || (torch_impls.is_empty() && !ours.iter().any(|r| is_burn(r))) {
            return;
        }
        let md = &mut self.markdown;
        let _ = write!(
            md,
            "Ratios of medians, same run, each against the same configuration (above 1: slower; \
             PyTorch on the CPU for the CPU backends, on CUDA for wgpu):\n\n\
             | backend | optimizer | implementation | params | median ms | ÷ burn |"
        );
        for t in &torch_impls {
            let _ = write!(md, " ÷ {} |", cell(t));
        }
        let _ = write!(md, "\n|---|---|---|---:|---:|---:|");
        for _ in &torch_impls {
            let _ = write!(md, "---:|");
        }
        let _ = writeln!(md);
        for r in ours {
            let config = configuration(r.optimizer.as_deref().unwrap_or(""));
            let same = |o: &&&Record| {
                o.params == r.params
                    && o.tensors == r.tensors
                    && configuration(o.optimizer.as_deref().unwrap_or("")) == config
            };
            let burn = rows
                .iter()
                .filter(same)
                .find(|o| o.backend == r.backend && is_burn(o))
                .and_then(|o| ratio(r.median_ms, o.median_ms));
            let _ = write!(
                md,
                "| {} | `{}` | {} | {} | {} | {} |",
                cell(&r.backend),
                cell(r.optimizer.as_deref().unwrap_or("—")),
                cell(r.implementation.as_deref().unwrap_or("—")),
                fmt_count(r.params),
                opt_ms(r.median_ms),
                if is_burn(r) { "1".into() } else { busy.ratio(burn, busy.adamlab) },
            );
            for t in &torch_impls {
                let value = rows
                    .iter()
                    .filter(same)
                    .find(|o| {
                        o.backend == torch_counterpart(&r.backend) && o.implementation.as_deref() == Some(t)
                    })
                    .and_then(|o| ratio(r.median_ms, o.median_ms));
                let _ = write!(md, " {} |", busy.ratio(value, busy.any()));
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
    }

    fn train_section(&mut self, source: &Source, records: &[&Record]) -> Result<(), crate::BenchError> {
        let _ = writeln!(self.markdown, "## Training throughput (`{}`)\n", source.path.display());
        source.busy_warning(&mut self.markdown);
        let mut by_model: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        for r in records {
            by_model.entry(r.model.clone().unwrap_or_default()).or_default().push(r);
        }
        for (model, rows) in &by_model {
            let _ = writeln!(self.markdown, "### {}\n", model.to_uppercase());
            let backends = distinct(rows.iter().map(|r| r.backend.as_str()));
            let caption = source.caption(&backends);
            let title = format!("{} training: images per second", model.to_uppercase());
            let bars: Vec<(String, u64, f64)> = rows
                .iter()
                .map(|r| (train_label(r), r.batch_size.unwrap_or(0), r.images_per_second.unwrap_or(0.0)))
                .collect();
            self.figure(&format!("train-{}-throughput", slug(model)), &title, |svg| {
                draw_throughput_figure(svg, &title, &bars, &caption)
            })?;
            let batch = split_batch(rows);
            let split: Vec<(String, [f64; 3])> = rows
                .iter()
                .filter(|r| r.batch_size == Some(batch))
                .map(|r| {
                    let phases = [r.forward_ms, r.backward_ms, r.step_ms].map(|p| p.unwrap_or(0.0));
                    (train_label(r), phases)
                })
                .collect();
            let title = format!("{} training step at batch {batch}: forward, backward, optimizer step", model.to_uppercase());
            self.figure(&format!("train-{}-split", slug(model)), &title, |svg| {
                draw_split_figure(svg, &title, &split, &caption)
            })?;
            let _ = writeln!(self.markdown, "{}\n", source.markdown_caption(&backends));
            let md = &mut self.markdown;
            let _ = writeln!(
                md,
                "| backend | optimizer | implementation | batch | images/s | step median (min–max) ms | forward ms | backward ms | optimizer ms | peak RSS MiB |"
            );
            let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
            for r in rows {
                let _ = writeln!(
                    md,
                    "| {} | `{}` | {} | {} | {} | {} ({}–{}) | {} | {} | {} | {} |",
                    cell(&r.backend),
                    cell(r.optimizer.as_deref().unwrap_or("—")),
                    cell(r.implementation.as_deref().unwrap_or("—")),
                    r.batch_size.map_or("—".into(), |b| b.to_string()),
                    marked(r.images_per_second.map_or("—".into(), |x| format!("{x:.0}")), source.busy.row(r)),
                    opt_ms(r.median_ms),
                    opt_ms(r.min_ms),
                    opt_ms(r.max_ms),
                    opt_ms(r.forward_ms),
                    opt_ms(r.backward_ms),
                    opt_ms(r.step_ms),
                    r.peak_rss_mib.map_or("—".into(), |m| format!("{m:.0}")),
                );
            }
            let _ = writeln!(md);
        }
        Ok(())
    }

    fn shootout_section(&mut self, source: &Source, records: &[&Record]) -> Result<(), crate::BenchError> {
        let _ = writeln!(self.markdown, "## Optimizer shoot-out (`{}`)\n", source.path.display());
        source.busy_warning(&mut self.markdown);
        let backends = distinct(records.iter().map(|r| r.backend.as_str()));
        let caption = source.caption(&backends);
        let mut series: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        for r in records.iter().filter(|r| r.test_accuracy.is_some()) {
            series.entry(shootout_label(r, &backends)).or_default().push(r);
        }
        let by_epoch: Vec<(String, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(label, rows)| {
                let points = rows.iter().map(|r| (r.epoch.unwrap_or(0) as f64, 100.0 * r.test_accuracy.unwrap_or(0.0)));
                (label.clone(), points.collect())
            })
            .collect();
        let by_time: Vec<(String, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(label, rows)| {
                let points = rows.iter().map(|r| (r.wall_s.unwrap_or(0.0), 100.0 * r.test_accuracy.unwrap_or(0.0)));
                (label.clone(), points.collect())
            })
            .collect();
        if !series.is_empty() {
            let title = "Test accuracy against epoch".to_string();
            self.figure("optimizers-accuracy-epoch", &title, |svg| {
                draw_curves(svg, &title, "epoch", &by_epoch, &caption)
            })?;
            let title = "Test accuracy against wall time".to_string();
            self.figure("optimizers-accuracy-time", &title, |svg| {
                draw_curves(svg, &title, "wall time since the run began (s)", &by_time, &caption)
            })?;
        }
        let _ = writeln!(self.markdown, "{}\n", source.markdown_caption(&backends));
        let md = &mut self.markdown;
        let _ = writeln!(md, "| optimizer | backend | lr | seed | epoch | test accuracy | test loss | train loss | images/s | wall s | note |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        let mut sorted: Vec<&&Record> = records.iter().collect();
        sorted.sort_by(|a, b| {
            let acc = |r: &Record| r.test_accuracy.unwrap_or(-1.0);
            acc(b).total_cmp(&acc(a))
        });
        for r in sorted {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(r.optimizer.as_deref().unwrap_or("—")),
                cell(&r.backend),
                r.lr.map_or("—".into(), |x| format!("{x}")),
                r.seed.map_or("—".into(), |s| s.to_string()),
                r.epoch.map_or("—".into(), |e| e.to_string()),
                r.test_accuracy.map_or("—".into(), |a| format!("{:.2} %", 100.0 * a)),
                r.test_loss.map_or("—".into(), |l| format!("{l:.4}")),
                r.train_loss.map_or("—".into(), |l| format!("{l:.4}")),
                marked(r.images_per_second.map_or("—".into(), |x| format!("{x:.0}")), source.busy.row(r)),
                marked(r.wall_s.map_or("—".into(), |w| format!("{w:.0}")), source.busy.row(r)),
                cell(r.note.as_deref().unwrap_or("")),
            );
        }
        let _ = writeln!(md);
        Ok(())
    }
}

/// The configuration a step row measures, the same for adamlab's fused and reference steps,
/// burn's twin and PyTorch's rows: the spec without the `burn-` prefix and without adamlab's
/// `fused` switch (`burn-adam(amsgrad=true)` and `adam(amsgrad=true, fused=false)` are both
/// `adam(amsgrad=true)`). Specs are compared as `OptimizerSpec` prints them.
pub fn configuration(optimizer: &str) -> String {
    let spec = optimizer.strip_prefix(crate::step::BURN_PREFIX).unwrap_or(optimizer);
    let (name, args) = match spec.split_once('(') {
        Some((name, args)) => (name, args.strip_suffix(')').unwrap_or(args)),
        None => (spec, ""),
    };
    // Splitting at every comma also splits tuples, whose pieces are kept as they were.
    let kept: Vec<&str> = args
        .split(',')
        .map(str::trim)
        .filter(|arg| !arg.is_empty() && arg.split('=').next().map(str::trim) != Some("fused"))
        .collect();
    if kept.is_empty() {
        name.to_string()
    } else {
        format!("{name}({})", kept.join(", "))
    }
}

/// The algorithm a record's optimizer implements, from its registry reference: the last path
/// segment of `torch.optim.Adam` or `burn::optim::Adam` (so that adamlab's, burn's and torch's
/// Adam share a figure), else the optimizer's name.
pub fn algorithm(record: &Record) -> String {
    let from_reference = record
        .reference
        .as_deref()
        .and_then(|r| r.split_whitespace().next())
        .filter(|path| path.contains('.') || path.contains("::"))
        .and_then(|path| path.rsplit(['.', ':']).next())
        .filter(|name| !name.is_empty());
    match from_reference {
        Some(name) => name.to_string(),
        None => record
            .optimizer
            .as_deref()
            .map(|o| o.split('(').next().unwrap_or(o).to_string())
            .unwrap_or_else(|| "optimizer".to_string()),
    }
}

/// The PyTorch rows a backend's rows are compared with: CUDA for wgpu, the CPU for the CPU
/// backends. wgpu on a software adapter has no counterpart (no `torch-cuda` rows there).
fn torch_counterpart(backend: &str) -> &'static str {
    if backend == "wgpu" { "torch-cuda" } else { "torch" }
}

/// What the files table says of a run's load ([`load::verdict`]).
fn load_cell(file: &BenchFile) -> String {
    match load::verdict(&file.load) {
        Verdict::NotRecorded => "load not recorded".into(),
        Verdict::Unknown => "load unknown (no /proc)".into(),
        Verdict::Quiet(cores) => format!("quiet (others ≤ {cores:.2} cores)"),
        Verdict::Busy(sides) => {
            let sides: Vec<String> = sides.iter().map(|side| side.describe()).collect();
            format!("**⚠ BUSY**: {}", sides.join("; "))
        }
    }
}

/// The mark on a time measured, or a ratio computed, while the machine was busy.
const BUSY_MARK: &str = "⚠ busy";

/// Which sides of a file's run were busy: their rows' times, and every ratio involving them, are
/// marked with [`BUSY_MARK`].
#[derive(Debug, Clone, Copy, Default)]
struct Busy {
    adamlab: bool,
    torch: bool,
}

impl Busy {
    fn of(file: &BenchFile) -> Self {
        let side = |name: &str| file.load.iter().any(|s| s.side == name && s.busy == Some(true));
        Self {
            adamlab: side(load::ADAMLAB),
            torch: side(load::TORCH),
        }
    }

    fn any(self) -> bool {
        self.adamlab || self.torch
    }

    /// Whether `r`'s own time was measured on a busy side.
    fn row(self, r: &Record) -> bool {
        if r.backend.starts_with("torch") { self.torch } else { self.adamlab }
    }

    /// A ratio cell, marked when `busy`.
    fn ratio(self, value: Option<f64>, busy: bool) -> String {
        value.map_or("—".into(), |x| marked(format!("{x:.2}"), busy))
    }
}

/// `text`, with [`BUSY_MARK`] after it when `busy` and there is a number to mark.
fn marked(text: String, busy: bool) -> String {
    if busy && text != "—" { format!("{text} {BUSY_MARK}") } else { text }
}

fn is_burn(record: &Record) -> bool {
    record.implementation.as_deref() == Some("burn")
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Distinct values in first-seen order.
fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn slug(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    s.trim_matches('-').to_string()
}

/// Milliseconds with three significant figures or so.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

fn opt_ms(ms: Option<f64>) -> String {
    ms.map_or("—".into(), fmt_ms)
}

/// A parameter count as `1e6`, or `2.5e6`.
pub fn fmt_count(count: Option<u64>) -> String {
    count.map_or("—".into(), |n| format!("{:e}", n as f64))
}

fn train_label(r: &Record) -> String {
    format!(
        "{} · {} · {}",
        r.backend,
        r.optimizer.as_deref().unwrap_or("?"),
        r.implementation.as_deref().unwrap_or("?")
    )
}

fn shootout_label(r: &Record, backends: &[&str]) -> String {
    let mut label = r.optimizer.clone().unwrap_or_default();
    if backends.len() > 1 {
        label = format!("{label} · {}", r.backend);
    }
    if let Some(seed) = r.seed {
        label = format!("{label} · seed {seed}");
    }
    label
}

/// The batch size whose split is drawn: 64 (the article's) when measured, else the largest.
fn split_batch(rows: &[&Record]) -> u64 {
    let sizes: Vec<u64> = rows.iter().filter_map(|r| r.batch_size).collect();
    if sizes.contains(&64) {
        64
    } else {
        sizes.into_iter().max().unwrap_or(0)
    }
}

/// One line of the step figure: label, whether it is PyTorch's (dashed), (params, ms) points.
struct Line {
    label: String,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

fn step_lines(rows: &[&Record]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for r in rows {
        let (Some(params), Some(ms)) = (r.params, r.median_ms) else { continue };
        let tensors = match r.tensors {
            Some(t) if t > 1 => format!(" · {t} tensors"),
            _ => String::new(),
        };
        let label = format!(
            "{} · {} · {}{tensors}",
            r.backend,
            r.optimizer.as_deref().unwrap_or("?"),
            r.implementation.as_deref().unwrap_or("?")
        );
        match lines.iter_mut().find(|l| l.label == label) {
            Some(line) => line.points.push((params as f64, ms)),
            None => lines.push(Line {
                label,
                dashed: r.backend.starts_with("torch"),
                points: vec![(params as f64, ms)],
            }),
        }
    }
    for line in &mut lines {
        line.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

const FONT: &str = "sans-serif";
const WIDTH: u32 = 960;
const FOOTER: u32 = 44;

fn color(i: usize) -> RGBColor {
    // Tableau 10, then repeated: distinct and legible on white.
    const COLORS: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = COLORS[i % COLORS.len()];
    RGBColor(r, g, b)
}

fn footer(area: &DrawingArea<SVGBackend, plotters::coord::Shift>, caption: &[String; 2]) -> DrawResult {
    let style = (FONT, 12).into_font().color(&RGBColor(80, 80, 80));
    area.draw_text(&caption[0], &style, (12, 6))?;
    area.draw_text(&caption[1], &style, (12, 24))?;
    Ok(())
}

/// Log-log median step time against parameters, one line per backend × optimizer ×
/// implementation; PyTorch's dashed.
fn draw_step_figure(svg: &mut String, title: &str, lines: &[Line], caption: &[String; 2]) -> DrawResult {
    let height = 520 + FOOTER;
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, footer_area) = root.split_vertically(height - FOOTER);
    let points = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((x0 / 1.5..x1 * 1.5).log_scale(), (y0 / 2.0..y1 * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("parameters (f32)")
        .y_desc("median step time (ms)")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_label_formatter(&|y| fmt_ms(*y))
        .label_style((FONT, 13))
        .draw()?;
    for (i, line) in lines.iter().enumerate() {
        let style = color(i).stroke_width(2);
        if line.dashed {
            chart
                .draw_series(DashedLineSeries::new(line.points.clone(), 8, 5, style))?
                .label(&line.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], style));
        } else {
            chart
                .draw_series(LineSeries::new(line.points.clone(), style))?
                .label(&line.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart.draw_series(line.points.iter().map(|&p| Circle::new(p, 3, color(i).filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    footer(&footer_area, caption)?;
    root.present()?;
    Ok(())
}

/// Horizontal bars of images per second, one per measurement, coloured by batch size.
fn draw_throughput_figure(svg: &mut String, title: &str, bars: &[(String, u64, f64)], caption: &[String; 2]) -> DrawResult {
    let labels: Vec<String> = bars.iter().map(|(label, batch, _)| format!("{label} · b{batch}")).collect();
    let height = 120 + 22 * bars.len() as u32 + FOOTER;
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, footer_area) = root.split_vertically(height - FOOTER);
    let max = bars.iter().map(|b| b.2).fold(0.0, f64::max).max(1.0);
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..max * 1.35, (0..bars.len()).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("images per second (higher is better)")
        .label_style((FONT, 12))
        .draw()?;
    let batches = {
        let mut b: Vec<u64> = bars.iter().map(|b| b.1).collect();
        b.sort_unstable();
        b.dedup();
        b
    };
    for (i, batch) in batches.iter().enumerate() {
        let data: Vec<(usize, f64)> = bars
            .iter()
            .enumerate()
            .filter(|(_, b)| b.1 == *batch)
            .map(|(j, b)| (j, b.2))
            .collect();
        let fill = color(i).filled();
        chart
            .draw_series(Histogram::horizontal(&chart).style(fill).margin(3).data(data))?
            .label(format!("batch {batch}"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    footer(&footer_area, caption)?;
    root.present()?;
    Ok(())
}

/// Horizontal stacked bars of forward, backward and optimizer-step time.
fn draw_split_figure(svg: &mut String, title: &str, bars: &[(String, [f64; 3])], caption: &[String; 2]) -> DrawResult {
    let height = 120 + 24 * bars.len() as u32 + FOOTER;
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, footer_area) = root.split_vertically(height - FOOTER);
    let max = bars.iter().map(|(_, p)| p.iter().sum::<f64>()).fold(0.0, f64::max).max(1e-3);
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..max * 1.35, (0..bars.len()).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("milliseconds per training step (median of each phase)")
        .label_style((FONT, 12))
        .draw()?;
    // Stacked by drawing the cumulative sums from the longest down.
    let phases = ["optimizer step", "backward", "forward"];
    for (k, phase) in phases.iter().enumerate() {
        let upto = 3 - k;
        let data: Vec<(usize, f64)> = bars.iter().enumerate().map(|(i, (_, p))| (i, p[..upto].iter().sum())).collect();
        let fill = color(upto - 1).filled();
        chart
            .draw_series(Histogram::horizontal(&chart).style(fill).margin(3).data(data))?
            .label(*phase)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    footer(&footer_area, caption)?;
    root.present()?;
    Ok(())
}

/// Test accuracy (%) against `x`, one line with markers per series.
fn draw_curves(svg: &mut String, title: &str, x_desc: &str, series: &[(String, Vec<(f64, f64)>)], caption: &[String; 2]) -> DrawResult {
    let height = 460 + 18 * series.len() as u32 + FOOTER;
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, footer_area) = root.split_vertically(height - FOOTER);
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 100.0);
    }
    let x_pad = ((x1 - x0) * 0.08).max(0.5);
    let y_pad = ((y1 - y0) * 0.08).max(1.0);
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - x_pad).max(0.0)..x1 + x_pad, (y0 - y_pad).max(0.0)..(y1 + y_pad).min(100.0))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("test accuracy (%)")
        .label_style((FONT, 13))
        .draw()?;
    for (i, (label, points)) in series.iter().enumerate() {
        let style = color(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color(i).filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    footer(&footer_area, caption)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three small recorded bench files (`tests/data/`), written by real runs of `adamlab bench
    /// step|train|optimizers` (their `command` fields say which), on a busy 2-core machine.
    fn recorded() -> Vec<Input> {
        [
            ("step.json", include_str!("../tests/data/step.json")),
            ("train.json", include_str!("../tests/data/train.json")),
            ("optimizers.json", include_str!("../tests/data/optimizers.json")),
        ]
        .into_iter()
        .map(|(name, text)| (PathBuf::from(name), BenchFile::from_json(text, name).unwrap()))
        .collect()
    }

    /// The pipes of a Markdown table row that separate cells (`\|` is a pipe inside one).
    fn cell_separators(row: &str) -> usize {
        let bytes = row.as_bytes();
        (0..bytes.len()).filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\')).count()
    }

    #[test]
    fn pipes_and_newlines_in_any_field_leave_every_table_whole() {
        let hostile = "a|b\nc\r|d`e";
        let mut inputs = recorded();
        for (_, file) in &mut inputs {
            file.command = hostile.into();
            file.machine.cpu = hostile.into();
            file.machine.started_at = hostile.into();
            file.machine.git_commit = Some(hostile.into());
            file.machine.torch_version = Some(hostile.into());
            for record in &mut file.records {
                record.backend = format!("{}{hostile}", record.backend);
                record.optimizer = record.optimizer.as_ref().map(|o| format!("{o}{hostile}"));
                record.implementation = Some(hostile.into());
                record.model = record.model.as_ref().map(|m| format!("{m}{hostile}"));
                record.note = Some(hostile.into());
            }
        }
        let dir = std::env::temp_dir().join(format!("adamlab-report-hostile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = ReportOptions {
            out_dir: dir.join("figures"),
            markdown: dir.join("REPORT.md"),
            command: "adamlab bench report".into(),
            preface: None,
        };
        let rendered = render(&inputs, &options).unwrap();
        let md = &rendered.markdown.1;
        assert!(md.contains("a\\|b c \\|d'e"), "the field is kept, escaped:\n{md}");
        // Every table: rows with as many cells as its header, and nothing cut off after a row.
        let lines: Vec<&str> = md.lines().collect();
        let mut tables = 0;
        let mut at = 0;
        while at < lines.len() {
            if !lines[at].starts_with('|') {
                at += 1;
                continue;
            }
            tables += 1;
            let header = cell_separators(lines[at]);
            while at < lines.len() && lines[at].starts_with('|') {
                assert_eq!(cell_separators(lines[at]), header, "row of another width: {}", lines[at]);
                at += 1;
            }
            assert!(at == lines.len() || lines[at].is_empty(), "a table cut by: {:?}", lines[at]);
        }
        assert!(tables >= 5, "{tables} tables in\n{md}");
    }

    #[test]
    fn a_file_from_a_busy_machine_is_flagged_in_its_tables_and_an_old_one_says_load_not_recorded() {
        let mut inputs = recorded();
        // step.json's PyTorch side shared the machine; train.json has no load (an old file).
        let busy = crate::load::SideLoad {
            side: crate::load::TORCH.into(),
            round: 1,
            seconds: 30.0,
            load_average_start: Some([3.1, 2.0, 1.5]),
            load_average_end: Some([4.2, 2.4, 1.6]),
            cpus: Some(2),
            other_cores: Some(0.9),
            own_cores: Some(1.1),
            busy: Some(true),
        };
        let quiet = crate::load::SideLoad {
            side: crate::load::ADAMLAB.into(),
            other_cores: Some(0.02),
            own_cores: Some(1.98),
            busy: Some(false),
            ..busy.clone()
        };
        inputs[0].1.load = vec![quiet, busy];
        let options = ReportOptions {
            out_dir: PathBuf::from("figures"),
            markdown: PathBuf::from("REPORT.md"),
            command: "adamlab bench report".into(),
            preface: None,
        };
        let rendered = render(&inputs, &options).unwrap();
        let md = &rendered.markdown.1;
        let file_row = |name: &str| md.lines().find(|l| l.starts_with(&format!("| `{name}` |"))).unwrap();
        assert!(file_row("step.json").contains("**⚠ BUSY**: PyTorch's side: other processes took 0.90 cores"), "{md}");
        assert!(file_row("train.json").contains("| load not recorded |"), "{md}");
        let step = &md[md.find("## Optimizer step").unwrap()..md.find("## Training throughput").unwrap()];
        assert!(step.contains("> **⚠ Busy machine.** PyTorch's side"), "{step}");
        // PyTorch's times and every ratio against them are marked; adamlab's own times are not.
        let rows = |prefix: &str| step.lines().filter(|l| l.starts_with(prefix)).collect::<Vec<_>>();
        assert!(!rows("| torch |").is_empty() && rows("| torch |").iter().all(|l| l.contains("⚠ busy")), "{step}");
        let ratio_rows: Vec<&str> = rows("| flex |").into_iter().filter(|l| l.matches('|').count() < 12).collect();
        assert!(!ratio_rows.is_empty() && ratio_rows.iter().all(|l| l.ends_with("⚠ busy |")), "{step}");
        let step_rows: Vec<&str> = rows("| flex |").into_iter().filter(|l| l.matches('|').count() == 12).collect();
        assert!(!step_rows.is_empty() && step_rows.iter().all(|l| !l.contains("⚠ busy")), "{step}");
        let train = &md[md.find("## Training throughput").unwrap()..];
        assert!(!train.contains("⚠"), "an old file has nothing marked:\n{train}");
        // The figures of the busy file say so too.
        let flagged = rendered.figures.iter().filter(|(_, svg)| svg.contains("BUSY MACHINE")).count();
        assert!(flagged > 0 && flagged < rendered.figures.len(), "{flagged} of {}", rendered.figures.len());
    }

    #[test]
    fn fused_and_reference_steps_burns_twin_and_torch_share_a_configuration() {
        for spec in ["adam(amsgrad=true)", "adam(amsgrad=true, fused=false)", "burn-adam(amsgrad=true)"] {
            assert_eq!(configuration(spec), "adam(amsgrad=true)", "{spec}");
        }
        assert_eq!(configuration("adam(fused=false)"), "adam");
        assert_eq!(configuration("lion(betas=(0.9, 0.99), fused=false)"), "lion(betas=(0.9, 0.99))");
        assert_ne!(configuration("adam"), configuration("adam(amsgrad=true)"));
    }

    #[test]
    fn the_algorithm_comes_from_the_reference_path() {
        let mut r = Record::new(Bench::Step, "flex", "flex (CPU)");
        r.reference = Some("torch.optim.AdamW (torch 2.15)".into());
        assert_eq!(algorithm(&r), "AdamW");
        r.reference = Some("burn::optim::Adam (burn 0.22.1)".into());
        assert_eq!(algorithm(&r), "Adam");
        r.reference = Some("lion-pytorch 0.2.5".into());
        r.optimizer = Some("lion(betas=(0.9, 0.99))".into());
        assert_eq!(algorithm(&r), "lion");
    }

    #[test]
    fn numbers_are_formatted_for_tables() {
        assert_eq!(fmt_count(Some(1_000_000)), "1e6");
        assert_eq!(fmt_count(Some(2_500_000)), "2.5e6");
        assert_eq!(fmt_ms(106.7), "107");
        assert_eq!(fmt_ms(4.0123), "4.01");
        assert_eq!(fmt_ms(0.61843), "0.618");
    }

    #[test]
    fn wgpu_rows_are_compared_with_torch_on_cuda_not_on_the_cpu() {
        let file = BenchFile::from_json(include_str!("../tests/data/step-gpu.json"), "step-gpu.json").unwrap();
        let median = |backend: &str| {
            file.records.iter().find(|r| r.backend == backend && r.optimizer.as_deref() == Some("adam")).unwrap().median_ms.unwrap()
        };
        let expected = format!("{:.2}", median("wgpu") / median("torch-cuda"));
        assert_ne!(expected, format!("{:.2}", median("wgpu") / median("torch")));
        let dir = std::env::temp_dir().join(format!("adamlab-report-gpu-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = ReportOptions {
            out_dir: dir.join("figures"),
            markdown: dir.join("REPORT.md"),
            command: "adamlab bench report step-gpu.json".into(),
            preface: None,
        };
        let written = render(&[(PathBuf::from("step-gpu.json"), file)], &options).unwrap().write(false).unwrap();
        let md = std::fs::read_to_string(&written.markdown).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // The ratio table's row (six columns before the torch ones; the step table has more).
        let row = md
            .lines()
            .find(|l| l.starts_with("| wgpu | `adam` | adamlab-fused | 1e7 |") && l.matches('|').count() == 8)
            .unwrap_or_else(|| panic!("no ratio row in\n{md}"));
        assert!(row.ends_with(&format!(" {expected} |")), "{row}, expected ÷ torch-fused {expected}");
        // A GPU's bandwidth is not a fraction of the host's triad.
        assert!(md.lines().filter(|l| l.starts_with("| wgpu |") || l.starts_with("| torch-cuda |")).all(|l| !l.contains(" % |")));
    }

    #[test]
    fn a_recorded_file_gives_markdown_with_tables_ratios_and_svg_figures() {
        let dir = std::env::temp_dir().join(format!("adamlab-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = ReportOptions {
            out_dir: dir.join("figures"),
            markdown: dir.join("REPORT.md"),
            command: "adamlab bench report recorded.json".into(),
            preface: Some("Measured while nothing else ran.".into()),
        };
        let written = render(&recorded(), &options).unwrap().write(false).unwrap();
        let md = std::fs::read_to_string(&written.markdown).unwrap();
        for expected in [
            "# adamlab benchmarks",
            "Measured while nothing else ran.",
            "## Optimizer step (`step.json`)",
            "### Adam",
            "### AdamW",
            "÷ torch-fused",
            "## Training throughput (`train.json`)",
            "### CNN",
            "(figures/train-cnn-split.svg)",
            "## Optimizer shoot-out (`optimizers.json`)",
            "(figures/optimizers-accuracy-time.svg)",
            "(figures/step-adam.svg)",
            "Reproduce: `adamlab bench step",
            "Reproduce: `adamlab bench train",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in\n{md}");
        }
        assert!(!written.figures.is_empty());
        for figure in &written.figures {
            let svg = std::fs::read_to_string(figure).unwrap();
            assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{}", figure.display());
            // Every figure names its machine and its command.
            assert!(svg.contains("logical CPUs") && svg.contains("backends: "), "{}", figure.display());
            assert!(svg.contains("$ adamlab bench"), "{}", figure.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
