//! Training the article's CNN on an MNIST-format dataset, with per-step metrics, evaluation
//! after every epoch, checkpoints and exact resume.
//!
//! The loop is written out rather than delegated to burn-train's `Learner` because two of its
//! promises need control of every step: a resumed run must continue bit for bit as the
//! uninterrupted one (the data order of each epoch is a pure function of the seed and the epoch),
//! and a non-finite loss must stop the run at that step with the last good checkpoint intact.

use crate::checkpoint::{Checkpoint, CheckpointError, Checkpointer, Progress, RunIdentity};
use crate::cnn;
use crate::controls::{Controls, ControlsError, ControlsSpec, StepRefused};
use adamlab_data::{MnistBatch, MnistBatcher, MnistDataset};
use adamlab_models::{Cnn, CnnConfig};
use adamlab_optim::{OptimizerSpec, SpecError};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use std::sync::Arc;
use std::time::Instant;

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Epochs to reach (a resumed run continues up to this total).
    pub epochs: usize,
    /// Images per optimizer step. A batch larger than the training set is the whole set.
    pub batch_size: usize,
    /// Seeds the initial weights and every epoch's shuffle.
    pub seed: u64,
    /// Shuffle the training images each epoch (else file order).
    pub shuffle: bool,
    /// The optimizer and its hyper-parameters, the learning rate included.
    pub optimizer: OptimizerSpec,
    /// Checkpoint every this many optimizer steps as well as after every epoch (`None`: at
    /// epoch ends only), when a checkpointer is given.
    pub checkpoint_every: Option<usize>,
}

/// What stopped a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The optimizer cannot be built.
    #[error(transparent)]
    Optimizer(#[from] SpecError),
    /// The training controls (groups, schedule, clipping) cannot be used for this run.
    #[error(transparent)]
    Controls(#[from] ControlsError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The observer could not take a report (the metrics file could not be written).
    #[error("{0}")]
    Observer(ObserverError),
    /// The loss became NaN or infinite.
    #[error(
        "the loss became {loss} at epoch {epoch}, step {step}: training stopped{}",
        match .checkpoint {
            Some(name) => format!("; the last good checkpoint ({name}) is kept"),
            None => String::new(),
        }
    )]
    NonFiniteLoss {
        /// The epoch (1-based).
        epoch: usize,
        /// The optimizer step (1-based, counted over the whole run).
        step: usize,
        /// The value seen.
        loss: f32,
        /// Where the last checkpoint written was taken (`epoch 2`, `step 40`), if any.
        checkpoint: Option<String>,
    },
    /// The batch size is 0, a dataset is empty, or nothing is left to train.
    #[error("{0}")]
    Invalid(String),
}

/// A run that stopped before its end, with the weights it had trained.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Stopped {
    /// Why it stopped.
    #[source]
    pub error: TrainError,
    /// The weights after the last step taken (without autodiff; for a schedule-free optimizer,
    /// the evaluation weights), if this process took any step and the weights are worth keeping
    /// (not after a non-finite loss).
    pub trained: Option<Trained>,
}

/// Weights of a run that stopped early.
#[derive(Debug)]
pub struct Trained {
    /// The model.
    pub model: Cnn,
    /// The optimizer steps taken.
    pub step: usize,
}

impl From<TrainError> for Stopped {
    fn from(error: TrainError) -> Self {
        Self {
            error,
            trained: None,
        }
    }
}

/// An observer's failure, in its own words (it names its file).
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

/// Loss and accuracy of a model on a dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy over the images.
    pub loss: f64,
    /// Fraction of images classified correctly.
    pub accuracy: f64,
    /// Number of images.
    pub images: usize,
}

/// Progress of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The epoch (1-based).
    pub epoch: usize,
    /// The optimizer step, counted over the whole run (1-based).
    pub step: usize,
    /// The batch within the epoch (1-based) and the epoch's number of batches.
    pub batch: (usize, usize),
    /// The loss on this batch, before the step.
    pub loss: f32,
    /// The learning rate of this step (the first param group's, as scheduled).
    pub lr: f64,
    /// Training throughput since the epoch (or its resumed part) began.
    pub images_per_second: f64,
}

