//! `adamlab train` for the workloads beyond the article's two programs: `char-gpt` on Debian's
//! fortune cookies, `softmax-regression` on Fashion-MNIST, and the test functions `rosenbrock`
//! and `quadratic`. Each goes through the same [`Run`] (outputs, start, reporter, saving) as the
//! article's models.

use super::{Classifier, Outputs, Run, data_flag_given, describe_run, say_saved, start, train_classifier};
use crate::args::{ModelArg, TrainArgs};
use crate::error::CliError;
use crate::progress::{Labels, Reporter};
use adamlab_data::fortunes::{Corpus, TextWindows};
use adamlab_data::{DATA_DIR_ENV, DEFAULT_DATA_DIR};
use adamlab_models::{CharGpt, CharGptConfig, NoData};
use adamlab_train::controls::ControlsSpec;
use adamlab_train::fit::{Model, RunConfig};
use adamlab_train::test_functions::STEPS_PER_EPOCH;
use adamlab_train::{classification, language_model, test_functions};
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::Device;
use burn::train::{InferenceStep, RegressionOutput, TrainStep};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Windows per batch when computing the validation loss.
const CHAR_GPT_EVAL_BATCH_SIZE: usize = 64;
/// Softmax regression: the CNN's defaults (lr, epochs; batch 64).
const SOFTMAX_REGRESSION_DEFAULTS: (f64, usize) = (classification::SOFTMAX_REGRESSION_LR, 2);
const SOFTMAX_REGRESSION_BATCH_SIZE: usize = 64;

/// The default learning rate and epochs of a workload.
pub(super) fn defaults(model: ModelArg) -> (f64, usize) {
    match model {
        ModelArg::CharGpt => (language_model::DEFAULT_LR, language_model::DEFAULT_EPOCHS),
        ModelArg::SoftmaxRegression => SOFTMAX_REGRESSION_DEFAULTS,
        ModelArg::Rosenbrock | ModelArg::Quadratic => {
            (test_functions::DEFAULT_LR, test_functions::DEFAULT_EPOCHS)
        }
        ModelArg::Cnn | ModelArg::Mlp => unreachable!("the article's models have their own"),
    }
}

/// A test function has no data: the flags that shape a data set's batches are refused.
pub(super) fn check_test_function_flags(args: &TrainArgs) -> Result<(), CliError> {
    match data_flag_given(args) {
        Some(flag) => Err(CliError::Usage(format!(
            "{flag} applies to models with data; a test function has none (an epoch is \
             {STEPS_PER_EPOCH} steps at the point)"
        ))),
        None => Ok(()),
    }
}

/// Trains a workload.
pub(super) fn train(
    model: ModelArg,
    args: &TrainArgs,
    controls: ControlsSpec,
    epochs: usize,
    device: Device,
    described: &str,
) -> Result<(), CliError> {
    match model {
        ModelArg::CharGpt => train_char_gpt(args, controls, epochs, device, described),
        ModelArg::SoftmaxRegression => {
            let classifier = Classifier {
                model: classification::softmax_regression(),
                title: "softmax regression (Linear(784, 10))",
                batch_size: SOFTMAX_REGRESSION_BATCH_SIZE,
            };
            train_classifier(args, controls, epochs, device, described, classifier)
        }
        ModelArg::Rosenbrock => {
            train_point(args, controls, epochs, device, described, test_functions::rosenbrock())
        }
        ModelArg::Quadratic => {
            train_point(args, controls, epochs, device, described, test_functions::quadratic())
        }
        ModelArg::Cnn | ModelArg::Mlp => unreachable!("the article's models train in train.rs"),
    }
}

/// The fortunes directory: `--data-dir` when given for this run (not Fashion-MNIST's default or
/// `$ADAMLAB_DATA_DIR`, which name the images), else `$ADAMLAB_FORTUNES_DIR`, else Debian's.
pub fn fortunes_dir(data_dir: &Path) -> PathBuf {
    let images_env = std::env::var_os(DATA_DIR_ENV).map(PathBuf::from);
    let given = data_dir != Path::new(DEFAULT_DATA_DIR) && images_env.as_deref() != Some(data_dir);
    Corpus::resolve_dir(given.then_some(data_dir))
}

