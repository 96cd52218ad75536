//! `adamlab train`.

use crate::args::{BackendArgs, ModelArg, TrainArgs};
use crate::error::CliError;
use crate::progress::Reporter;
use adamlab_train::journal::Journal;
use adamlab_backend::{default_backend, describe, device};
use adamlab_data::paths::{self, Named};
use adamlab_data::{MnistBatch, MnistDataset, Split};
use adamlab_models::pytorch::{
    Loaded, check_writable, load_pytorch_safetensors, save_pytorch_safetensors,
};
use adamlab_optim::clip::{Clip, MIN_NORM_TYPE};
use adamlab_optim::schedule::ScheduleSpec;
use adamlab_optim::{OptimizerSpec, Value};
use adamlab_train::checkpoint::{Checkpointer, Mode};
use adamlab_train::controls::{Controls, ControlsError, ControlsSpec, GroupSpec};
use adamlab_train::lookahead::Lookahead;
use adamlab_train::swa::Swa;
use adamlab_train::fit::{
    self, Evaluation, Example, Fit, Model, RunConfig, Start, Stopped, TrainData, Trainable, Trained,
};
use adamlab_train::{classification, mlp};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::train::{ClassificationOutput, InferenceStep, TrainStep};
use burn::module::Module;
use burn::tensor::Device;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) mod workloads;

/// The article's defaults per model: (learning rate, epochs).
const CNN_DEFAULTS: (f64, usize) = (1e-3, 2);
/// The article's CNN batch size.
const CNN_BATCH_SIZE: usize = 64;
const MLP_DEFAULTS: (f64, usize) = (0.01, 100);

/// The backend the user asked for, or the default one, with its description.
pub fn resolve_device(args: &BackendArgs) -> Result<(Device, String), CliError> {
    let kind = match args.backend {
        Some(kind) => kind,
        None => default_backend()?,
    };
    Ok((device(kind)?, describe(kind)))
}

/// Runs `adamlab train`.
pub fn run(args: &TrainArgs) -> Result<(), CliError> {
    let (default_lr, default_epochs) = match args.model {
        ModelArg::Cnn => CNN_DEFAULTS,
        ModelArg::Mlp => MLP_DEFAULTS,
        workload => workloads::defaults(workload),
    };
    let spec = optimizer_spec(args, default_lr)?;
    check_flags(args)?;
    let controls = controls_spec(args, spec)?;
    // A checkpoint directory in use is refused at once; its lock is taken after the data are
    // read ([`Outputs::prepare`]).
    if let Some(dir) = &args.checkpoint_dir {
        Checkpointer::check_not_locked(dir)?;
    }
    let epochs = args.epochs.unwrap_or(default_epochs);
    let (device, described) = resolve_device(&args.backend)?;
    match args.model {
        ModelArg::Cnn => train_cnn(args, controls, epochs, device, &described),
        ModelArg::Mlp => train_mlp(args, controls, epochs, device, &described),
        workload => workloads::train(workload, args, controls, epochs, device, &described),
    }
}

