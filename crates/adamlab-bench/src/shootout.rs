//! `adamlab bench optimizers`: the optimizer shoot-out, on any workload of the zoo. Fair in the
//! way a reader needs: every optimizer gets its learning rate tuned on held-out data before it is
//! compared, then runs over several seeds, and the comparison is a curve, not one number.
//!
//! ```text
//! for each optimizer:
//!     tune:  for lr in centre · grid        (centre: the spec's lr, torch's default if not given)
//!                train `tune_steps` steps, seed = first seed
//!                score = the metric on the validation split   (diverged: worst)
//!     run:   best lr, for each seed
//!                train `steps` steps, the metric on the test split every `eval_every` steps
//!            and the optimizer's state, serialized, after one step
//! ```
//!
//! Splits: Fashion-MNIST's last tenth of the training images is the validation split (the
//! optimizer trains on the other nine tenths in both phases; the test set is only reported);
//! char-gpt's validation text is halved, the first half tunes and the second is reported; a test
//! function has no data, and its metric is its distance to the optimum in both phases.
//!
//! Time per step is training only: the evaluations between steps are not counted, so a curve
//! against time shows what an optimizer costs, not what the bench's evaluation costs. This is
//! real training: minutes to hours, not a test.

use crate::schema::{Bench, Record};
use crate::{BenchError, Observer, Target};
use adamlab_data::fortunes::{Corpus, TextWindows};
use adamlab_data::{MnistDataset, Split};
use adamlab_models::{CharGptConfig, NoData};
use adamlab_optim::{OptimizerSpec, Value, registry};
use adamlab_train::controls::{Controls, ControlsSpec};
use adamlab_train::fit::{
    self, EpochReport, Evaluation, Example, Fit, Model, Next, ObserverError, RunConfig, Start, StepReport, Stopped,
    TrainData, TrainError, Trainable,
};
use adamlab_train::{classification, language_model, test_functions};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use burn::train::{InferenceStep, RegressionOutput, TrainStep};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Each optimizer's learning rates tried on a workload with data, as multiples of its centre: a
/// log grid of half decades, a decade either side.
pub const DEFAULT_LR_GRID: [f64; 5] = [0.1, 0.3, 1.0, 3.0, 10.0];
/// The same on a test function, whose steps cost microseconds: two decades either side (torch's
/// defaults are far from the best rates of a 2- or 10-dimensional problem).
pub const TEST_FUNCTION_LR_GRID: [f64; 9] = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0];
/// The seeds of the runs at the tuned learning rate.
pub const DEFAULT_SEEDS: [u64; 3] = [0, 1, 2];
/// The share of Fashion-MNIST's training images held out as the validation split.
const IMAGE_VALIDATION_SHARE: f64 = 0.1;
/// Images per evaluation batch.
const IMAGE_EVAL_BATCH: usize = 256;
/// Windows per evaluation batch.
const TEXT_EVAL_BATCH: usize = 64;

/// A workload of the zoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The article's CNN on Fashion-MNIST.
    Cnn,
    /// Softmax regression on Fashion-MNIST (convex).
    SoftmaxRegression,
    /// The character-level GPT on Debian's fortune cookies.
    CharGpt,
    /// Rosenbrock's function.
    Rosenbrock,
    /// The ill-conditioned quadratic.
    Quadratic,
}

/// What a workload is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// `test accuracy`, `validation loss`, `distance to the optimum`: the name records carry.
    pub name: &'static str,
    /// Whether more is better (accuracy) or less (a loss, a distance).
    pub higher_is_better: bool,
}

impl Metric {
    /// The metric's value in an evaluation (NaN when the evaluation lacks it).
    pub fn of(self, evaluation: &Evaluation) -> f64 {
        match self.name {
            ACCURACY => evaluation.accuracy.unwrap_or(f64::NAN),
            DISTANCE => evaluation.distance.unwrap_or(f64::NAN),
            _ => evaluation.loss,
        }
    }

    /// Whether `a` is better than `b`; a value that is not finite is worse than any that is.
    pub fn better(self, a: f64, b: f64) -> bool {
        match (a.is_finite(), b.is_finite()) {
            (true, false) => true,
            (false, _) => false,
            (true, true) => {
                if self.higher_is_better {
                    a > b
                } else {
                    a < b
                }
            }
        }
    }
}

const ACCURACY: &str = "test accuracy";
const DISTANCE: &str = "distance to the optimum";

/// How long each run trains and how often it is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Examples per step (1 for a test function).
    pub batch_size: usize,
    /// Steps of each tuning run.
    pub tune_steps: usize,
    /// Steps of each run at the tuned learning rate.
    pub steps: usize,
    /// Steps between two evaluations of those runs.
    pub eval_every: usize,
}

impl Workload {
    /// Every workload, in `adamlab models`' order.
    pub const ALL: [Self; 5] = [Self::Cnn, Self::CharGpt, Self::SoftmaxRegression, Self::Rosenbrock, Self::Quadratic];

