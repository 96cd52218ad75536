//! `adamlab bench report`: bench files in, one Markdown report and its SVG figures (drawn with
//! plotters) out. Each file gets its own sections, so that every table, ratio and figure comes from
//! one run on one machine, and every figure names that machine, its backends and the command that
//! made it.
//!
//! [`tables`] writes the Markdown, [`figures`] draws the SVG figures; this module renders them
//! into memory and writes the files.

mod figures;
mod shootout;
mod tables;

pub use tables::{algorithm, configuration, fmt_count, fmt_ms};

use crate::schema::{Bench, BenchFile, Record};
use adamlab_data::paths;
use figures::DrawResult;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tables::Busy;

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

/// Renders the Markdown report and its figures for `inputs`, writing nothing. Any field of the
/// files may hold any text: each table cell is escaped ([`tables::cell`]) and every string is put on one
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

impl Report {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four small recorded bench files (`tests/data/`), written by real runs of `adamlab bench
    /// step|train|optimizers` (their `command` fields say which; `optimizers.json` by the
    /// shoot-out before it tuned learning rates), on a busy 2-core machine.
    fn recorded() -> Vec<Input> {
        [
            ("step.json", include_str!("../../tests/data/step.json")),
            ("train.json", include_str!("../../tests/data/train.json")),
            ("optimizers.json", include_str!("../../tests/data/optimizers.json")),
            ("shootout-quadratic.json", include_str!("../../tests/data/shootout-quadratic.json")),
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
        let train = &md[md.find("## Training throughput").unwrap()..md.find("## Optimizer shoot-out: quadratic").unwrap()];
        assert!(!train.contains("⚠"), "an old file has nothing marked:\n{train}");
        // The figures of the busy file say so too.
        let flagged = rendered.figures.iter().filter(|(_, svg)| svg.contains("BUSY MACHINE")).count();
        assert!(flagged > 0 && flagged < rendered.figures.len(), "{flagged} of {}", rendered.figures.len());
    }

    #[test]
    fn wgpu_rows_are_compared_with_torch_on_cuda_not_on_the_cpu() {
        let file = BenchFile::from_json(include_str!("../../tests/data/step-gpu.json"), "step-gpu.json").unwrap();
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
    fn the_same_files_give_the_same_report_byte_for_byte() {
        // Each render draws with fresh hash maps: plotters' `Histogram` drew its bars in a
        // `HashMap`'s order, which differed between renders.
        let options = ReportOptions {
            out_dir: PathBuf::from("figures"),
            markdown: PathBuf::from("REPORT.md"),
            command: "adamlab bench report".into(),
            preface: None,
        };
        let first = render(&recorded(), &options).unwrap();
        for _ in 0..3 {
            let again = render(&recorded(), &options).unwrap();
            assert_eq!(again.markdown, first.markdown);
            assert_eq!(again.figures, first.figures);
        }
    }

    /// The recorded quadratic shoot-out: SGD diverged at 1e-2 and was tuned to 1e-3 (the middle
    /// of its grid), Adam and Lion to the top of theirs (flagged); the table puts SGD, the
    /// closest to the optimum after 600 steps, first.
    #[test]
    fn a_tuned_shootout_shows_its_grid_with_the_edge_flagged_and_the_best_run_first() {
        let inputs: Vec<Input> = recorded().into_iter().filter(|(p, _)| p.to_string_lossy().starts_with("shootout")).collect();
        let options = ReportOptions {
            out_dir: PathBuf::from("figures"),
            markdown: PathBuf::from("REPORT.md"),
            command: "adamlab bench report shootout-quadratic.json".into(),
            preface: None,
        };
        let rendered = render(&inputs, &options).unwrap();
        let md = &rendered.markdown.1;
        let row = |name: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| `{name}` |")) && l.contains("**"))
                .unwrap_or_else(|| panic!("{name} in\n{md}"))
        };
        assert!(row("sgd").contains("**0.001: 0.9416**") && row("sgd").contains("0.01: diverged"), "{md}");
        assert!(!row("sgd").contains("edge"), "{md}");
        assert!(row("adam").contains("**0.01: 1.4527** ⚠ at the grid's edge"), "{md}");
        let table: Vec<&str> = md.lines().filter(|l| l.starts_with("| `") && l.contains("| 0/1 |")).collect();
        let order: Vec<&str> = table.iter().map(|l| l.split('`').nth(1).unwrap()).collect();
        // Each at its tuned rate.
        assert_eq!(order, ["sgd(lr=0.001)", "adam(lr=0.01)", "lion(lr=0.001)"], "{md}");
        assert!(table[0].contains("| 0.001 | 0.6164 | 0.6164 |"), "{}", table[0]);
        assert_eq!(rendered.figures.len(), 2);
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
            "## Optimizer shoot-out: quadratic (`shootout-quadratic.json`)",
            "(figures/shootout-quadratic-step.svg)",
            "(figures/shootout-quadratic-time.svg)",
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
