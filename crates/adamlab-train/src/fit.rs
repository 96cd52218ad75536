//! One training loop for any burn model: per-step reports, evaluation after every epoch,
//! checkpoints, exact resume and a stop on a non-finite loss.
//!
//! The model side is burn-train's contract: a model implements [`TrainStep`] (forward, loss,
//! backward on a batch), so that the same definition runs here and in burn's `Learner`. The loop
//! adds what `Learner` does not promise: a resumed run continues bit for bit as the uninterrupted
//! one (the data order of each epoch is a pure function of the seed and the epoch, and a
//! checkpoint taken `k` batches into an epoch resumes by skipping that epoch's first `k` batches),
//! torch's training controls around every step ([`Controls`]), and a non-finite loss stops the
//! run at that step with the last good checkpoint intact.
//!
//! ```text
//! for epoch:                      order = shuffle(seed, epoch)
//!     for each group of `accumulate` batches (one batch by default):
//!         TrainStep::step         → loss, gradients, weighted by the batch's share of the group
//!         loss (and gradients) finite?
//!                                 else stop (NonFiniteLoss), or skip the step (skip_nonfinite)
//!         Controls::step          clip, step every group at its scheduled lr
//!         EMA update              when the controls keep one
//!         observer.on_step        journal, progress
//!         observer.next           go on, or evaluate now, or evaluate and finish (a step budget)
//!         checkpoint every N steps
//!     evaluate                    the caller's evaluator, on the evaluation weights (the EMA's)
//!     reduce-on-plateau           fed the held-out loss (else the training loss)
//!     observer.on_epoch, checkpoint
//! ```

use crate::checkpoint::{Checkpoint, CheckpointError, Checkpointer, Progress, RunIdentity};
use crate::controls::{Controls, ControlsError, ControlsSpec, StepRefused};
use adamlab_optim::SpecError;
use adamlab_optim::clip::{grads_are_finite, scale_grads};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use burn::train::{ClassificationOutput, RegressionOutput, TrainStep};
use std::sync::Arc;
use std::time::Instant;

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Epochs to reach (a resumed run continues up to this total).
    pub epochs: usize,
    /// Examples per optimizer step. A batch larger than the training set is the whole set.
    pub batch_size: usize,
    /// Seeds the initial weights and every epoch's shuffle.
    pub seed: u64,
    /// Shuffle the training examples each epoch (else dataset order).
    pub shuffle: bool,
    /// Checkpoint every this many optimizer steps as well as after every epoch (`None`: at
    /// epoch ends only), when a checkpointer is given.
    pub checkpoint_every: Option<usize>,
}

/// What a training step's output must tell the loop: its loss, which the loop reports, journals
/// and checks for NaN. burn-train's outputs implement it; a model with an output of its own
/// implements it in one line.
pub trait StepLoss {
    /// The loss the gradients were taken of, `[1]`.
    fn loss(&self) -> Tensor<1>;
}

impl StepLoss for ClassificationOutput {
    fn loss(&self) -> Tensor<1> {
        self.loss.clone()
    }
}

impl StepLoss for RegressionOutput {
    fn loss(&self) -> Tensor<1> {
        self.loss.clone()
    }
}

/// What [`fit`] needs of a model: burn-train's [`TrainStep`], with an output that tells its loss
/// ([`StepLoss`]) and batches the loop can clone and print. Every model that implements
/// `TrainStep` for such a batch is one.
pub trait Trainable: Module + TrainStep<Output: StepLoss, Input: Clone + std::fmt::Debug> + 'static {}

impl<M> Trainable for M where M: Module + TrainStep<Output: StepLoss, Input: Clone + std::fmt::Debug> + 'static {}

/// What [`fit`] needs of a training example: the data loader shares and clones them.
pub trait Example: Send + Sync + Clone + std::fmt::Debug + 'static {}

impl<I> Example for I where I: Send + Sync + Clone + std::fmt::Debug + 'static {}

/// The training examples, how they become batches, and what identifies them.
pub struct TrainData<I, Bt> {
    /// The examples.
    pub dataset: Arc<dyn Dataset<I>>,
    /// Turns examples into the model's [`TrainStep::Input`].
    pub batcher: Bt,
    /// A fingerprint of the examples' contents (`crc32 1a2b3c4d`), part of a checkpoint's
    /// identity: a resume on other data is refused.
    pub fingerprint: String,
}