    /// Its name, as `--model` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cnn => "cnn",
            Self::SoftmaxRegression => "softmax-regression",
            Self::CharGpt => "char-gpt",
            Self::Rosenbrock => "rosenbrock",
            Self::Quadratic => "quadratic",
        }
    }

    /// The workload named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The learning-rate grid when `--lr-grid` is not given.
    pub fn default_lr_grid(self) -> &'static [f64] {
        if self.is_deterministic() { &TEST_FUNCTION_LR_GRID } else { &DEFAULT_LR_GRID }
    }

    /// Whether every seed trains the same (a test function: a fixed start, no data).
    pub fn is_deterministic(self) -> bool {
        matches!(self, Self::Rosenbrock | Self::Quadratic)
    }

    /// What the workload is judged by.
    pub fn metric(self) -> Metric {
        match self {
            Self::Cnn | Self::SoftmaxRegression => Metric {
                name: ACCURACY,
                higher_is_better: true,
            },
            Self::CharGpt => Metric {
                name: "validation loss",
                higher_is_better: false,
            },
            Self::Rosenbrock | Self::Quadratic => Metric {
                name: DISTANCE,
                higher_is_better: false,
            },
        }
    }

    /// The budget when no flag changes it: about an epoch of Fashion-MNIST for the classifiers
    /// (843 steps of 64 at nine tenths of the training set), half of char-gpt's epoch, and
    /// five of `adamlab train`'s epochs of a test function.
    pub fn default_budget(self) -> Budget {
        match self {
            Self::Cnn | Self::SoftmaxRegression => Budget {
                batch_size: 64,
                tune_steps: 300,
                steps: 900,
                eval_every: 100,
            },
            Self::CharGpt => Budget {
                batch_size: language_model::DEFAULT_BATCH_SIZE,
                tune_steps: 60,
                steps: 300,
                eval_every: 50,
            },
            Self::Rosenbrock | Self::Quadratic => Budget {
                batch_size: 1,
                tune_steps: 2000,
                steps: 5000,
                eval_every: 250,
            },
        }
    }
}

/// Most steps a tuning run or a tuned run may be asked for (`--tune-steps`, `--steps`): about half
/// an hour of the fastest workload's steps, so that a mistyped count is refused instead of running
/// for days.
pub const MAX_STEPS: usize = 100_000_000;

/// Most learning rates in a grid, and most seeds.
pub const MAX_RUNS: usize = 1_000;

/// What to train.
#[derive(Debug, Clone)]
pub struct ShootoutConfig {
    /// The backends.
    pub targets: Vec<Target>,
    /// The workload.
    pub workload: Workload,
    /// The optimizers; each one's learning rate is the centre of its grid.
    pub optimizers: Vec<OptimizerSpec>,
    /// Multiples of each optimizer's centre learning rate to tune over (one: no tuning run, that
    /// rate is run).
    pub lr_grid: Vec<f64>,
    /// Seeds of the runs at the tuned learning rate; the first also seeds the tuning runs.
    pub seeds: Vec<u64>,
    /// Steps and evaluations.
    pub budget: Budget,
}

impl ShootoutConfig {
    /// Checks what a user can get wrong.
    pub fn validate(&self) -> Result<(), BenchError> {
        let b = &self.budget;
        if b.batch_size == 0 || b.tune_steps == 0 || b.steps == 0 || b.eval_every == 0 {
            return Err(BenchError::Invalid(
                "--batch-size, --tune-steps, --steps and --eval-every must be at least 1".into(),
            ));
        }
        for (flag, steps) in [("--tune-steps", b.tune_steps), ("--steps", b.steps)] {
            if steps > MAX_STEPS {
                return Err(BenchError::Invalid(format!(
                    "{flag} {steps}: at most {MAX_STEPS} steps (adamlab_bench::shootout::MAX_STEPS)"
                )));
            }
        }
        crate::train::check_batch_size(b.batch_size)?;
        for (flag, runs) in [("--lr-grid", self.lr_grid.len()), ("--seeds", self.seeds.len())] {
            if runs > MAX_RUNS {
                return Err(BenchError::Invalid(format!(
                    "{flag}: {runs} values, at most {MAX_RUNS} (adamlab_bench::shootout::MAX_RUNS)"
                )));
            }
        }
        if self.targets.is_empty() || self.optimizers.is_empty() || self.seeds.is_empty() || self.lr_grid.is_empty() {
            return Err(BenchError::Invalid("nothing to train: a list is empty".into()));
        }
        if let Some(f) = self.lr_grid.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
            return Err(BenchError::Invalid(format!(
                "--lr-grid: {f} is not a positive multiple of a learning rate"
            )));
        }
        if matches!(self.workload, Workload::Rosenbrock | Workload::Quadratic) && b.batch_size != 1 {
            return Err(BenchError::Invalid(format!(
                "--batch-size applies to models with data; {} has none",
                self.workload.name()
            )));
        }
        Ok(())
    }
}