/// The training controls of `--lr-schedule`, `--clip-grad-norm`/`--clip-norm-type`,
/// `--clip-grad-value`, `--no-decay-bias`, `--accumulate`, `--ema`, `--skip-nonfinite`,
/// `--lookahead` and `--swa-*` around
/// `optimizer`, checked by building them once:
/// a bad spec or value is refused before any file is opened.
fn controls_spec(args: &TrainArgs, optimizer: OptimizerSpec) -> Result<ControlsSpec, CliError> {
    let usage = |message: String| Err(CliError::Usage(message));
    let schedule = match &args.lr_schedule {
        Some(text) => Some(ScheduleSpec::parse(text).map_err(ControlsError::from)?),
        None => None,
    };
    let threshold = |x: f64| x.is_finite() && x >= 0.0;
    let clip = match (args.clip_grad_norm, args.clip_grad_value) {
        (Some(max_norm), _) => {
            let norm_type = args.clip_norm_type.unwrap_or(2.0);
            if !threshold(max_norm) {
                return usage(format!("--clip-grad-norm {max_norm:?}: give a finite number ≥ 0"));
            }
            if norm_type.is_nan() || norm_type < MIN_NORM_TYPE {
                return usage(format!(
                    "--clip-norm-type {norm_type:?}: give a p > 0 (at least {MIN_NORM_TYPE:?}, so that 1/p is finite in f32), or inf"
                ));
            }
            Some(Clip::Norm { max_norm, norm_type })
        }
        (None, Some(value)) => {
            if !threshold(value) {
                return usage(format!("--clip-grad-value {value:?}: give a finite number ≥ 0"));
            }
            Some(Clip::Value(value))
        }
        (None, None) => None,
    };
    let mut groups = Vec::new();
    if args.no_decay_bias {
        let group = GroupSpec::no_decay_bias();
        for (keyword, value) in &group.overrides {
            if let Err(err) = optimizer.with(keyword, value.clone()) {
                return usage(format!("--no-decay-bias: {err}"));
            }
        }
        groups.push(group);
    }
    if args.accumulate == Some(0) {
        return usage("--accumulate 0: give at least 1 batch per step".into());
    }
    if let Some(decay) = args.ema
        && !(0.0..=1.0).contains(&decay)
    {
        return usage(format!("--ema {decay}: give a decay in [0, 1] (0.999 is usual)"));
    }
    let lookahead = args.lookahead.map(|k| Lookahead { k, alpha: args.lookahead_alpha.unwrap_or(0.5) });
    if let Some(lookahead) = lookahead
        && (lookahead.k == 0 || !(0.0..=1.0).contains(&lookahead.alpha))
    {
        return usage(format!(
            "--lookahead {} --lookahead-alpha {}: give K ≥ 1 and ALPHA in [0, 1]",
            lookahead.k, lookahead.alpha
        ));
    }
    let swa = match (args.swa_after, args.swa_lr) {
        (Some(after), Some(swa_lr)) => Some(Swa {
            after,
            swa_lr,
            anneal_epochs: args.swa_anneal_epochs.unwrap_or(10),
            cosine: args.swa_anneal_strategy.as_deref() != Some("linear"),
        }),
        _ => None,
    };
    if let Some(swa) = swa
        && (swa.after == 0 || !(swa.swa_lr.is_finite() && swa.swa_lr >= 0.0))
    {
        return usage(format!(
            "--swa-after {} --swa-lr {}: give at least 1 epoch and a finite lr ≥ 0",
            swa.after, swa.swa_lr
        ));
    }
    let spec = ControlsSpec {
        optimizer,
        groups,
        schedule,
        clip,
        accumulate: args.accumulate.unwrap_or(1),
        ema: args.ema,
        skip_nonfinite: args.skip_nonfinite,
        lookahead,
        swa,
    };
    Controls::new(&spec)?;
    Ok(spec)
}

/// `with {optimizer} (lr {lr})`, and the controls when there are any, for a run's first line.
fn describe_run(controls: &ControlsSpec) -> String {
    let optimizer = &controls.optimizer;
    // The spec names its lr (`adam(lr=0.001)`): it is not repeated.
    match controls.describe_controls() {
        Some(rest) => format!("{optimizer} ({rest})"),
        None => optimizer.to_string(),
    }
}