/// The end of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Optimizer steps so far in the run.
    pub step: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// On the test set after the epoch.
    pub test: Evaluation,
    /// Wall-clock seconds the epoch's training took (in this process, when resumed).
    pub seconds: f64,
    /// Training images per second over the epoch (or its resumed part).
    pub images_per_second: f64,
}

/// Receives progress as the run goes. An error stops the run (with its weights kept, see
/// [`Stopped`]).
pub trait Observer {
    /// Once, before the first step: where the run starts (a checkpoint's progress when
    /// resuming, else step 0). Whatever the observer recorded beyond it belongs to a run that
    /// was interrupted and is repeated now.
    fn on_start(&mut self, _progress: &Progress) -> Result<(), ObserverError> {
        Ok(())
    }
    /// After every optimizer step.
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError>;
    /// After every epoch's evaluation, before the epoch's checkpoint.
    fn on_epoch(&mut self, report: &EpochReport) -> Result<(), ObserverError>;
}

/// Where a run starts from.
#[derive(Debug)]
pub enum Start {
    /// Fresh weights from the seed.
    Seeded,
    /// Given weights (e.g. PyTorch's, from `--init`), on the autodiff device.
    Weights(Box<Cnn>),
    /// The latest checkpoint in the checkpointer's directory.
    Resume,
}

/// Trains the CNN on `train_set`, evaluating on `test_set` after every epoch, checkpointing
/// after every epoch (and every `config.checkpoint_every` steps) when `checkpointer` is given.
/// Returns the trained model (without autodiff; for a schedule-free optimizer, the evaluation
/// weights); a run that stops early returns the weights it had trained with the error.
///
/// A resumed run continues bit for bit as the uninterrupted one: the data order of each epoch
/// is a pure function of the seed and the epoch, and a checkpoint taken `k` batches into an
/// epoch resumes by skipping that epoch's first `k` batches.
pub fn train(
    device: &Device,
    train_set: Arc<MnistDataset>,
    test_set: Arc<MnistDataset>,
    config: &RunConfig,
    start: Start,
    checkpointer: Option<&Checkpointer>,
    observer: &mut dyn Observer,
) -> Result<Cnn, Stopped> {
    let controls = ControlsSpec::optimizer(config.optimizer.clone());
    let data = (train_set, test_set);
    train_with_controls(device, data, config, &controls, start, checkpointer, observer)
}

