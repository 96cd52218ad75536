//! `adamlab bench`: argument parsing, a progress bar and a table printed as the measurements
//! come; the measuring, the records and the report are `adamlab_bench`'s.

use crate::args::{DataArgs, ModelArg};
use crate::error::CliError;
use adamlab_backend::BackendKind;
use adamlab_bench::schema::Bench;
use adamlab_bench::shootout::{self, ShootoutConfig, Workload};
use adamlab_bench::step::{self, StepConfig};
use adamlab_bench::torch::Torch;
use adamlab_bench::train::{Model, TrainConfig};
use adamlab_bench::load::{self, SideLoad};
use adamlab_bench::sides::{self, Measured};
use adamlab_bench::{BenchError, BenchFile, Machine, Observer, Record, Target, parse, report};
use adamlab_data::paths::{self, Named};
use adamlab_optim::OptimizerSpec;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Options of `adamlab bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure, or `report` to turn bench files into Markdown and SVG figures.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benches.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The time of one optimizer step against the number of parameters, with the memory
    /// bandwidth it reaches as a fraction of the machine's (measured in the same run).
    Step(StepArgs),
    /// Images (examples) per second of a training step of the article's CNN and MLP or of a
    /// workload, split into forward, backward and optimizer step, with peak memory.
    Train(TrainArgs),
    /// The optimizer shoot-out on a workload (`--model`): each optimizer's learning rate tuned on
    /// a log grid against the validation split, then runs over several seeds at the tuned rate,
    /// recording the test metric against steps and training time, the time per step and the
    /// optimizer's state. Real training: minutes to hours.
    Optimizers(OptimizersArgs),
    /// Turn bench JSON files into a Markdown report with SVG figures.
    Report(ReportArgs),
}

/// Options every measuring bench takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Backends, comma-separated. Default: every backend compiled in and usable.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub backends: Vec<BackendKind>,
    /// Write every measurement with the machine description to FILE (docs/bench-schema.md).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Options of `adamlab bench step`.
#[derive(Debug, clap::Args)]
pub struct StepArgs {
    /// Optimizer specs as `train --optimizer` takes them, comma-separated: adamlab's adam and
    /// adamw and burn's built-in Adam by default. Rows of an optimizer with a fused kernel read
    /// `adamlab-fused`; add the same spec with `fused=false` (`sgd(momentum=0.9,fused=false)`)
    /// to time its tensor-op reference step beside it (`adamlab-reference`).
    #[arg(long, value_name = "LIST", default_value = "adam,adamw,burn-adam")]
    pub optimizers: String,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Parameter counts, comma-separated (`1e5`, `1000000`; `1e8` needs about 2 GB per optimizer).
    #[arg(long, value_name = "LIST", default_value = "1e5,1e6,1e7")]
    pub params: String,
    /// Split the parameters into N tensors, to show the per-tensor overhead.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub tensors: usize,
    /// Step the tensors in one call, as torch's multi-tensor (`foreach`/`fused`) steps do: on
    /// wgpu the fused optimizers then launch one kernel for many tensors instead of one each
    /// (rows `adamlab-fused-multi-tensor`). Without it each tensor is stepped on its own, as a
    /// training step through burn's `ModuleOptimizer` steps them.
    #[arg(long)]
    pub multi_tensor: bool,
    /// Untimed steps before the timed ones.
    #[arg(long, value_name = "N", default_value_t = step::DEFAULT_WARMUP)]
    pub warmup: usize,
    /// Timed steps per measurement.
    #[arg(long, value_name = "R", default_value_t = step::DEFAULT_REPEATS)]
    pub repeats: usize,
    /// Also run PyTorch (fused, foreach, for-loop) through tools/bench/torch_bench.py, with the
    /// Python of ADAMLAB_TORCH_PYTHON, else python3.
    #[arg(long)]
    pub torch: bool,
    /// Measure everything (adamlab's rows, then PyTorch's) this many times in turn, and keep for
    /// each row the median of the rounds' medians: steadier ratios on a machine whose memory
    /// bandwidth drifts.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub rounds: usize,
}

/// Options of `adamlab bench train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Models, comma-separated: the article's `cnn` and `mlp`, or the workloads `char-gpt`,
    /// `softmax-regression`, `rosenbrock`, `quadratic` (a test function is timed at batch 1).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST", default_value = "cnn")]
    pub model: Vec<ModelArg>,
    /// Optimizer specs, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "adam,adamw,burn-adam")]
    pub optimizers: String,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Batch sizes, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "32,64,128")]
    pub batch_size: String,
    /// Untimed steps before the timed ones.
    #[arg(long, value_name = "N", default_value_t = step::DEFAULT_WARMUP)]
    pub warmup: usize,
    /// Timed steps per measurement.
    #[arg(long, value_name = "R", default_value_t = step::DEFAULT_REPEATS)]
    pub repeats: usize,
    /// Also run PyTorch on the same model, batch sizes and thread count.
    #[arg(long)]
    pub torch: bool,
}