/// The optimizer spec of `--optimizer`, with `--lr` and the Adam-era flags (`--beta1`, `--eps`,
/// …) folded in as the keywords they stand for, and the model's learning rate when none is given.
pub fn optimizer_spec(args: &TrainArgs, default_lr: f64) -> Result<OptimizerSpec, CliError> {
    let mut spec = OptimizerSpec::parse(&args.optimizer)?;
    // One source per keyword: a flag never overrides what the spec says.
    let given_twice = |keyword: &str, flag: &str| {
        CliError::Usage(format!(
            "`{keyword}` is given twice, in --optimizer '{}' and {flag}: give it once",
            adamlab_optim::spec::escaped(&args.optimizer)
        ))
    };
    if let Some(lr) = args.lr {
        if spec.is_given("lr") {
            return Err(CliError::Usage(format!(
                "the learning rate is given twice, in --optimizer '{}' and --lr: give it once",
                adamlab_optim::spec::escaped(&args.optimizer)
            )));
        }
        spec = spec.with("lr", Value::Number(lr))?;
    } else if !spec.is_given("lr") {
        spec = spec.with("lr", Value::Number(default_lr))?;
    }
    if args.beta1.is_some() || args.beta2.is_some() {
        if spec.is_given("betas") {
            let flag = if args.beta1.is_some() { "--beta1" } else { "--beta2" };
            return Err(given_twice("betas", flag));
        }
        // An optimizer without `betas` refuses the keyword below, naming the ones it has.
        let (beta1, beta2) = if spec.args().values().contains_key("betas") {
            spec.args().pair("betas")
        } else {
            (0.9, 0.999)
        };
        let betas = Value::Tuple(vec![
            Value::Number(args.beta1.unwrap_or(beta1)),
            Value::Number(args.beta2.unwrap_or(beta2)),
        ]);
        spec = spec.with("betas", betas)?;
    }
    let flags = [
        ("eps", "--eps", args.eps.map(Value::Number)),
        ("weight_decay", "--weight-decay", args.weight_decay.map(Value::Number)),
        ("amsgrad", "--amsgrad", args.amsgrad.then_some(Value::Bool(true))),
        ("maximize", "--maximize", args.maximize.then_some(Value::Bool(true))),
    ];
    for (keyword, flag, value) in flags {
        if let Some(value) = value {
            if spec.is_given(keyword) {
                return Err(given_twice(keyword, flag));
            }
            spec = spec.with(keyword, value)?;
        }
    }
    Ok(spec)
}

/// Flags that contradict each other or the model, or values out of range, refused before any
/// work starts.
fn check_flags(args: &TrainArgs) -> Result<(), CliError> {
    let usage = |message: &str| Err(CliError::Usage(message.to_string()));
    if args.epochs == Some(0) {
        return usage(
            "--epochs 0 trains nothing (the initial weights would pass for trained ones): give at \
             least 1",
        );
    }
    if args.checkpoint_every == Some(0) {
        return usage("--checkpoint-every must be at least 1 (steps between checkpoints)");
    }
    if args.keep_checkpoints == 0 {
        return usage("--keep-checkpoints must be at least 1: resuming needs the latest");
    }
    if args.resume && args.init.is_some() {
        return usage("--resume continues from the checkpoint's weights: drop --init");
    }
    match args.model {
        // The models with a data set: its sizes must leave something to train and evaluate on.
        ModelArg::Cnn | ModelArg::CharGpt | ModelArg::SoftmaxRegression => {
            if args.batch_size == Some(0) {
                return usage("--batch-size must be at least 1");
            }
            if args.limit_train == Some(0) {
                return usage("--limit-train 0 leaves nothing to train on: give at least 1");
            }
            if args.limit_test == Some(0) {
                return usage("--limit-test 0 leaves nothing to evaluate on: give 1 or more");
            }
        }
        ModelArg::Mlp => {
            // `--data-dir` has a default and an environment variable: it counts as given when
            // it is neither.
            let data_dir = &args.data.data_dir;
            let from_env = std::env::var_os(adamlab_data::DATA_DIR_ENV)
                .is_some_and(|env| Path::new(&env) == data_dir);
            let data_dir_given = data_dir != Path::new(adamlab_data::DEFAULT_DATA_DIR) && !from_env;
            let cnn_only = data_flag_given(args).or(data_dir_given.then_some("--data-dir"));
            if let Some(flag) = cnn_only {
                return Err(CliError::Usage(format!(
                    "{flag} applies to --model cnn; the MLP trains on the article's two points, in \
                     one batch"
                )));
            }
        }
        ModelArg::Rosenbrock | ModelArg::Quadratic => workloads::check_test_function_flags(args)?,
    }
    Ok(())
}