/// The data of a workload, loaded once for every run: training examples, the validation split
/// that tunes, the test split that is reported.
#[derive(Debug, Clone)]
pub enum Datasets {
    /// Fashion-MNIST.
    Images {
        /// Nine tenths of the training images.
        train: Arc<MnistDataset>,
        /// The last tenth.
        validation: Arc<MnistDataset>,
        /// The test images.
        test: Arc<MnistDataset>,
    },
    /// The fortune cookies, in windows of char-gpt's context.
    Text {
        /// The training text.
        train: TextWindows,
        /// The first half of the validation text.
        validation: Arc<TextWindows>,
        /// The second half.
        test: Arc<TextWindows>,
    },
    /// A test function has none.
    None,
}

/// Where the data of a workload lives and how much of it to use.
#[derive(Debug, Clone, Copy)]
pub struct DataSource<'a> {
    /// Fashion-MNIST's directory.
    pub images: &'a Path,
    /// The fortunes' directory.
    pub fortunes: &'a Path,
    /// Use the first N training examples only (a quick look, not the shoot-out).
    pub limit_train: Option<usize>,
    /// Evaluate on the first N examples of each held-out split only.
    pub limit_eval: Option<usize>,
}

impl Datasets {
    /// Loads what `workload` trains on.
    pub fn load(workload: Workload, source: DataSource) -> Result<Self, BenchError> {
        let limit = |n: usize, limit: Option<usize>| limit.map_or(n, |l| l.min(n));
        match workload {
            Workload::Cnn | Workload::SoftmaxRegression => {
                let mut train = MnistDataset::load(source.images, Split::Train)?;
                if let Some(n) = source.limit_train {
                    train = train.truncated(n);
                }
                let held = ((train.len() as f64) * IMAGE_VALIDATION_SHARE).round() as usize;
                let mut validation = train.split_off(train.len() - held);
                validation = validation.truncated(limit(held, source.limit_eval));
                let test = MnistDataset::load(source.images, Split::Test)?;
                let test = test.truncated(limit(usize::MAX, source.limit_eval));
                if train.len() == 0 || validation.len() == 0 {
                    return Err(BenchError::Invalid(
                        "too few training images to hold a tenth out for tuning".into(),
                    ));
                }
                Ok(Self::Images {
                    train: Arc::new(train),
                    validation: Arc::new(validation),
                    test: Arc::new(test),
                })
            }
            Workload::CharGpt => {
                let corpus = Corpus::load(source.fortunes)?;
                let context = CharGptConfig::fortunes().context;
                let mut train = TextWindows::new(corpus.train, context);
                if let Some(n) = source.limit_train {
                    train = train.truncated(n);
                }
                let mut first = corpus.validation;
                let second = first.split_off(first.len() / 2);
                let windows = |tokens: Vec<u8>| {
                    let w = TextWindows::new(tokens, context);
                    let n = limit(w.len(), source.limit_eval);
                    Arc::new(w.truncated(n))
                };
                let (validation, test) = (windows(first), windows(second));
                if train.is_empty() || validation.is_empty() || test.is_empty() {
                    return Err(BenchError::Invalid(format!(
                        "{} holds too little text for a window of {} characters in each split",
                        source.fortunes.display(),
                        context + 1
                    )));
                }
                Ok(Self::Text { train, validation, test })
            }
            Workload::Rosenbrock | Workload::Quadratic => {
                let flags = [("--limit-train", source.limit_train), ("--limit-eval", source.limit_eval)];
                match flags.iter().find(|(_, limit)| limit.is_some()) {
                    Some((flag, _)) => Err(BenchError::Invalid(format!(
                        "{flag} applies to models with data; {} has none",
                        workload.name()
                    ))),
                    None => Ok(Self::None),
                }
            }
        }
    }
}

/// Every registered optimizer at its torch defaults.
pub fn every_registered() -> Vec<OptimizerSpec> {
    registry()
        .iter()
        .map(|entry| OptimizerSpec::parse(entry.name).expect("every registry default builds"))
        .collect()
}