/// Options of `adamlab bench optimizers`.
#[derive(Debug, clap::Args)]
pub struct OptimizersArgs {
    /// The workload (`adamlab models` lists them; not the mlp, which has two points).
    #[arg(long, value_enum, default_value = "cnn")]
    pub model: ModelArg,
    /// Optimizer specs, comma-separated. Default: every registered optimizer at its torch
    /// defaults. A spec's lr (torch's default when not given) is the centre of its grid.
    #[arg(long, value_name = "LIST")]
    pub optimizers: Option<String>,
    /// The centre of one optimizer's grid, by registry name (repeatable): `--lr sgd=0.05`.
    #[arg(long, value_name = "NAME=VALUE", value_parser = shootout::parse_lr_override)]
    pub lr: Vec<(String, f64)>,
    /// The learning rates each optimizer is tuned over, as multiples of its centre: a log grid.
    /// `1` runs the centre only, without tuning. Default: 0.1,0.3,1,3,10; on a test function
    /// 0.01,0.03,…,100.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub lr_grid: Vec<f64>,
    /// Steps of each tuning run, scored on the validation split at its end. Default: the
    /// workload's (cnn and softmax-regression 300, char-gpt 60, test functions 2000).
    #[arg(long, value_name = "N")]
    pub tune_steps: Option<usize>,
    /// Steps of each run at the tuned rate. Default: the workload's (900, 300, 5000).
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Steps between two evaluations of a run at the tuned rate. Default: the workload's
    /// (100, 50, 250).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Seeds of the runs at the tuned rate, comma-separated; the first also seeds the tuning.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "0,1,2", value_parser = parse_seed)]
    pub seeds: Vec<u64>,
    /// Examples per optimizer step. Default: the workload's (64 images, 32 windows).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Fashion-MNIST's directory; for char-gpt, the fortunes' (as `train --data-dir`).
    #[command(flatten)]
    pub data: DataArgs,
    /// Train on the first N training examples only (a quick look, not the shoot-out).
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N examples of each held-out split only.
    #[arg(long, value_name = "N")]
    pub limit_eval: Option<usize>,
}

/// Options of `adamlab bench report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Bench files written by `--json`.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Folder of the SVG figures (and of the Markdown, unless --markdown).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The Markdown file. Default: DIR/README.md.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Markdown to put after the title (conditions of the runs, caveats).
    #[arg(long, value_name = "FILE")]
    pub preface: Option<PathBuf>,
    /// Replace files in DIR (and the --markdown file) that an earlier report did not write.
    /// Without it, such files are left alone and the report is refused.
    #[arg(long)]
    pub overwrite: bool,
}

/// The most `--preface` may hold: 1 MiB of Markdown. A larger file, a device or a FIFO is refused
/// before it is read.
const MAX_PREFACE_BYTES: adamlab_data::files::Bound =
    adamlab_data::files::Bound::new(1 << 20, "a preface");