/// The first flag given that shapes a data set's batches (`--batch-size`, `--limit-*`,
/// `--no-shuffle`): refused for the models without one.
fn data_flag_given(args: &TrainArgs) -> Option<&'static str> {
    [
        (args.batch_size.is_some(), "--batch-size"),
        (args.limit_train.is_some(), "--limit-train"),
        (args.limit_test.is_some(), "--limit-test"),
        (args.no_shuffle, "--no-shuffle"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

/// The run's outputs, checked, opened or locked before any step is taken, so that a run never
/// trains for nothing; and after the data and `--init` are read, so that a run refused for them
/// creates nothing (no journal, no checkpoint directory, no lock).
struct Outputs {
    journal: Option<Journal>,
    checkpointer: Option<Checkpointer>,
}

impl Outputs {
    fn prepare(args: &TrainArgs) -> Result<Self, CliError> {
        fn named<'a>(flag: &'a str, path: &'a Option<PathBuf>) -> Option<Named<'a>> {
            path.as_deref().map(|path| Named { flag, path })
        }
        let inputs: Vec<Named> = named("--init", &args.init).into_iter().collect();
        let outputs: Vec<Named> = [named("--save", &args.save), named("--metrics-out", &args.metrics_out)]
            .into_iter()
            .flatten()
            .collect();
        let folders: Vec<Named> = named("--checkpoint-dir", &args.checkpoint_dir).into_iter().collect();
        if let Some(message) = paths::clash(&inputs, &outputs, &folders) {
            return Err(CliError::Usage(message));
        }
        if let Some(path) = &args.save {
            check_writable(path).map_err(|source| CliError::Output {
                flag: "--save",
                path: path.clone(),
                source,
            })?;
        }
        let journal = match &args.metrics_out {
            Some(path) => Some(Journal::open(path).map_err(|source| CliError::Output {
                flag: "--metrics-out",
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let mode = if args.resume {
            Mode::Resume
        } else if args.overwrite {
            Mode::Overwrite
        } else {
            Mode::Fresh
        };
        let checkpointer = match &args.checkpoint_dir {
            Some(dir) => Some(Checkpointer::open(dir, mode, args.keep_checkpoints)?),
            None => None,
        };
        Ok(Self {
            journal,
            checkpointer,
        })
    }
}

fn train_cnn(
    args: &TrainArgs,
    controls: ControlsSpec,
    epochs: usize,
    device: Device,
    described: &str,
) -> Result<(), CliError> {
    let classifier = Classifier { model: classification::model(), title: "the article's CNN", batch_size: CNN_BATCH_SIZE };
    train_classifier(args, controls, epochs, device, described, classifier)
}

/// A classifier of MNIST-format images ([`classification::evaluate`] reports its loss and
/// accuracy): the model, how the run's first line names it, its default batch size.
pub(crate) struct Classifier<M: 'static> {
    pub(crate) model: Model<'static, M>,
    pub(crate) title: &'static str,
    pub(crate) batch_size: usize,
}

/// Trains a classifier on `--data-dir`'s images (the article's CNN, softmax regression),
/// evaluating on its test images after every epoch.
pub(crate) fn train_classifier<M>(
    args: &TrainArgs,
    controls: ControlsSpec,
    epochs: usize,
    device: Device,
    described: &str,
    classifier: Classifier<M>,
) -> Result<(), CliError>
where
    M: Module
        + TrainStep<Input = MnistBatch, Output = ClassificationOutput>
        + InferenceStep<Input = MnistBatch, Output = ClassificationOutput>
        + 'static,
{
    let mut train_set = MnistDataset::load(&args.data.data_dir, Split::Train)?;
    if let Some(n) = args.limit_train {
        train_set = train_set.truncated(n);
    }
    let mut test_set = MnistDataset::load(&args.data.data_dir, Split::Test)?;
    if let Some(n) = args.limit_test {
        test_set = test_set.truncated(n);
    }
    if test_set.is_empty() {
        return Err(CliError::Usage("the test set is empty: nothing to evaluate on".into()));
    }
    let asked = args.batch_size.unwrap_or(classifier.batch_size);
    let batch_size = asked.min(train_set.len().max(1));
    if batch_size < asked {
        tell!(
            "note: --batch-size {asked} is more than the {} training images: each epoch is one \
             batch of {batch_size}",
            train_set.len()
        );
    }
    let config = RunConfig {
        epochs,
        batch_size,
        seed: args.seed,
        shuffle: !args.no_shuffle,
        checkpoint_every: args.checkpoint_every,
    };
    let start = start(args, &classifier.model, &device)?;
    // Opened (the checkpoint directory locked) only once the data and `--init` are read: a run
    // refused for either leaves nothing behind.
    let outputs = Outputs::prepare(args)?;
    say!(
        "training {} on {} images from {} with {}, batch {}, {epochs} epoch(s), on {described}",
        classifier.title,
        train_set.len(),
        args.data.data_dir.display(),
        describe_run(&controls),
        config.batch_size,
    );
    let test_set = Arc::new(test_set);
    let mut evaluate = |model: &M| classification::evaluate(model, &test_set, batch_size.max(256));
    let run = Run {
        args,
        controls: &controls,
        config,
        device: &device,
        outputs,
        reporter: |journal| Reporter::new(epochs, journal),
        saved: say_saved,
    };
    let data = classification::train_data(Arc::new(train_set));
    run.fit(classifier.model, &data, start, Some(&mut evaluate))
}

fn train_mlp(
    args: &TrainArgs,
    controls: ControlsSpec,
    epochs: usize,
    device: Device,
    described: &str,
) -> Result<(), CliError> {
    // One full-batch step per epoch: a schedule too short for the run is refused before any file
    // is opened.
    controls.check_run_length(epochs)?;
    let start = start(args, &mlp::model(), &device)?;
    let outputs = Outputs::prepare(args)?;
    // stderr: stdout carries exactly the article's ten lines.
    tell!(
        "training the article's MLP with {} for {epochs} epochs on {described}",
        describe_run(&controls)
    );
    let data = mlp::article_points();
    let run = Run {
        args,
        controls: &controls,
        // One full-batch step per epoch, in the article's order.
        config: RunConfig {
            epochs,
            batch_size: data.dataset.len(),
            seed: args.seed,
            shuffle: false,
            checkpoint_every: args.checkpoint_every,
        },
        device: &device,
        outputs,
        reporter: |journal| Reporter::article(epochs, journal),
        saved: |path: &Path| tell!("saved the weights to {}", path.display()),
    };
    run.fit(mlp::model(), &data, start, None)
}

/// What `adamlab train` does around the training loop, for any model: its start (`--init`,
/// `--resume` or the seed), its reporter, and where the weights go at the end or after a failure.
struct Run<'a, R, S> {
    args: &'a TrainArgs,
    controls: &'a ControlsSpec,
    config: RunConfig,
    device: &'a Device,
    outputs: Outputs,
    reporter: R,
    /// Says where the trained weights were saved.
    saved: S,
}

impl<R, S> Run<'_, R, S>
where
    R: FnOnce(Option<Journal>) -> Reporter,
    S: Fn(&Path),
{
    fn fit<M, I, Bt>(
        self,
        model: Model<M>,
        data: &TrainData<I, Bt>,
        start: Start<M>,
        evaluate: Option<&mut dyn FnMut(&M) -> Evaluation>,
    ) -> Result<(), CliError>
    where
        M: Trainable,
        I: Example,
        Bt: Batcher<I, M::Input> + Clone + 'static,
    {
        let args = self.args;
        let Outputs {
            journal,
            checkpointer,
        } = self.outputs;
        let mut reporter = (self.reporter)(journal);
        let trained = fit::fit(
            self.device,
            model,
            data,
            Fit {
                config: self.config,
                controls: self.controls,
                start,
                checkpointer: checkpointer.as_ref(),
                // Reborrowed for the loop's shorter lifetime.
                evaluate: evaluate.map(|e| -> &mut dyn FnMut(&M) -> Evaluation { e }),
                observer: &mut reporter,
            },
        );
        match trained {
            Ok(model) => save_weights(args.save.as_deref(), &model, self.saved),
            Err(Stopped { error, trained }) => Err(match trained {
                Some(Trained { model, step }) => CliError::Stopped {
                    error: Box::new(error.into()),
                    kept: keep_partial(args.save.as_deref(), &model, step),
                },
                None => error.into(),
            }),
        }
    }
}

/// Where the run starts: `--resume`, the weights of `--init`, or fresh ones from the seed.
fn start<M: Module>(args: &TrainArgs, model: &Model<M>, device: &Device) -> Result<Start<M>, CliError> {
    Ok(if args.resume {
        Start::Resume
    } else if let Some(path) = &args.init {
        let template = (model.init)(&device.clone().autodiff());
        Start::Weights(Box::new(load_init(template, path)?))
    } else {
        Start::Seeded
    })
}

/// Weights from `--init`, with a note when they had to be converted to float32.
fn load_init<M: Module>(model: M, path: &Path) -> Result<M, CliError> {
    let Loaded { model, converted } = load_pytorch_safetensors(model, path)?;
    if !converted.is_empty() {
        tell!("note: {}: {converted}", path.display());
    }
    Ok(model)
}

fn say_saved(path: &Path) {
    say!("saved the weights to {}", path.display());
}

/// Writes the trained weights to `--save`, if given; should that fail, to a rescue file that the
/// error names.
fn save_weights<M: Module>(
    save: Option<&Path>,
    model: &M,
    saved: impl Fn(&Path),
) -> Result<(), CliError> {
    let Some(path) = save else { return Ok(()) };
    match save_pytorch_safetensors(model, path) {
        Ok(()) => {
            saved(path);
            Ok(())
        }
        Err(err) => Err(CliError::Stopped {
            error: Box::new(err.into()),
            kept: rescue(model, "the trained weights"),
        }),
    }
}

/// Keeps the weights of a run that failed after `step` steps: in `--save` if given, else (or
/// should that fail too) in a rescue file. Returns the words saying where they are.
fn keep_partial<M: Module>(save: Option<&Path>, model: &M, step: usize) -> String {
    let what = format!("the weights after step {step}");
    let Some(path) = save else {
        return rescue(model, &what);
    };
    match save_pytorch_safetensors(model, path) {
        Ok(()) => format!("{what} are saved in {}", path.display()),
        Err(err) => format!("{err}; {}", rescue(model, &what)),
    }
}

/// Writes `model` to `adamlab-rescue-PID.safetensors` in the current directory, else in the
/// temporary directory. Returns the words saying where `what` went.
fn rescue<M: Module>(model: &M, what: &str) -> String {
    let name = format!("adamlab-rescue-{}.safetensors", std::process::id());
    let mut failures = Vec::new();
    for dir in [PathBuf::from("."), std::env::temp_dir()] {
        let path = dir.join(&name);
        match save_pytorch_safetensors(model, &path) {
            Ok(()) => return format!("{what} are in the rescue file {}", path.display()),
            Err(err) => failures.push(err.to_string()),
        }
    }
    format!("{what} could not be saved anywhere ({})", failures.join("; "))
}