/// `specs` with the learning rates of `overrides` (`NAME=VALUE`, NAME an optimizer's registry
/// name), each checked against its optimizer's range. A NAME that matches none of `specs` is an
/// error.
pub fn with_learning_rates(
    specs: Vec<OptimizerSpec>,
    overrides: &[(String, f64)],
) -> Result<Vec<OptimizerSpec>, BenchError> {
    if let Some((name, _)) = overrides.iter().find(|(name, _)| !specs.iter().any(|s| s.name() == name)) {
        let names: Vec<&str> = specs.iter().map(OptimizerSpec::name).collect();
        return Err(BenchError::Invalid(format!(
            "--lr {name}=…: `{name}` is not among the optimizers run ({})",
            names.join(", ")
        )));
    }
    // One source per learning rate: not two `--lr` for one name, not `--lr` beside `lr=` in the
    // spec.
    for (at, (name, _)) in overrides.iter().enumerate() {
        if overrides[..at].iter().any(|(earlier, _)| earlier == name) {
            return Err(BenchError::Invalid(format!(
                "--lr {name}=… is given twice: give one learning rate per optimizer"
            )));
        }
        if let Some(spec) = specs.iter().find(|s| s.name() == name && s.is_given("lr")) {
            return Err(BenchError::Invalid(format!(
                "the learning rate of `{name}` is given twice, in its spec `{spec}` and --lr {name}=…: \
                 give it once"
            )));
        }
    }
    specs
        .into_iter()
        .map(|spec| match overrides.iter().find(|(name, _)| name == spec.name()) {
            Some((_, lr)) => Ok(spec.with("lr", Value::Number(*lr))?),
            None => Ok(spec),
        })
        .collect()
}

/// Parses one `--lr NAME=VALUE`.
pub fn parse_lr_override(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE (e.g. sgd=0.05)"))?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: `{value}` is not a number"))?;
    Ok((name.trim().to_string(), value))
}

/// The learning rates of `spec`'s grid: its lr times each factor, each as a spec. A rate outside
/// the optimizer's range is left out (with the reason, for the record).
pub fn grid(spec: &OptimizerSpec, factors: &[f64]) -> Vec<Result<OptimizerSpec, String>> {
    let centre = spec.lr();
    factors
        .iter()
        .map(|f| {
            let lr = round_lr(centre * f);
            spec.with("lr", Value::Number(lr)).map_err(|e| format!("lr {lr}: {e}"))
        })
        .collect()
}

/// `x` to 6 significant digits: 3e-3 · 0.1 prints as 3e-4, not 0.00030000000000000003.
fn round_lr(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}

/// Phase names of the records.
pub const TUNE: &str = "tune";
/// The runs at the tuned learning rate.
pub const RUN: &str = "run";

/// Tunes and runs every backend × optimizer as the module says, reporting each record to
/// `observer`: a tuning run gives one record (its final metric on the validation split), a run at
/// the tuned rate one per evaluation. A run whose loss becomes NaN or infinite is recorded with a
/// note and the shoot-out goes on.
pub fn run(config: &ShootoutConfig, data: &Datasets, observer: &mut dyn Observer) -> Result<Vec<Record>, BenchError> {
    config.validate()?;
    let budget = config.budget;
    let tuning_runs = if config.lr_grid.len() > 1 { config.lr_grid.len() } else { 0 };
    let per_optimizer = tuning_runs + config.seeds.len() * (1 + budget.steps.div_ceil(budget.eval_every));
    observer.planned(config.targets.len() * config.optimizers.len() * per_optimizer);
    let metric = config.workload.metric();
    // A test function starts from a fixed point and has no data: every seed runs the same.
    let seeds = if config.workload.is_deterministic() && config.seeds.len() > 1 {
        observer.note(&format!(
            "{} has no randomness (a fixed starting point, no data): one seed, {}, stands for all",
            config.workload.name(),
            config.seeds[0]
        ));
        &config.seeds[..1]
    } else {
        &config.seeds[..]
    };
    let mut records = Vec::new();
    for target in &config.targets {
        for spec in &config.optimizers {
            // Tune (a grid of one rate has nothing to choose: it is run, not tuned).
            let mut best: Option<(OptimizerSpec, f64)> = None;
            if let [factor] = config.lr_grid[..] {
                match grid(spec, &[factor]).remove(0) {
                    Ok(only) => best = Some((only, f64::NAN)),
                    Err(why) => return Err(BenchError::Invalid(format!("{spec}: {why}"))),
                }
            }
            for candidate in grid(spec, &config.lr_grid).into_iter().filter(|_| config.lr_grid.len() > 1) {
                let mut record = template(config, target, spec, TUNE);
                let candidate = match candidate {
                    Ok(candidate) => candidate,
                    Err(why) => {
                        record.note = Some(format!("not tried: {why}"));
                        observer.measured(&record);
                        records.push(record);
                        continue;
                    }
                };
                record.lr = Some(candidate.lr());
                let job = Job {
                    target,
                    spec: &candidate,
                    seed: config.seeds[0],
                    steps: budget.tune_steps,
                    eval_every: None,
                    batch_size: budget.batch_size,
                    held_out: HeldOut::Validation,
                    metric,
                    template: record,
                };
                let run = train(config.workload, data, job, observer)?;
                if let Some(last) = run.last()
                    && let Some(value) = last.metric
                    && best.as_ref().is_none_or(|(_, b)| metric.better(value, *b))
                {
                    best = Some((candidate.clone(), value));
                }
                records.extend(run);
            }
            let Some((tuned, _)) = best else {
                observer.note(&format!("{spec}: every learning rate of the grid diverged; not run"));
                continue;
            };
            // Run at the tuned rate.
            let state_bytes = state_bytes(config.workload, data, target, &tuned, budget.batch_size)?;
            for &seed in seeds {
                let mut record = template(config, target, spec, RUN);
                record.lr = Some(tuned.lr());
                record.state_bytes = Some(state_bytes);
                let job = Job {
                    target,
                    spec: &tuned,
                    seed,
                    steps: budget.steps,
                    eval_every: Some(budget.eval_every),
                    batch_size: budget.batch_size,
                    held_out: HeldOut::Test,
                    metric,
                    template: record,
                };
                records.extend(train(config.workload, data, job, observer)?);
            }
        }
    }
    Ok(records)
}