/// Loss (and optionally accuracy or distance to the optimum) of a model on held-out data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean loss per example (per character, for a language model; the function's value, for a
    /// test function).
    pub loss: f64,
    /// Fraction classified correctly, for a classifier.
    pub accuracy: Option<f64>,
    /// Euclidean distance from the parameters to the known optimum, for a test function.
    pub distance: Option<f64>,
    /// Number of examples.
    pub examples: usize,
}

/// What stopped a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The optimizer cannot be built.
    #[error(transparent)]
    Optimizer(#[from] SpecError),
    /// The training controls (groups, schedule, clipping) cannot be used for this run, or refused
    /// a step (a scheduled learning rate that is not a number an optimizer can take).
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
    /// The batch size is 0, the dataset is empty, or nothing is left to train.
    #[error("{0}")]
    Invalid(String),
}

/// A run that stopped before its end, with the weights it had trained.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Stopped<M> {
    /// Why it stopped.
    #[source]
    pub error: TrainError,
    /// The weights after the last step taken (without autodiff; for a schedule-free optimizer,
    /// the evaluation weights), if this process took any step and the weights are worth keeping
    /// (not after a non-finite loss).
    pub trained: Option<Trained<M>>,
}

/// Weights of a run that stopped early.
#[derive(Debug)]
pub struct Trained<M> {
    /// The model.
    pub model: M,
    /// The optimizer steps taken.
    pub step: usize,
}

impl<M> From<TrainError> for Stopped<M> {
    fn from(error: TrainError) -> Self {
        Self {
            error,
            trained: None,
        }
    }
}

/// An observer's failure, in its own words (it names its file).
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

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
    /// The total gradient norm before clipping, with `clip_grad_norm`.
    pub grad_norm: Option<f64>,
    /// Training examples (images, for the article's CNN) per second since the epoch (or its
    /// resumed part) began.
    pub images_per_second: f64,
    /// The step was skipped, its loss or gradients not finite (with
    /// [`ControlsSpec::skip_nonfinite`]): the weights, the optimizer and the schedule did not move.
    pub skipped: bool,
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
    /// On the held-out data after the epoch, when the run has an evaluator.
    pub test: Option<Evaluation>,
    /// Wall-clock seconds the epoch's training took (in this process, when resumed).
    pub seconds: f64,
    /// Training examples per second over the epoch (or its resumed part).
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
    /// After [`Observer::on_step`]: whether to evaluate now, or to end the run here, besides the
    /// evaluation after every epoch. A budget of steps rather than epochs, and curves of a
    /// held-out metric against steps, are built on it (the shoot-out's).
    fn next(&mut self, _report: &StepReport) -> Next {
        Next::Continue
    }
    /// The evaluation [`Observer::next`] asked for after the step of `report` (only when the run
    /// has an evaluator).
    fn on_evaluation(&mut self, _report: &StepReport, _evaluation: &Evaluation) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// What the loop does after a step, as its observer asks ([`Observer::next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Next {
    /// Go on.
    #[default]
    Continue,
    /// Evaluate the evaluation weights now (the EMA's, when the run keeps one), report it to
    /// [`Observer::on_evaluation`], and go on. The schedule and reduce-on-plateau do not see it.
    Evaluate,
    /// Evaluate as [`Next::Evaluate`] does, then end the run after this step and return its
    /// evaluation weights. No checkpoint is written for the part of an epoch trained.
    Finish,
}

/// Where a run starts from.
#[derive(Debug)]
pub enum Start<M> {
    /// Fresh weights: the model's initialiser, on the autodiff device seeded with the run's seed.
    Seeded,
    /// Given weights (e.g. PyTorch's, from `--init`), on the autodiff device.
    Weights(Box<M>),
    /// The latest checkpoint in the checkpointer's directory.
    Resume,
}

/// A model to train: its name (with its configuration, for the run's identity) and how to build
/// fresh weights on a device.
pub struct Model<'a, M> {
    /// `cnn`, `residual-mlp(width=64, blocks=2)`: a checkpoint of another model is refused.
    pub name: String,
    /// Builds the model on a device (called after the device is seeded, and to make the
    /// template a checkpoint loads into).
    pub init: &'a dyn Fn(&Device) -> M,
}

