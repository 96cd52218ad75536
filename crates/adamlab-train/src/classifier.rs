//! Training the article's CNN on an MNIST-format dataset, with per-step metrics, evaluation
//! after every epoch, checkpoints and exact resume.
//!
//! The loop is written out rather than delegated to burn-train's `Learner` because two of its
//! promises need control of every step: a resumed run must continue bit for bit as the
//! uninterrupted one (the data order of each epoch is a pure function of the seed and the epoch),
//! and a non-finite loss must stop the run at that step with the last good checkpoint intact.

use crate::checkpoint::{Checkpoint, CheckpointError, Checkpointer, RunIdentity};
use crate::cnn;
use adamlab_data::{MnistBatch, MnistBatcher, MnistDataset};
use adamlab_models::{Cnn, CnnConfig};
use adamlab_optim::{LabOptimizer, OptimizerSpec, SpecError, eval_weights};
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
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Seeds the initial weights and every epoch's shuffle.
    pub seed: u64,
    /// Shuffle the training images each epoch (else file order).
    pub shuffle: bool,
    /// The optimizer and its hyper-parameters, the learning rate included.
    pub optimizer: OptimizerSpec,
}

/// What stopped a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The optimizer cannot be built.
    #[error(transparent)]
    Optimizer(#[from] SpecError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The loss became NaN or infinite.
    #[error(
        "the loss became {loss} at epoch {epoch}, step {step}: training stopped{}",
        match .checkpoint_epoch {
            Some(e) => format!("; the last good checkpoint (epoch {e}) is kept"),
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
        /// The epoch of the last checkpoint written, if any.
        checkpoint_epoch: Option<usize>,
    },
    /// The batch size is 0 or the training set is empty.
    #[error("{0}")]
    Invalid(String),
}

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
    /// The learning rate of this step.
    pub lr: f64,
    /// Training throughput since the epoch began.
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
    /// Wall-clock seconds the epoch's training took.
    pub seconds: f64,
    /// Training images per second over the epoch.
    pub images_per_second: f64,
}

/// Receives progress as the run goes.
pub trait Observer {
    /// After every optimizer step.
    fn on_step(&mut self, report: &StepReport);
    /// After every epoch's evaluation.
    fn on_epoch(&mut self, report: &EpochReport);
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
/// after every epoch when `checkpointer` is given. Returns the trained model (without autodiff;
/// for a schedule-free optimizer, the evaluation weights).
pub fn train(
    device: &Device,
    train_set: Arc<MnistDataset>,
    test_set: Arc<MnistDataset>,
    config: &RunConfig,
    start: Start,
    checkpointer: Option<&Checkpointer>,
    observer: &mut dyn Observer,
) -> Result<Cnn, TrainError> {
    if config.batch_size == 0 {
        return Err(TrainError::Invalid("the batch size must be at least 1".into()));
    }
    if train_set.is_empty() {
        return Err(TrainError::Invalid("the training set is empty".into()));
    }
    let device = device.clone().autodiff();
    let identity = RunIdentity::of(config, train_set.len());
    let lab = config.optimizer.build()?;
    let lr = config.optimizer.lr();
    let mut optimizer = lab.module_optimizer();
    let (mut model, first_epoch, mut step, mut checkpoint_epoch) = match start {
        Start::Seeded => {
            device.seed(config.seed);
            (CnnConfig::new().init(&device), 1, 0, None)
        }
        Start::Weights(model) => (*model, 1, 0, None),
        Start::Resume => {
            let checkpointer = checkpointer.ok_or(CheckpointError::NoDirectory)?;
            let template = CnnConfig::new().init(&device);
            let Checkpoint {
                model,
                optimizer: restored,
                epoch,
                step,
            } = checkpointer.load_latest(template, optimizer, &identity)?;
            optimizer = restored;
            (model, epoch + 1, step, Some(epoch))
        }
    };

    for epoch in first_epoch..=config.epochs {
        let loader = epoch_loader(&train_set, config, epoch, &device);
        let batches = train_set.len().div_ceil(config.batch_size);
        let started = Instant::now();
        let (mut images, mut loss_sum) = (0usize, 0f64);
        for (index, batch) in loader.iter().enumerate() {
            let MnistBatch { images: x, targets } = batch.expect("in-memory datasets cannot fail");
            let n = targets.dims()[0];
            let loss = cnn::loss(&model, x, targets);
            let loss_value = loss.clone().into_scalar::<f32>();
            step += 1;
            if !loss_value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    epoch,
                    step,
                    loss: loss_value,
                    checkpoint_epoch,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            images += n;
            loss_sum += f64::from(loss_value);
            observer.on_step(&StepReport {
                epoch,
                step,
                batch: (index + 1, batches),
                loss: loss_value,
                lr,
                images_per_second: images as f64 / started.elapsed().as_secs_f64(),
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let test = evaluate(
            &evaluation_model(&*lab, &optimizer, &model),
            &test_set,
            config.batch_size.max(256),
        );
        if let Some(checkpointer) = checkpointer {
            checkpointer.save(&model, &optimizer, &identity, epoch, step)?;
            checkpoint_epoch = Some(epoch);
        }
        observer.on_epoch(&EpochReport {
            epoch,
            step,
            train_loss: loss_sum / batches as f64,
            test,
            seconds,
            images_per_second: images as f64 / seconds,
        });
    }
    Ok(evaluation_model(&*lab, &optimizer, &model))
}

/// The weights to evaluate and to save: the trained ones, or for a schedule-free optimizer the
/// evaluation point its state defines (without autodiff).
fn evaluation_model(lab: &dyn LabOptimizer, optimizer: &burn::optim::ModuleOptimizer, model: &Cnn) -> Cnn {
    eval_weights(lab, optimizer, model.valid())
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
        .batch_size(config.batch_size)
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
        .batch_size(batch_size.max(1))
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