/// Runs `adamlab bench …`.
pub fn run(args: &BenchArgs) -> Result<(), CliError> {
    let command = command_line();
    match &args.command {
        BenchCommand::Step(a) => {
            let config = StepConfig {
                targets: targets(&a.common.backends)?,
                optimizers: specs(&a.optimizers)?,
                params: parse::counts(&a.params).map_err(|e| usage(format!("--params: {e}")))?,
                tensors: a.tensors,
                multi_tensor: a.multi_tensor,
                warmup: a.warmup,
                repeats: a.repeats,
                rounds: a.rounds,
            };
            config.validate().map_err(bench_error)?;
            let mut machine = Machine::detect();
            let torch = find_torch(a.torch, &mut machine);
            let mut table = Table::new(Bench::Step);
            say!("adamlab bench step on {}", machine.summary());
            let measured = sides::step(&config, torch.as_ref(), machine.threads, &mut table).map_err(bench_error)?;
            if config.rounds > 1 {
                table.note(&format!("merged over {} rounds (median of the medians):", config.rounds));
                measured.records.iter().filter(|r| r.bench == Bench::Step).for_each(|r| table.measured(r));
            }
            table.finish();
            save(&a.common.json, command, machine, measured)
        }
        BenchCommand::Train(a) => {
            let config = TrainConfig {
                targets: targets(&a.common.backends)?,
                optimizers: specs(&a.optimizers)?,
                models: a.model.iter().map(|m| model(*m)).collect(),
                batch_sizes: parse::counts(&a.batch_size).map_err(|e| usage(format!("--batch-size: {e}")))?,
                warmup: a.warmup,
                repeats: a.repeats,
            };
            config.validate().map_err(bench_error)?;
            let mut machine = Machine::detect();
            let torch = find_torch(a.torch, &mut machine);
            let mut table = Table::new(Bench::Train);
            say!("adamlab bench train on {}", machine.summary());
            let measured = sides::train(&config, torch.as_ref(), machine.threads, &mut table).map_err(bench_error)?;
            table.finish();
            save(&a.common.json, command, machine, measured)
        }
        BenchCommand::Optimizers(a) => {
            let workload = workload(a.model)?;
            let optimizers = match &a.optimizers {
                Some(list) => specs(list)?,
                None => shootout::every_registered(),
            };
            let defaults = workload.default_budget();
            let config = ShootoutConfig {
                targets: targets(&a.common.backends)?,
                workload,
                optimizers: shootout::with_learning_rates(optimizers, &a.lr).map_err(bench_error)?,
                lr_grid: if a.lr_grid.is_empty() { workload.default_lr_grid().to_vec() } else { a.lr_grid.clone() },
                seeds: a.seeds.clone(),
                budget: shootout::Budget {
                    batch_size: a.batch_size.unwrap_or(defaults.batch_size),
                    tune_steps: a.tune_steps.unwrap_or(defaults.tune_steps),
                    steps: a.steps.unwrap_or(defaults.steps),
                    eval_every: a.eval_every.unwrap_or(defaults.eval_every),
                },
            };
            config.validate().map_err(bench_error)?;
            let fortunes = crate::train::workloads::fortunes_dir(&a.data.data_dir);
            let source = shootout::DataSource {
                images: &a.data.data_dir,
                fortunes: &fortunes,
                limit_train: a.limit_train,
                limit_eval: a.limit_eval,
            };
            let data = shootout::Datasets::load(workload, source).map_err(bench_error)?;
            let machine = Machine::detect();
            let mut table = Table::new(Bench::Optimizers);
            say!("adamlab bench optimizers --model {} on {}", workload.name(), machine.summary());
            let measured = sides::shootout(&config, &data, &mut table).map_err(bench_error)?;
            table.finish();
            save(&a.common.json, command, machine, measured)
        }
        BenchCommand::Report(a) => {
            let inputs = a
                .files
                .iter()
                .map(|path| Ok((path.clone(), BenchFile::read(path)?)))
                .collect::<Result<Vec<_>, BenchError>>()
                .map_err(bench_error)?;
            let preface = match &a.preface {
                Some(path) => Some(adamlab_data::files::read_to_string(path, MAX_PREFACE_BYTES)
                    .map_err(|source| CliError::Usage(format!("--preface {}: {source}", path.display())))?),
                None => None,
            };
            let options = report::ReportOptions {
                out_dir: a.out.clone(),
                markdown: a.markdown.clone().unwrap_or_else(|| a.out.join("README.md")),
                command,
                preface,
            };
            let rendered = report::render(&inputs, &options).map_err(bench_error)?;
            let mut read = vec![];
            for file in &a.files {
                read.push(Named { flag: "FILE", path: file });
            }
            if let Some(preface) = &a.preface {
                read.push(Named { flag: "--preface", path: preface });
            }
            let written: Vec<Named> = rendered
                .paths()
                .enumerate()
                .map(|(i, path)| Named { flag: if i == 0 { "the Markdown" } else { "a figure" }, path })
                .collect();
            if let Some(message) = paths::clash(&read, &written, &[]) {
                return Err(usage(message));
            }
            let written = rendered.write(a.overwrite).map_err(bench_error)?;
            say!(
                "wrote {} and {} figure(s) in {}",
                written.markdown.display(),
                written.figures.len(),
                a.out.display()
            );
            Ok(())
        }
    }
}