/// The fields every record of one optimizer's runs shares.
fn template(config: &ShootoutConfig, target: &Target, spec: &OptimizerSpec, phase: &str) -> Record {
    let mut r = Record::new(Bench::Optimizers, target.backend.name(), &target.description);
    r.model = Some(config.workload.name().into());
    r.optimizer = Some(spec.to_string());
    r.reference = Some(spec.entry().reference.to_string());
    r.implementation = Some(crate::step::implementation(spec).to_string());
    r.batch_size = Some(config.budget.batch_size as u64);
    r.phase = Some(phase.into());
    r.metric_name = Some(config.workload.metric().name.into());
    r
}

/// Which split a run is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeldOut {
    Validation,
    Test,
}

/// One training run.
struct Job<'a> {
    target: &'a Target,
    spec: &'a OptimizerSpec,
    seed: u64,
    steps: usize,
    /// `None`: evaluate at the end only.
    eval_every: Option<usize>,
    batch_size: usize,
    held_out: HeldOut,
    metric: Metric,
    template: Record,
}

/// Something done with a workload's model and data, whatever their types: a training run, or a
/// step to weigh the optimizer's state. [`visit`] hands it the workload's pieces.
trait Task {
    type Out;
    fn run<M, I, Bt>(
        self,
        model: Model<M>,
        data: &TrainData<I, Bt>,
        evaluate: &mut dyn FnMut(&M) -> Evaluation,
    ) -> Result<Self::Out, BenchError>
    where
        M: Trainable,
        I: Example,
        Bt: Batcher<I, M::Input> + Clone + 'static;
}

/// Runs `task` on the workload's model, its training data and its `held_out` split.
fn visit<T: Task>(workload: Workload, data: &Datasets, held_out: HeldOut, task: T) -> Result<T::Out, BenchError> {
    match (workload, data) {
        (Workload::Cnn, Datasets::Images { train, validation, test }) => {
            let held = pick(held_out, validation, test).clone();
            let mut evaluate = |m: &_| classification::evaluate(m, &held, IMAGE_EVAL_BATCH);
            task.run(classification::model(), &classification::train_data(train.clone()), &mut evaluate)
        }
        (Workload::SoftmaxRegression, Datasets::Images { train, validation, test }) => {
            let held = pick(held_out, validation, test).clone();
            let mut evaluate = |m: &_| classification::evaluate(m, &held, IMAGE_EVAL_BATCH);
            let data = classification::train_data(train.clone());
            task.run(classification::softmax_regression(), &data, &mut evaluate)
        }
        (Workload::CharGpt, Datasets::Text { train, validation, test }) => {
            let held = pick(held_out, validation, test).clone();
            let mut evaluate = |m: &_| language_model::evaluate(m, &held, TEXT_EVAL_BATCH);
            let config = CharGptConfig::fortunes();
            let init = |device: &Device| config.init(device);
            let model = Model {
                name: language_model::model_name(&config),
                init: &init,
            };
            task.run(model, &language_model::train_data(train.clone()), &mut evaluate)
        }
        (Workload::Rosenbrock, Datasets::None) => {
            let data = test_functions::steps(test_functions::STEPS_PER_EPOCH);
            task.run(test_functions::rosenbrock(), &data, &mut test_function_evaluation)
        }
        (Workload::Quadratic, Datasets::None) => {
            let data = test_functions::steps(test_functions::STEPS_PER_EPOCH);
            task.run(test_functions::quadratic(), &data, &mut test_function_evaluation)
        }
        (workload, _) => Err(BenchError::Invalid(format!("the data loaded is not {}'s", workload.name()))),
    }
}

fn pick<T>(held_out: HeldOut, validation: T, test: T) -> T {
    match held_out {
        HeldOut::Validation => validation,
        HeldOut::Test => test,
    }
}

fn test_function_evaluation<M>(model: &M) -> Evaluation
where
    M: InferenceStep<Input = NoData, Output = RegressionOutput>,
{
    test_functions::evaluate(model)
}

/// Runs `job` on the workload's model and data.
fn train(workload: Workload, data: &Datasets, job: Job, observer: &mut dyn Observer) -> Result<Vec<Record>, BenchError> {
    let held_out = job.held_out;
    visit(workload, data, held_out, Training { job, observer })
}