fn train_char_gpt(
    args: &TrainArgs,
    controls: ControlsSpec,
    epochs: usize,
    device: Device,
    described: &str,
) -> Result<(), CliError> {
    let dir = fortunes_dir(&args.data.data_dir);
    let corpus = Corpus::load(&dir)?;
    let config = CharGptConfig::fortunes();
    let mut train_set = TextWindows::new(corpus.train, config.context);
    if let Some(n) = args.limit_train {
        train_set = train_set.truncated(n);
    }
    let mut validation = TextWindows::new(corpus.validation, config.context);
    if let Some(n) = args.limit_test {
        validation = validation.truncated(n);
    }
    if validation.is_empty() || train_set.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds too little text for one window of {} characters",
            dir.display(),
            config.context + 1
        )));
    }
    let batch_size = args.batch_size.unwrap_or(language_model::DEFAULT_BATCH_SIZE).min(train_set.len());
    let run_config = RunConfig {
        epochs,
        batch_size,
        seed: args.seed,
        shuffle: !args.no_shuffle,
        checkpoint_every: args.checkpoint_every,
    };
    let init = |device: &Device| config.init(device);
    let model = Model {
        name: language_model::model_name(&config),
        init: &init,
    };
    let start = start(args, &model, &device)?;
    // Opened (the checkpoint directory locked) only once the data and `--init` are read.
    let outputs = Outputs::prepare(args)?;
    say!(
        "training char-gpt ({} parameters: {} layers, {} heads, d {}, context {}) on {} windows \
         ({} characters) of Debian's fortune cookies from {} with {}, batch {batch_size}, \
         {epochs} epoch(s) of {} steps, on {described}",
        config.init(&device).num_params(),
        config.layers,
        config.heads,
        config.d_model,
        config.context,
        train_set.len(),
        train_set.len() * config.context,
        dir.display(),
        describe_run(&controls),
        train_set.len().div_ceil(batch_size),
    );
    let validation = Arc::new(validation);
    let mut evaluate =
        |model: &CharGpt| language_model::evaluate(model, &validation, CHAR_GPT_EVAL_BATCH_SIZE);
    let run = Run {
        args,
        controls: &controls,
        config: run_config,
        device: &device,
        outputs,
        reporter: |journal| {
            let labels = Labels {
                held_out: "validation",
                decimals: 3,
                per_second: "seq/s",
            };
            Reporter::labelled(epochs, journal, labels)
        },
        saved: say_saved,
    };
    let data = language_model::train_data(train_set);
    run.fit(model, &data, start, Some(&mut evaluate))
}

/// A test function: epochs of [`STEPS_PER_EPOCH`] steps, each followed by the function's value
/// and the distance to the optimum.
fn train_point<M>(
    args: &TrainArgs,
    controls: ControlsSpec,
    epochs: usize,
    device: Device,
    described: &str,
    model: Model<'static, M>,
) -> Result<(), CliError>
where
    M: Module
        + TrainStep<Input = NoData>
        + InferenceStep<Input = NoData, Output = RegressionOutput>
        + 'static,
    <M as TrainStep>::Output: adamlab_train::fit::StepLoss,
{
    let start = start(args, &model, &device)?;
    // Opened (the checkpoint directory locked) only once `--init` is read.
    let outputs = Outputs::prepare(args)?;
    say!(
        "minimising {} with {}, {epochs} epoch(s) of {STEPS_PER_EPOCH} steps, on {described}",
        model.name,
        describe_run(&controls),
    );
    let config = RunConfig {
        epochs,
        batch_size: 1,
        seed: args.seed,
        shuffle: false,
        checkpoint_every: args.checkpoint_every,
    };
    let mut evaluate = |model: &M| test_functions::evaluate(model);
    let run = Run {
        args,
        controls: &controls,
        config,
        device: &device,
        outputs,
        reporter: |journal| {
            let labels = Labels {
                held_out: "end-of-epoch",
                decimals: 6,
                per_second: "steps/s",
            };
            Reporter::labelled(epochs, journal, labels)
        },
        saved: say_saved,
    };
    run.fit(model, &test_functions::steps(STEPS_PER_EPOCH), start, Some(&mut evaluate))
}