/// [`train`] with the training controls of ported PyTorch code: param groups, a learning-rate
/// schedule stepped once per optimizer step, and gradient clipping before each step
/// ([`Controls`]). `controls.optimizer` must be `config.optimizer`. `data` is `(train_set,
/// test_set)`.
///
/// The controls belong to the run's identity: a resume with other controls is refused. The
/// schedule's state is the number of steps taken, so a resume, from an epoch's end or from the
/// middle of one, continues it exactly. A run longer than its schedule allows (OneCycleLR's
/// `total_steps`) is refused before it starts.
pub fn train_with_controls(
    device: &Device,
    (train_set, test_set): (Arc<MnistDataset>, Arc<MnistDataset>),
    config: &RunConfig,
    controls: &ControlsSpec,
    start: Start,
    checkpointer: Option<&Checkpointer>,
    observer: &mut dyn Observer,
) -> Result<Cnn, Stopped> {
    if controls.optimizer != config.optimizer {
        return Err(TrainError::Invalid(format!(
            "the run's optimizer {} differs from its controls' {}",
            config.optimizer, controls.optimizer
        ))
        .into());
    }
    if config.batch_size == 0 {
        return Err(TrainError::Invalid("the batch size must be at least 1".into()).into());
    }
    if config.checkpoint_every == Some(0) {
        return Err(TrainError::Invalid("checkpoints every 0 steps: give at least 1".into()).into());
    }
    if train_set.is_empty() {
        return Err(TrainError::Invalid("the training set is empty".into()).into());
    }
    if test_set.is_empty() {
        let message = "the test set is empty: nothing to evaluate on";
        return Err(TrainError::Invalid(message.into()).into());
    }
    let device = device.clone().autodiff();
    let identity = RunIdentity::of(config, controls, &train_set);
    let batch_size = config.batch_size.min(train_set.len());
    let batches = train_set.len().div_ceil(batch_size);
    controls
        .check_run_length(config.epochs.saturating_mul(batches))
        .map_err(TrainError::from)?;
    let mut controls = Controls::new(controls).map_err(TrainError::from)?;
    let (mut model, mut at) = match start {
        Start::Seeded => {
            device.seed(config.seed);
            (CnnConfig::new().init(&device), Progress::default())
        }
        Start::Weights(model) => (*model, Progress::default()),
        Start::Resume => {
            let checkpointer =
                checkpointer.ok_or(CheckpointError::NoDirectory).map_err(TrainError::from)?;
            let template = CnnConfig::new().init(&device);
            let Checkpoint {
                model,
                optimizer: restored,
                progress,
            } = checkpointer
                .load_latest(template, controls.fresh_module_optimizer(), &identity, batches)
                .map_err(TrainError::from)?;
            // A checkpoint at the end of the last epoch resumes to nothing left to train (the run
            // is complete); one beyond it belongs to a longer run.
            let epochs_begun = progress.epoch + usize::from(progress.batch > 0);
            if epochs_begun > config.epochs {
                return Err(TrainError::Invalid(format!(
                    "the checkpoint in {} is at {}, past --epochs {}: resume with --epochs \
                     {epochs_begun} or more",
                    checkpointer.dir().display(),
                    checkpoint_label(&progress, batches),
                    config.epochs
                ))
                .into());
            }
            // The schedules catch up on the steps the checkpoint had taken.
            controls.resume(restored, progress.step);
            (model, progress)
        }
    };
    // Weights trained in this process are handed back with any error; a checkpoint's own weights
    // are already safe in its directory.
    let first_step = at.step;
    let stop = |error: TrainError, model: &Cnn, controls: &Controls, step: usize| Stopped {
        error,
        trained: (step > first_step).then(|| Trained {
            model: evaluation_model(controls, model),
            step,
        }),
    };
    if let Err(err) = observer.on_start(&at) {
        return Err(stop(TrainError::Observer(err), &model, &controls, at.step));
    }
    let mut last_checkpoint = (at.step > 0).then(|| checkpoint_label(&at, batches));
    // Writes a checkpoint at `at`, when the run has a directory; returns how to name it.
    let checkpoint = |model: &Cnn, controls: &Controls, at: &Progress| {
        let Some(checkpointer) = checkpointer else {
            return Ok(None);
        };
        checkpointer.save(model, controls.module_optimizer(), &identity, at)?;
        Ok::<_, CheckpointError>(Some(checkpoint_label(at, batches)))
    };

    while at.epoch < config.epochs {
        let epoch = at.epoch + 1;
        let loader = epoch_loader(&train_set, config, epoch, &device);
        let started = Instant::now();
        let mut images = 0usize;
        // A resumed epoch skips the batches its checkpoint had already trained on.
        for batch in loader.iter().skip(at.batch) {
            let MnistBatch { images: x, targets } = batch.expect("in-memory datasets cannot fail");
            let n = targets.dims()[0];
            let loss = cnn::loss(&model, x, targets);
            let loss_value = loss.clone().into_scalar::<f32>();
            if !loss_value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    epoch,
                    step: at.step + 1,
                    loss: loss_value,
                    checkpoint: last_checkpoint,
                }
                .into());
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let info;
            (model, info) = match controls.step(model, grads) {
                Ok(stepped) => stepped,
                Err(StepRefused { error, module }) => {
                    return Err(stop(error.into(), &module, &controls, at.step));
                }
            };
            at.step += 1;
            at.batch += 1;
            at.epoch_loss_sum += f64::from(loss_value);
            images += n;
            let report = StepReport {
                epoch,
                step: at.step,
                batch: (at.batch, batches),
                loss: loss_value,
                lr: info.lr,
                images_per_second: images as f64 / started.elapsed().as_secs_f64(),
            };
            if let Err(err) = observer.on_step(&report) {
                return Err(stop(TrainError::Observer(err), &model, &controls, at.step));
            }
            let mid_epoch = at.batch < batches;
            if mid_epoch && config.checkpoint_every.is_some_and(|n| at.step.is_multiple_of(n)) {
                match checkpoint(&model, &controls, &at) {
                    Ok(label) => last_checkpoint = label.or(last_checkpoint),
                    Err(err) => return Err(stop(err.into(), &model, &controls, at.step)),
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let test = evaluate(
            &evaluation_model(&controls, &model),
            &test_set,
            config.batch_size.max(256),
        );
        let report = EpochReport {
            epoch,
            step: at.step,
            train_loss: at.epoch_loss_sum / batches as f64,
            test,
            seconds,
            images_per_second: images as f64 / seconds,
        };
        // The epoch's report goes out before its checkpoint: a run resumed from the checkpoint
        // finds it in the metrics.
        if let Err(err) = observer.on_epoch(&report) {
            return Err(stop(TrainError::Observer(err), &model, &controls, at.step));
        }
        at = Progress {
            epoch,
            batch: 0,
            step: at.step,
            epoch_loss_sum: 0.0,
        };
        match checkpoint(&model, &controls, &at) {
            Ok(label) => last_checkpoint = label.or(last_checkpoint),
            Err(err) => return Err(stop(err.into(), &model, &controls, at.step)),
        }
    }
    Ok(evaluation_model(&controls, &model))
}

/// The weights to evaluate and to save: the trained ones, or for a schedule-free optimizer the
/// evaluation point its state defines (without autodiff).
fn evaluation_model(controls: &Controls, model: &Cnn) -> Cnn {
    controls.eval_weights(model.valid())
}

/// How a checkpoint at `at` is named in messages: `epoch 2`, or `epoch 3 batch 5/8, step 21`.
fn checkpoint_label(at: &Progress, batches: usize) -> String {
    if at.batch == 0 {
        format!("epoch {}", at.epoch)
    } else {
        format!("epoch {} batch {}/{batches}, step {}", at.epoch + 1, at.batch, at.step)
    }
}

/// The data loader of `epoch`: its order depends only on the seed and the epoch, so a resumed
/// run sees the batches the uninterrupted run would have.
fn epoch_loader(
    train_set: &Arc<MnistDataset>,
    config: &RunConfig,
    epoch: usize,
    device: &Device,
) -> Arc<dyn DataLoader<MnistBatch>> {
    let builder = DataLoaderBuilder::new(MnistBatcher)
        .batch_size(config.batch_size.min(train_set.len()))
        .set_device(device.clone());
    let builder = if config.shuffle {
        builder.shuffle(epoch_seed(config.seed, epoch))
    } else {
        builder
    };
    builder.build(train_set.clone())
}

/// SplitMix64 of the seed and the epoch: independent shuffles for every epoch.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed.wrapping_add((epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mean cross-entropy and accuracy of `model` (without autodiff) on `dataset`, in batches of
/// `batch_size`.
pub fn evaluate(model: &Cnn, dataset: &Arc<MnistDataset>, batch_size: usize) -> Evaluation {
    let device = model.conv1.weight.device();
    let loader = DataLoaderBuilder::new(MnistBatcher)
        .batch_size(batch_size.clamp(1, dataset.len().max(1)))
        .set_device(device)
        .build(dataset.clone());
    let (mut loss_sum, mut correct, mut images) = (0f64, 0usize, 0usize);
    for batch in loader.iter() {
        let MnistBatch { images: x, targets } = batch.expect("in-memory datasets cannot fail");
        let n = targets.dims()[0];
        let logits = model.forward(x);
        let predicted = logits.clone().argmax(1).flatten::<1>(0, 1);
        correct += predicted
            .equal(targets.clone())
            .int()
            .sum()
            .into_scalar::<i64>() as usize;
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, targets);
        loss_sum += f64::from(loss.into_scalar::<f32>()) * n as f64;
        images += n;
    }
    Evaluation {
        loss: loss_sum / images.max(1) as f64,
        accuracy: correct as f64 / images.max(1) as f64,
        images,
    }
}