/// One seed of `--seeds`: a whole number from 0 to 2^64 − 1.
fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a seed: give whole numbers from 0 to {}", u64::MAX))
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

/// Usage errors exit with 2, failed runs with 1.
fn bench_error(err: BenchError) -> CliError {
    if err.is_usage() {
        CliError::Usage(err.to_string())
    } else {
        CliError::BenchFailed(err)
    }
}

fn targets(backends: &[BackendKind]) -> Result<Vec<Target>, CliError> {
    if backends.is_empty() {
        let all = Target::every_usable();
        return if all.is_empty() {
            Err(usage("no backend compiled into this build has a device".into()))
        } else {
            Ok(all)
        };
    }
    let mut out: Vec<Target> = Vec::new();
    for &backend in backends {
        if !out.iter().any(|t| t.backend == backend) {
            out.push(Target::new(backend)?);
        }
    }
    Ok(out)
}

fn specs(list: &str) -> Result<Vec<OptimizerSpec>, CliError> {
    let items = parse::list(list).map_err(|e| usage(format!("--optimizers: {e}")))?;
    Ok(items.iter().map(|s| OptimizerSpec::parse(s)).collect::<Result<_, _>>()?)
}

fn model(arg: ModelArg) -> Model {
    match arg {
        ModelArg::Cnn => Model::Cnn,
        ModelArg::Mlp => Model::Mlp,
        ModelArg::CharGpt => Model::CharGpt,
        ModelArg::SoftmaxRegression => Model::SoftmaxRegression,
        ModelArg::Rosenbrock => Model::Rosenbrock,
        ModelArg::Quadratic => Model::Quadratic,
    }
}

fn workload(arg: ModelArg) -> Result<Workload, CliError> {
    let name = clap::ValueEnum::to_possible_value(&arg).map_or_else(String::new, |v| v.get_name().to_string());
    match Workload::parse(&name) {
        Some(workload) => Ok(workload),
        None => Err(usage(format!(
            "--model {name}: the shoot-out trains a workload with a held-out metric; the mlp fits two points"
        ))),
    }
}

/// PyTorch, when asked for and found; otherwise one line and the bench goes on.
fn find_torch(wanted: bool, machine: &mut Machine) -> Option<Torch> {
    if !wanted {
        return None;
    }
    match Torch::find() {
        Ok(torch) => {
            machine.torch_version = Some(torch.version.clone());
            Some(torch)
        }
        Err(line) => {
            say!("{line}");
            None
        }
    }
}

/// Says on stderr, once more at the end, when other processes shared the machine; then writes
/// the bench file, which records the load of every side.
fn save(json: &Option<PathBuf>, command: String, machine: Machine, measured: Measured) -> Result<(), CliError> {
    if let load::Verdict::Busy(busy) = load::verdict(&measured.load) {
        tell!(
            "busy machine during {} of the run's {} side(s), said above (other processes took more \
             than {} of a core): its times and ratios are not results; measure again on a quiet machine",
            busy.len(),
            measured.load.len(),
            load::BUSY_OTHER_CORES
        );
    }
    if let Some(path) = json {
        BenchFile::new(command, machine, measured.records, measured.load)
            .write(path)
            .map_err(|e| bench_error(e.into()))?;
        say!("wrote {}", path.display());
    }
    Ok(())
}

/// The command line as typed, for the records: `adamlab bench step --params 1e6`.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    format!("adamlab {}", args.join(" "))
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Prints each record as a table row as it comes, under a progress bar on a terminal.
struct Table {
    bench: Bench,
    bar: Option<ProgressBar>,
    header_printed: bool,
}