/// Everything around the model and the data that a run uses.
pub struct Fit<'a, M> {
    /// Epochs, batch size, seed, shuffling, checkpoint interval.
    pub config: RunConfig,
    /// The optimizer with its groups, schedule and clipping.
    pub controls: &'a ControlsSpec,
    /// Where the weights come from.
    pub start: Start<M>,
    /// Checkpoints after every epoch (and every `checkpoint_every` steps), when given.
    pub checkpointer: Option<&'a Checkpointer>,
    /// Loss (and accuracy) on held-out data after every epoch, given the evaluation weights
    /// (without autodiff).
    pub evaluate: Option<&'a mut dyn FnMut(&M) -> Evaluation>,
    /// Receives every step's and epoch's report.
    pub observer: &'a mut dyn Observer,
}

/// Trains `model` on `data` as `fit` says, on `device` (with autodiff). Returns the trained model
/// (without autodiff; for a schedule-free optimizer, the evaluation weights); a run that stops
/// early returns the weights it had trained with the error.
///
/// The controls belong to the run's identity: a resume with other controls is refused. The
/// schedule's state is the number of steps taken, so a resume, from an epoch's end or from the
/// middle of one, continues it exactly. A run longer than its schedule allows (OneCycleLR's
/// `total_steps`) is refused before it starts.
pub fn fit<M, I, Bt>(
    device: &Device,
    model: Model<M>,
    data: &TrainData<I, Bt>,
    fit: Fit<M>,
) -> Result<M, Stopped<M>>
where
    M: Trainable,
    I: Example,
    Bt: Batcher<I, M::Input> + Clone + 'static,
{
    let Fit {
        config,
        controls: controls_spec,
        start,
        checkpointer,
        mut evaluate,
        observer,
    } = fit;
    let examples = data.dataset.len();
    if config.batch_size == 0 {
        return Err(TrainError::Invalid("the batch size must be at least 1".into()).into());
    }
    if config.checkpoint_every == Some(0) {
        return Err(TrainError::Invalid("checkpoints every 0 steps: give at least 1".into()).into());
    }
    if examples == 0 {
        return Err(TrainError::Invalid("the training set is empty".into()).into());
    }
    let device = device.clone().autodiff();
    let batch_size = config.batch_size.min(examples);
    let identity = RunIdentity::new(
        model.name.clone(),
        controls_spec,
        (config.seed, batch_size, config.shuffle),
        examples,
        data.fingerprint.clone(),
    );
    let batches = examples.div_ceil(batch_size);
    let mut controls = Controls::new(controls_spec).map_err(TrainError::from)?;
    let accumulate = controls_spec.accumulate;
    let shape = EpochShape { examples, batch_size, batches, accumulate };
    controls_spec
        .check_run_length(config.epochs.saturating_mul(shape.steps()))
        .map_err(TrainError::from)?;
    let ema_decay = controls_spec.ema;
    let lookahead = controls_spec.lookahead;
    let swa = controls_spec.swa;
    // Lookahead's slow weights start as the initial weights.
    let slow_of = |weights: &M| lookahead.map(|_| weights.valid());
    let (mut weights, mut averaged, mut slow, mut at) = match start {
        Start::Seeded => {
            device.seed(config.seed);
            let weights = (model.init)(&device);
            let slow = slow_of(&weights);
            (weights, None, slow, Progress::default())
        }
        Start::Weights(weights) => {
            let slow = slow_of(&weights);
            (*weights, None, slow, Progress::default())
        }
        Start::Resume => {
            let checkpointer =
                checkpointer.ok_or(CheckpointError::NoDirectory).map_err(TrainError::from)?;
            let template = (model.init)(&device);
            let mut extras = Vec::new();
            if ema_decay.is_some() {
                extras.push((EMA, template.valid()));
            }
            if lookahead.is_some() {
                extras.push((LOOKAHEAD, template.valid()));
            }
            if swa.is_some() {
                extras.push((SWA, template.valid()));
            }
            let Checkpoint {
                model: restored_model,
                optimizer: restored,
                mut extras,
                metrics,
                swa: swa_phase,
                progress,
            } = checkpointer
                .load_latest(
                    template,
                    extras,
                    controls.fresh_module_optimizer(),
                    &identity,
                    (batches, accumulate),
                )
                .map_err(TrainError::from)?;
            // A checkpoint at the end of the last epoch resumes to nothing left to train (the run
            // is complete); one beyond it belongs to a longer run.
            let epochs_begun = progress.epoch + usize::from(progress.batch > 0);
            if epochs_begun > config.epochs {
                return Err(TrainError::Invalid(format!(
                    "the checkpoint in {} is at {}, past the run's {} epoch(s): resume with \
                     {epochs_begun} epochs or more",
                    checkpointer.dir().display(),
                    checkpoint_label(&progress, batches),
                    config.epochs
                ))
                .into());
            }
            // The schedules catch up on the steps the checkpoint had taken (skipped ones do not
            // count: they did not step the optimizer).
            // Once SWA took over, the regular schedule stopped where it was.
            let schedule_steps = swa_phase.as_ref().map_or(progress.step - progress.skipped, |p| p.schedule_steps);
            controls.resume(restored, schedule_steps, &metrics);
            if let Some(phase) = swa_phase {
                controls.restore_swa_phase(phase);
            }
            // `averaged` is the EMA or the SWA average, whichever the run keeps: both are what is
            // evaluated and saved (the controls refuse both at once).
            let averaged = extras.remove(EMA).or_else(|| extras.remove(SWA));
            (restored_model, averaged, extras.remove(LOOKAHEAD), progress)
        }
    };
    // Weights trained in this process are handed back with any error; a checkpoint's own weights
    // are already safe in its directory.
    let first_step = at.step;
    let stop = |error: TrainError, weights: &M, averaged: &Option<M>, controls: &Controls, step: usize| Stopped {
        error,
        trained: (step > first_step).then(|| Trained {
            model: evaluation_model(controls, weights, averaged),
            step,
        }),
    };
    if let Err(err) = observer.on_start(&at) {
        return Err(stop(TrainError::Observer(err), &weights, &averaged, &controls, at.step));
    }
    let mut last_checkpoint = (at.step > 0).then(|| checkpoint_label(&at, batches));
    // Writes a checkpoint at `at`, when the run has a directory; returns how to name it.
    let checkpoint = |weights: &M, averaged: &Option<M>, slow: &Option<M>, controls: &Controls, at: &Progress| {
        let Some(checkpointer) = checkpointer else {
            return Ok(None);
        };
        let mut extras = Vec::new();
        if let Some(averaged) = averaged {
            extras.push((if swa.is_some() { SWA } else { EMA }, averaged));
        }
        if let Some(slow) = slow {
            extras.push((LOOKAHEAD, slow));
        }
        let schedule_state = (&controls.metrics()[..], controls.swa_phase());
        checkpointer.save(weights, &extras, controls.module_optimizer(), schedule_state, &identity, at)?;
        Ok::<_, CheckpointError>(Some(checkpoint_label(at, batches)))
    };

    while at.epoch < config.epochs {
        let epoch = at.epoch + 1;
        let loader = epoch_loader(data, &config, batch_size, epoch, &device);
        let started = Instant::now();
        let mut trained_examples = 0usize;
        let mut pending = Pending::<M>::default();
        // A resumed epoch skips the batches its checkpoint had already trained on (a whole
        // number of steps: checkpoints are taken between steps).
        for batch in loader.iter().skip(at.batch) {
            let batch = batch.expect("in-memory datasets cannot fail");
            let n = shape.batch_examples(at.batch);
            let share = n as f64 / shape.step_examples(at.batch) as f64;
            let output = TrainStep::step(&weights, batch);
            let loss_value = output.item.loss().into_scalar::<f32>();
            at.batch += 1;
            trained_examples += n;
            pending.add(&weights, output.grads, loss_value, share, accumulate);
            if !(at.batch.is_multiple_of(accumulate) || at.batch == batches) {
                continue;
            }
            let (loss_value, mut grads) = pending.take();
            let finite = loss_value.is_finite()
                && (!controls_spec.skip_nonfinite || grads_are_finite(&weights, &mut grads));
            if !finite && !controls_spec.skip_nonfinite {
                return Err(TrainError::NonFiniteLoss {
                    epoch,
                    step: at.step + 1,
                    loss: loss_value,
                    checkpoint: last_checkpoint,
                }
                .into());
            }
            let info = if finite {
                let info;
                (weights, info) = match controls.step(weights, grads) {
                    Ok(stepped) => stepped,
                    Err(StepRefused { error, module }) => {
                        return Err(stop(error.into(), &module, &averaged, &controls, at.step));
                    }
                };
                // pytorch-optimizer's Lookahead synchronises inside its step; torch's EMA is
                // updated after `optimizer.step()`, so it sees the synchronised weights.
                if let (Some(settings), Some(slow_weights)) = (lookahead, slow.as_ref()) {
                    let applied = at.step + 1 - at.skipped;
                    if applied.is_multiple_of(settings.k) {
                        let synced;
                        (weights, synced) = crate::lookahead::sync(weights, slow_weights, settings.alpha);
                        slow = Some(synced);
                    }
                }
                if let Some(decay) = ema_decay {
                    averaged = Some(crate::ema::update(averaged.take(), &weights.valid(), decay));
                }
                at.epoch_loss_sum += f64::from(loss_value);
                Some(info)
            } else {
                at.skipped += 1;
                at.epoch_skipped += 1;
                None
            };
            at.step += 1;
            let report = StepReport {
                epoch,
                step: at.step,
                batch: (at.batch, batches),
                loss: loss_value,
                lr: info.map_or_else(|| controls.next_rates()[0].0, |i| i.lr),
                grad_norm: info.and_then(|i| i.grad_norm),
                images_per_second: trained_examples as f64 / started.elapsed().as_secs_f64(),
                skipped: info.is_none(),
            };
            if let Err(err) = observer.on_step(&report) {
                return Err(stop(TrainError::Observer(err), &weights, &averaged, &controls, at.step));
            }
            let next = observer.next(&report);
            if next != Next::Continue
                && let Some(evaluate) = evaluate.as_mut()
            {
                let evaluation = evaluate(&evaluation_model(&controls, &weights, &averaged));
                if let Err(err) = observer.on_evaluation(&report, &evaluation) {
                    return Err(stop(TrainError::Observer(err), &weights, &averaged, &controls, at.step));
                }
            }
            if next == Next::Finish {
                return Ok(evaluation_model(&controls, &weights, &averaged));
            }
            let mid_epoch = at.batch < batches;
            if mid_epoch && config.checkpoint_every.is_some_and(|n| at.step.is_multiple_of(n)) {
                match checkpoint(&weights, &averaged, &slow, &controls, &at) {
                    Ok(label) => last_checkpoint = label.or(last_checkpoint),
                    Err(err) => return Err(stop(err.into(), &weights, &averaged, &controls, at.step)),
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        // SWA: after its first `after` epochs, every epoch's end averages the weights and steps
        // SWALR (`averaged` holds the SWA average, as it holds the EMA otherwise: evaluated and
        // saved from then on).
        if let Some(settings) = swa
            && epoch > settings.after
        {
            let n_averaged = epoch - settings.after - 1;
            averaged = Some(crate::swa::average(averaged.take(), &weights.valid(), n_averaged));
        }
        controls.swa_epoch_end(epoch);
        let test = evaluate
            .as_mut()
            .map(|evaluate| evaluate(&evaluation_model(&controls, &weights, &averaged)));
        let applied = shape.steps() - at.epoch_skipped;
        let report = EpochReport {
            epoch,
            step: at.step,
            train_loss: at.epoch_loss_sum / applied.max(1) as f64,
            test,
            seconds,
            images_per_second: trained_examples as f64 / seconds,
        };
        // reduce-on-plateau reads the epoch's held-out loss (the training loss without an
        // evaluator), as torch's loops call `scheduler.step(val_loss)`.
        if controls.needs_metric() {
            controls.observe(test.map_or(report.train_loss, |t| t.loss));
        }
        // The epoch's report goes out before its checkpoint: a run resumed from the checkpoint
        // finds it in the metrics.
        if let Err(err) = observer.on_epoch(&report) {
            return Err(stop(TrainError::Observer(err), &weights, &averaged, &controls, at.step));
        }
        at = Progress {
            epoch,
            batch: 0,
            step: at.step,
            epoch_loss_sum: 0.0,
            skipped: at.skipped,
            epoch_skipped: 0,
        };
        match checkpoint(&weights, &averaged, &slow, &controls, &at) {
            Ok(label) => last_checkpoint = label.or(last_checkpoint),
            Err(err) => return Err(stop(err.into(), &weights, &averaged, &controls, at.step)),
        }
    }
    Ok(evaluation_model(&controls, &weights, &averaged))
}

/// The weights to evaluate and to save: the moving average when the run keeps one, else the
/// trained ones, or for a schedule-free optimizer the evaluation point its state defines
/// (without autodiff).
fn evaluation_model<M: Module>(controls: &Controls, weights: &M, averaged: &Option<M>) -> M {
    match averaged {
        Some(averaged) => averaged.clone(),
        None => controls.eval_weights(weights.valid()),
    }
}

/// The checkpoint names of the further copies of the model a run keeps.
const EMA: &str = "ema";
const LOOKAHEAD: &str = "lookahead";
const SWA: &str = "swa";

/// How an epoch divides into batches and optimizer steps.
#[derive(Debug, Clone, Copy)]
struct EpochShape {
    examples: usize,
    batch_size: usize,
    batches: usize,
    /// Batches per optimizer step; the last step of an epoch may take fewer.
    accumulate: usize,
}

impl EpochShape {
    /// Optimizer steps per epoch.
    fn steps(&self) -> usize {
        self.batches.div_ceil(self.accumulate)
    }

    /// Examples in batch `i` of an epoch (the last one may be short).
    fn batch_examples(&self, i: usize) -> usize {
        self.batch_size.min(self.examples - i * self.batch_size)
    }

    /// Examples in the optimizer step that batch `i` belongs to.
    fn step_examples(&self, i: usize) -> usize {
        let first = i - i % self.accumulate;
        let last = (first + self.accumulate).min(self.batches);
        (first..last).map(|b| self.batch_examples(b)).sum()
    }
}

/// The gradients and loss of the batches of one optimizer step so far.
struct Pending<M: Module> {
    single: Option<GradientsParams>,
    sum: Option<GradientsAccumulator<M>>,
    loss: f64,
}

impl<M: Module> Default for Pending<M> {
    fn default() -> Self {
        Self { single: None, sum: None, loss: 0.0 }
    }
}

impl<M: Module> Pending<M> {
    /// Adds a batch's gradients and loss, weighted by its `share` of the step's examples.
    fn add(&mut self, module: &M, mut grads: GradientsParams, loss: f32, share: f64, accumulate: usize) {
        self.loss += share * f64::from(loss);
        if accumulate == 1 {
            self.single = Some(grads);
            return;
        }
        scale_grads(module, &mut grads, share);
        self.sum.get_or_insert_with(GradientsAccumulator::new).accumulate(module, grads);
    }

    /// The step's loss (the examples' mean) and gradients; empties `self`.
    fn take(&mut self) -> (f32, GradientsParams) {
        let loss = std::mem::take(&mut self.loss) as f32;
        let grads = match (self.single.take(), self.sum.take()) {
            (Some(grads), _) => grads,
            (None, Some(mut sum)) => sum.grads(),
            (None, None) => GradientsParams::new(),
        };
        (loss, grads)
    }
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
fn epoch_loader<I, O, Bt>(
    data: &TrainData<I, Bt>,
    config: &RunConfig,
    batch_size: usize,
    epoch: usize,
    device: &Device,
) -> Arc<dyn DataLoader<O>>
where
    I: Send + Sync + Clone + std::fmt::Debug + 'static,
    O: Send + Clone + std::fmt::Debug + 'static,
    Bt: Batcher<I, O> + Clone + 'static,
{
    let builder = DataLoaderBuilder::new(data.batcher.clone())
        .batch_size(batch_size)
        .set_device(device.clone());
    let builder = if config.shuffle {
        builder.shuffle(epoch_seed(config.seed, epoch))
    } else {
        builder
    };
    builder.build(data.dataset.clone())
}

/// SplitMix64 of the seed and the epoch: independent shuffles for every epoch.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed.wrapping_add((epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
