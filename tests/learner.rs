//! adamlab's optimizers inside burn-train's `Learner`: on one device the `Learner` takes the same
//! steps as adamlab's own loop on the same batches (the same per-step losses), and the
//! multi-device strategy trains on two CPU devices.
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

use adamlab::backend::{BackendKind, device};
use adamlab::data::{DEFAULT_DATA_DIR, MnistBatcher, MnistDataset, Split};
use adamlab::optim::OptimizerSpec;
use adamlab::optim::schedule::ScheduleSpec;
use adamlab::train::classification;
use adamlab::train::controls::ControlsSpec;
use adamlab::train::fit::{self, EpochReport, Fit, Observer, ObserverError, RunConfig, Start, StepReport};
use adamlab::train::learner::{StepLosses, learner};
use burn::data::dataloader::DataLoaderBuilder;
use adamlab::models::Cnn;
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::{ExecutionStrategy, MultiDeviceOptim, SupervisedTraining};
use std::path::Path;
use std::sync::Arc;

const BATCH: usize = 32;

fn data(images: usize) -> (MnistDataset, MnistDataset) {
    let dir = Path::new(DEFAULT_DATA_DIR);
    let train = MnistDataset::load(dir, Split::Train).unwrap().truncated(images);
    let test = MnistDataset::load(dir, Split::Test).unwrap().truncated(64);
    (train, test)
}

fn controls() -> ControlsSpec {
    let mut controls = ControlsSpec::optimizer(OptimizerSpec::parse("adamw(lr=2e-3)").unwrap());
    controls.schedule = Some(ScheduleSpec::parse("cosine(t_max=8)").unwrap());
    controls
}

/// Weights of the article's CNN, drawn now and stored as values. burn draws a parameter when it is
/// first used, from a random generator that tests running in parallel share: both runs of a
/// comparison start from one copy of these instead of from the seed.
fn initial_weights(device: &Device) -> Cnn {
    let autodiff = device.clone().autodiff();
    let init = classification::model().init;
    let bytes = init(&autodiff).into_record().into_bytes().unwrap();
    init(&autodiff).try_load_record(ModuleRecord::from_bytes(bytes).unwrap()).unwrap()
}

/// The per-step losses of burn's `Learner` from `weights` over `train`, in file order, with
/// `devices` copies of `device`.
fn learner_losses(
    device: &Device,
    devices: usize,
    weights: Cnn,
    (train, test): (MnistDataset, MnistDataset),
    tag: &str,
) -> Vec<f32> {
    let learner = learner(weights, &controls()).unwrap();
    let strategy = match devices {
        1 => ExecutionStrategy::single(device.clone()),
        n => ExecutionStrategy::multi(vec![device.clone(); n], MultiDeviceOptim::OptimMainDevice),
    };
    let dir = std::env::temp_dir().join(format!("adamlab-learner-test-{tag}-{}", std::process::id()));
    let losses = StepLosses::default();
    let result = SupervisedTraining::new(&dir, DataLoaderBuilder::new(MnistBatcher).batch_size(BATCH).build(train), {
        DataLoaderBuilder::new(MnistBatcher).batch_size(64).build(test)
    })
    .with_training_strategy(strategy.into())
    .metric_train(losses.clone())
    .num_epochs(1)
    .launch(learner);
    assert!(result.error.is_none(), "{:?}", result.error);
    let _ = std::fs::remove_dir_all(&dir);
    losses.losses()
}

#[derive(Default)]
struct Losses(Vec<f32>);

impl Observer for Losses {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        self.0.push(report.loss);
        Ok(())
    }
    fn on_epoch(&mut self, _: &EpochReport) -> Result<(), ObserverError> {
        Ok(())
    }
}

#[test]
fn one_device_through_the_learner_takes_the_steps_of_adamlabs_loop_on_flex() {
    let device = device(BackendKind::Flex).unwrap();
    let (train, test) = data(8 * BATCH);
    let weights = initial_weights(&device);
    let mut ours = Losses::default();
    let run = Fit {
        config: RunConfig { epochs: 1, batch_size: BATCH, seed: 0, shuffle: false, checkpoint_every: None },
        controls: &controls(),
        start: Start::Weights(Box::new(weights.clone())),
        checkpointer: None,
        evaluate: None,
        observer: &mut ours,
    };
    fit::fit(&device, classification::model(), &classification::train_data(Arc::new(train.clone())), run).unwrap();
    let theirs = learner_losses(&device, 1, weights, (train, test), "one");
    assert_eq!(theirs.len(), 8);
    // The same model, batches, optimizer and schedule, the same operations in the same order:
    // equal to f32 rounding; the first step's loss, before any update, exactly.
    assert_eq!(theirs[0], ours.0[0]);
    for (step, (a, b)) in ours.0.iter().zip(&theirs).enumerate() {
        let tolerance = 1e-5 * a.abs().max(1.0);
        assert!((a - b).abs() <= tolerance, "step {}: adamlab {a}, Learner {b}\nadamlab {:?}\nLearner {theirs:?}", step + 1, ours.0);
    }
}

#[test]
fn two_cpu_devices_train_through_the_learners_multi_device_strategy() {
    let device = device(BackendKind::Flex).unwrap();
    let losses = learner_losses(&device, 2, initial_weights(&device), data(16 * BATCH), "two");
    assert_eq!(losses.len(), 16, "one loss per batch: {losses:?}");
    let mean = |part: &[f32]| part.iter().sum::<f32>() / part.len() as f32;
    assert!(mean(&losses[12..]) < mean(&losses[..4]) - 0.1, "the loss did not fall: {losses:?}");
}