impl Table {
    fn new(bench: Bench) -> Self {
        Self {
            bench,
            bar: None,
            header_printed: false,
        }
    }

    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => say!("{line}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn header(&self) -> String {
        match self.bench {
            Bench::Step | Bench::Triad => format!(
                "{:<8} {:<26} {:<18} {:>7} {:>7} {:>10} {:>19} {:>8} {:>8} {:>9}",
                "backend", "optimizer", "implementation", "params", "tensors", "median ms", "(min–max)", "GB/s", "of triad", "extra MiB"
            ),
            Bench::Train => format!(
                "{:<8} {:<5} {:<22} {:<18} {:>6} {:>8} {:>10} {:>9} {:>9} {:>9} {:>8}",
                "backend", "model", "optimizer", "implementation", "batch", "img/s", "median ms", "fwd ms", "bwd ms", "step ms", "RSS MiB"
            ),
            Bench::Optimizers => format!(
                "{:<8} {:<4} {:<34} {:>9} {:>4} {:>6} {:>10} {:>8} {:>8}",
                "backend", "", "optimizer", "lr", "seed", "step", "metric", "step ms", "train s"
            ),
        }
    }

    fn row(r: &Record) -> String {
        let ms = |x: Option<f64>| x.map_or("—".into(), report::fmt_ms);
        let opt = r.optimizer.as_deref().unwrap_or("—");
        let implementation = r.implementation.as_deref().unwrap_or("—");
        match r.bench {
            Bench::Triad => format!(
                "triad: host streaming bandwidth {:.1} GB/s (median {} ms, three arrays of {} MiB)",
                r.bandwidth_gbps.unwrap_or(0.0),
                ms(r.median_ms),
                r.params.unwrap_or(0) * 4 >> 20
            ),
            Bench::Step => format!(
                "{:<8} {:<26} {:<18} {:>7} {:>7} {:>10} {:>19} {:>8} {:>8} {:>9}",
                r.backend,
                opt,
                implementation,
                report::fmt_count(r.params),
                r.tensors.unwrap_or(1),
                ms(r.median_ms),
                format!("({}–{})", ms(r.min_ms), ms(r.max_ms)),
                r.bandwidth_gbps.map_or("—".into(), |g| format!("{g:.2}")),
                r.bandwidth_fraction.map_or("—".into(), |f| format!("{:.0} %", f * 100.0)),
                r.step_extra_mib.map_or("—".into(), |m| format!("{m:.0}")),
            ),
            Bench::Train => format!(
                "{:<8} {:<5} {:<22} {:<18} {:>6} {:>8} {:>10} {:>9} {:>9} {:>9} {:>8}",
                r.backend,
                r.model.as_deref().unwrap_or("—"),
                opt,
                implementation,
                r.batch_size.unwrap_or(0),
                r.images_per_second.map_or("—".into(), |x| format!("{x:.0}")),
                ms(r.median_ms),
                ms(r.forward_ms),
                ms(r.backward_ms),
                ms(r.step_ms),
                r.peak_rss_mib.map_or("—".into(), |m| format!("{m:.0}")),
            ),
            Bench::Optimizers => {
                let line = format!(
                    "{:<8} {:<4} {:<34} {:>9} {:>4} {:>6} {:>10} {:>8} {:>8}",
                    r.backend,
                    r.phase.as_deref().unwrap_or(""),
                    opt,
                    r.lr.map_or("—".into(), |x| format!("{x}")),
                    r.seed.map_or("—".into(), |s| s.to_string()),
                    r.step.map_or("—".into(), |s| s.to_string()),
                    r.metric.map_or("—".into(), |m| format!("{m:.4}")),
                    ms(r.median_ms),
                    r.train_s.map_or("—".into(), |w| format!("{w:.1}")),
                );
                match &r.note {
                    Some(note) => format!("{line}  {note}"),
                    None => line,
                }
            }
        }
    }
}

impl Observer for Table {
    fn planned(&mut self, total: usize) {
        if std::io::stdout().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
                    .expect("a valid template"),
            );
            self.bar = Some(bar);
        }
    }

    fn started(&mut self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    fn measured(&mut self, record: &Record) {
        if !self.header_printed && record.bench != Bench::Triad {
            self.print(&self.header());
            self.header_printed = true;
        }
        self.print(&Self::row(record));
        if let Some(bar) = &self.bar
            && record.bench == self.bench
            && !record.backend.starts_with("torch")
        {
            bar.inc(1);
        }
    }

    fn note(&mut self, line: &str) {
        self.print(line);
    }

    /// A busy side is said on stderr as soon as it ends (above the progress bar).
    fn load(&mut self, side: &SideLoad) {
        if side.busy != Some(true) {
            return;
        }
        let line = format!("busy machine: {}", side.describe());
        match &self.bar {
            Some(bar) => bar.suspend(|| tell!("{line}")),
            None => tell!("{line}"),
        }
    }
}