/// A training run through [`fit::fit`], with a record per evaluation (step 0, the initial
/// weights, included for a run with `eval_every`).
struct Training<'a, 'o> {
    job: Job<'a>,
    observer: &'o mut dyn Observer,
}

impl Task for Training<'_, '_> {
    type Out = Vec<Record>;

    fn run<M, I, Bt>(
        self,
        model: Model<M>,
        data: &TrainData<I, Bt>,
        evaluate: &mut dyn FnMut(&M) -> Evaluation,
    ) -> Result<Vec<Record>, BenchError>
    where
        M: Trainable,
        I: Example,
        Bt: Batcher<I, M::Input> + Clone + 'static,
    {
        let Self { job, observer } = self;
        // The weights fit would draw for the seed (it seeds the autodiff device, then
        // initialises), drawn here to evaluate them first.
        let device = job.target.device.clone().autodiff();
        device.seed(job.seed);
        let weights = (model.init)(&device);
        let batch_size = job.batch_size.min(data.dataset.len().max(1));
        let batches = data.dataset.len().div_ceil(batch_size).max(1);
        let config = RunConfig {
            epochs: job.steps.div_ceil(batches),
            batch_size,
            seed: job.seed,
            shuffle: true,
            checkpoint_every: None,
        };
        let controls = ControlsSpec::optimizer(job.spec.clone());
        let label = format!("{} {} {} seed {}", job.target.backend, job.template.phase.as_deref().unwrap_or(""), job.spec, job.seed);
        observer.started(&label);
        let mut curve = Curve {
            job: &job,
            observer,
            label,
            mark: Instant::now(),
            step_ms: Vec::new(),
            records: Vec::new(),
        };
        if job.eval_every.is_some() {
            curve.record(0, &evaluate(&weights.valid()));
            curve.mark = Instant::now();
        }
        let outcome = fit::fit(
            &job.target.device,
            model,
            data,
            Fit {
                config,
                controls: &controls,
                start: Start::Weights(Box::new(weights)),
                checkpointer: None,
                evaluate: Some(evaluate),
                observer: &mut curve,
            },
        );
        match outcome {
            Ok(_) => {}
            Err(Stopped {
                error: err @ TrainError::NonFiniteLoss { step, .. },
                ..
            }) => {
                let mut failed = job.template.clone();
                failed.seed = Some(job.seed);
                failed.step = Some(step as u64);
                failed.note = Some(format!("diverged: {err}"));
                curve.observer.measured(&failed);
                curve.records.push(failed);
            }
            Err(stopped) => return Err(stopped.error.into()),
        }
        Ok(curve.records)
    }
}

/// Bytes of `spec`'s state after one step on the workload's first batch, as
/// `ModuleOptimizer::to_record` serializes it: the tensors, in the dtype the backend holds them,
/// with their names (a few hundred bytes per parameter tensor).
fn state_bytes(
    workload: Workload,
    data: &Datasets,
    target: &Target,
    spec: &OptimizerSpec,
    batch_size: usize,
) -> Result<u64, BenchError> {
    visit(workload, data, HeldOut::Validation, StateBytes { target, spec, batch_size })
}

struct StateBytes<'a> {
    target: &'a Target,
    spec: &'a OptimizerSpec,
    batch_size: usize,
}

impl Task for StateBytes<'_> {
    type Out = u64;

    fn run<M, I, Bt>(
        self,
        model: Model<M>,
        data: &TrainData<I, Bt>,
        _evaluate: &mut dyn FnMut(&M) -> Evaluation,
    ) -> Result<u64, BenchError>
    where
        M: Trainable,
        I: Example,
        Bt: Batcher<I, M::Input> + Clone + 'static,
    {
        let device = self.target.device.clone().autodiff();
        device.seed(0);
        let weights = (model.init)(&device);
        let items: Vec<I> = (0..self.batch_size.min(data.dataset.len())).filter_map(|i| data.dataset.get(i).ok()).collect();
        let output = TrainStep::step(&weights, data.batcher.batch(items, &device));
        let mut controls = Controls::new(&ControlsSpec::optimizer(self.spec.clone())).map_err(TrainError::from)?;
        if let Err(refused) = controls.step(weights, output.grads) {
            return Err(TrainError::from(refused.error).into());
        }
        let bytes = controls
            .module_optimizer()
            .to_record()
            .into_bytes()
            .map_err(|e| BenchError::Invalid(format!("{}: its state cannot be serialized: {e:?}", self.spec)))?;
        Ok(bytes.len() as u64)
    }
}

/// Turns the training loop's reports into records.
struct Curve<'a> {
    job: &'a Job<'a>,
    observer: &'a mut dyn Observer,
    label: String,
    /// The end of the last step or evaluation: the next step's interval starts there.
    mark: Instant,
    step_ms: Vec<f64>,
    records: Vec<Record>,
}

impl Curve<'_> {
    fn record(&mut self, step: usize, evaluation: &Evaluation) {
        let mut record = self.job.template.clone();
        record.seed = Some(self.job.seed);
        record.step = Some(step as u64);
        let value = self.job.metric.of(evaluation);
        record.metric = value.is_finite().then_some(value);
        if !value.is_finite() {
            record.note = Some(format!("{} is {value}", self.job.metric.name));
        }
        record.train_s = Some(self.step_ms.iter().fold(0.0, |sum, ms| sum + ms) / 1e3);
        record.median_ms = crate::stats::Summary::of(&self.step_ms).map(|s| s.median);
        self.observer.measured(&record);
        self.records.push(record);
    }
}

impl fit::Observer for Curve<'_> {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        let now = Instant::now();
        self.step_ms.push((now - self.mark).as_secs_f64() * 1e3);
        self.mark = now;
        if report.step % 50 == 0 {
            self.observer.started(&format!("{} step {}/{} loss {:.4}", self.label, report.step, self.job.steps, report.loss));
        }
        Ok(())
    }

    fn on_epoch(&mut self, _report: &EpochReport) -> Result<(), ObserverError> {
        // The epoch's own evaluation (on the run's held-out split) is not a point of the curve:
        // the curve's points are every `eval_every` steps.
        self.mark = Instant::now();
        Ok(())
    }

    fn next(&mut self, report: &StepReport) -> Next {
        if report.step >= self.job.steps {
            Next::Finish
        } else if self.job.eval_every.is_some_and(|n| report.step.is_multiple_of(n)) {
            Next::Evaluate
        } else {
            Next::Continue
        }
    }

    fn on_evaluation(&mut self, report: &StepReport, evaluation: &Evaluation) -> Result<(), ObserverError> {
        self.record(report.step, evaluation);
        self.mark = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quiet;
    use adamlab_backend::BackendKind;

    fn config(workload: Workload, optimizers: &str, lr_grid: &[f64], budget: Budget) -> ShootoutConfig {
        ShootoutConfig {
            targets: vec![Target::new(BackendKind::Flex).unwrap()],
            workload,
            optimizers: optimizers.split(';').map(|s| OptimizerSpec::parse(s).unwrap()).collect(),
            lr_grid: lr_grid.to_vec(),
            seeds: vec![0, 1],
            budget,
        }
    }

    /// On Rosenbrock's function, SGD diverges at lr 1e-2 (its first steps land where |∇f| is in
    /// the thousands) and gets closest at 1e-3 of the three rates: the diverged rate is recorded
    /// as such, the tuned run takes 1e-3, evaluates at steps 0, 50, …, 200 (the loop's `Next`:
    /// evaluations every 50 steps, a finish at 200, inside the first epoch of 1000 steps), and a
    /// deterministic workload runs one seed only.
    #[test]
    fn tuning_skips_a_diverged_rate_and_runs_the_best_with_evaluations_every_n_steps() {
        let budget = Budget {
            batch_size: 1,
            tune_steps: 100,
            steps: 200,
            eval_every: 50,
        };
        let config = config(Workload::Rosenbrock, "sgd", &[0.1, 1.0, 10.0], budget);
        let records = run(&config, &Datasets::None, &mut Quiet).unwrap();
        let tune: Vec<&Record> = records.iter().filter(|r| r.phase.as_deref() == Some(TUNE)).collect();
        let lrs: Vec<f64> = tune.iter().map(|r| r.lr.unwrap()).collect();
        assert_eq!(lrs, [1e-4, 1e-3, 1e-2]);
        assert!(tune[2].metric.is_none() && tune[2].note.as_deref().unwrap().starts_with("diverged"), "{:?}", tune[2]);
        assert!(tune[1].metric.unwrap() < tune[0].metric.unwrap());
        assert_eq!((tune[0].step, tune[1].step), (Some(100), Some(100)));
        let run: Vec<&Record> = records.iter().filter(|r| r.phase.as_deref() == Some(RUN)).collect();
        let steps: Vec<u64> = run.iter().map(|r| r.step.unwrap()).collect();
        assert_eq!(steps, [0, 50, 100, 150, 200], "one seed: a test function has no randomness");
        assert!(run.iter().all(|r| r.lr == Some(1e-3) && r.seed == Some(0)));
        // The tuned run repeats the tuning run's first 100 steps: the same distance at step 100.
        assert_eq!(run[2].metric, tune[1].metric);
        let times: Vec<f64> = run.iter().map(|r| r.train_s.unwrap()).collect();
        assert!(times[0] == 0.0 && times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
        assert_eq!(run[0].median_ms, None);
        assert!(run[4].median_ms.unwrap() > 0.0);
        // Plain SGD keeps no state: the serialized record holds the step count's scalars only.
        let sgd_state = run[0].state_bytes.unwrap();
        let adam = config_with(Workload::Rosenbrock, "adam", budget);
        let adam_records = run_quietly(&adam);
        let adam_state = adam_records.iter().find_map(|r| r.state_bytes).unwrap();
        // A grid of one rate runs it without a tuning run.
        assert!(adam_records.iter().all(|r| r.phase.as_deref() == Some(RUN) && r.lr == Some(1e-3)));
        assert!(adam_state > sgd_state, "adam {adam_state} bytes, sgd {sgd_state}");
    }

    fn config_with(workload: Workload, optimizer: &str, budget: Budget) -> ShootoutConfig {
        config(workload, optimizer, &[1.0], budget)
    }

    fn run_quietly(config: &ShootoutConfig) -> Vec<Record> {
        run(config, &Datasets::None, &mut Quiet).unwrap()
    }

    #[test]
    fn the_grid_multiplies_the_centre_and_refuses_rates_out_of_range() {
        let spec = OptimizerSpec::parse("adam(lr=3e-3)").unwrap();
        let lrs: Vec<f64> = grid(&spec, &[0.1, 1.0, 10.0]).into_iter().map(|s| s.unwrap().lr()).collect();
        assert_eq!(lrs, [3e-4, 3e-3, 3e-2]);
        // A rate the optimizer refuses (here a negative one, which `validate` would not let
        // through) is reported, not tried.
        let refused = grid(&spec, &[-1.0]);
        assert!(refused[0].as_ref().is_err_and(|e| e.contains("lr -0.003")), "{refused:?}");
    }

    #[test]
    fn better_prefers_finite_values_in_the_metrics_direction() {
        let accuracy = Workload::Cnn.metric();
        let loss = Workload::CharGpt.metric();
        assert!(accuracy.better(0.9, 0.8) && !accuracy.better(0.8, 0.9));
        assert!(loss.better(1.5, 2.0) && !loss.better(2.0, 1.5));
        assert!(loss.better(9.0, f64::NAN) && !loss.better(f64::NAN, 9.0) && !loss.better(f64::INFINITY, 9.0));
    }

    #[test]
    fn a_configuration_a_user_can_get_wrong_is_refused() {
        let budget = Workload::Quadratic.default_budget();
        let mut c = config(Workload::Quadratic, "adam", &[1.0], budget);
        c.lr_grid = vec![0.0];
        assert!(c.validate().unwrap_err().to_string().contains("--lr-grid"));
        c.lr_grid = vec![1.0];
        c.budget.batch_size = 8;
        assert!(c.validate().unwrap_err().to_string().contains("has none"));
        c.budget.batch_size = 1;
        c.budget.eval_every = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn workloads_are_named_as_adamlab_train_names_them() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.name()), Some(w));
        }
        assert_eq!(Workload::parse("mlp"), None);
    }

    #[test]
    fn learning_rates_are_overridden_by_registry_name_and_checked() {
        let specs = vec![OptimizerSpec::parse("adam").unwrap(), OptimizerSpec::parse("burn-adam").unwrap()];
        let out = with_learning_rates(specs.clone(), &[("burn-adam".into(), 0.01)]).unwrap();
        assert_eq!((out[0].lr(), out[1].lr()), (1e-3, 0.01));
        let err = with_learning_rates(specs.clone(), &[("nosuch".into(), 0.1)]).unwrap_err();
        assert!(err.to_string().contains("`nosuch` is not among"), "{err}");
        assert!(with_learning_rates(specs.clone(), &[("adam".into(), -1.0)]).is_err());
        let twice = [("adam".to_string(), 0.1), ("adam".to_string(), 0.2)];
        let err = with_learning_rates(specs, &twice).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }

    #[test]
    fn an_lr_given_in_the_spec_and_by_lr_is_refused_naming_both() {
        let specs = vec![OptimizerSpec::parse("adam(lr=0.1)").unwrap(), OptimizerSpec::parse("sgd").unwrap()];
        let err = with_learning_rates(specs.clone(), &[("adam".into(), 0.2)]).unwrap_err().to_string();
        assert!(err.contains("adam(lr=0.1)") && err.contains("--lr adam=") && err.contains("twice"), "{err}");
        assert_eq!(err.lines().count(), 1);
        // The other optimizer's lr is still free to set.
        let out = with_learning_rates(specs, &[("sgd".into(), 0.05)]).unwrap();
        assert_eq!((out[0].lr(), out[1].lr()), (0.1, 0.05));
    }

    #[test]
    fn lr_overrides_parse_as_name_equals_value() {
        assert_eq!(parse_lr_override("sgd=0.05").unwrap(), ("sgd".to_string(), 0.05));
        assert!(parse_lr_override("sgd").is_err());
        assert!(parse_lr_override("sgd=fast").is_err());
    }

    #[test]
    fn every_registered_optimizer_takes_part_by_default() {
        assert_eq!(every_registered().len(), registry().len());
    }
}
