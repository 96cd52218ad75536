//! `adamlab bench train`: images per second of the article's CNN (or its MLP, or a workload of the
//! zoo: char-gpt, softmax regression, the test functions) trained through
//! adamlab's own loop ([`adamlab_train::fit`], what `adamlab train` runs), and a breakdown of one
//! step into forward (with the loss), backward and optimizer step, with the process's peak
//! resident memory.
//!
//! Two runs per row. The step time and images per second come from `fit` over a batch source of
//! `warmup + repeats` random batches, timed between its per-step reports: what a user's training
//! waits for, data batching and the loss readout included. The phases come from a second run that
//! syncs the device between them (the syncs cost a little, so the phases add up to a bit more
//! than the loop's step on a GPU).
//!
//! The batch is random (images uniform in [0, 255], labels cycling through the classes): the time
//! of a step does not depend on the pixels. Peak memory is `VmHWM`, reset through
//! `/proc/self/clear_refs` before each measurement, all in one process: it counts what the
//! measurement made resident on top of what the process already held (burn's and the allocator's
//! caches from earlier measurements included), so it is an upper bound for the measurement
//! alone. On wgpu it counts host memory only (on llvmpipe that is where the "GPU" memory lives).

use crate::measure::{self, DeviceError, rss};
use crate::schema::{Bench, Record};
use crate::stats::Summary;
use crate::{BenchError, Observer, Target};
use adamlab_data::fortunes::{TextBatcher, VOCAB, Window};
use adamlab_data::{MnistBatcher, MnistItem};
use adamlab_models::{CharGptConfig, CnnConfig, MlpConfig, Quadratic, Rosenbrock, SoftmaxRegressionConfig};
use adamlab_optim::OptimizerSpec;
use adamlab_train::controls::ControlsSpec;
use adamlab_train::fit::{
    self, EpochReport, Example, Fit, ObserverError, RunConfig, Start, StepReport, TrainData, Trainable,
};
use adamlab_train::mlp::{Point, PointBatcher};
use adamlab_train::{language_model, test_functions};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, InMemDataset};
use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use std::sync::Arc;
use std::time::Instant;

/// The batch sizes measured when none are given.
pub const DEFAULT_BATCH_SIZES: &[usize] = &[32, 64, 128];

/// The models `bench train` times: the article's two and the workloads beyond them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The CNN for 28×28 images: a batch of `[b, 1, 28, 28]`, cross-entropy over 10 classes.
    Cnn,
    /// The one-layer MLP `Linear(2, 1)`: a batch of `[b, 2]` samples, MSE.
    Mlp,
    /// char-gpt at its default size: a batch of `b` windows of 128 + 1 random tokens.
    CharGpt,
    /// Softmax regression: a batch of `[b, 1, 28, 28]` images, cross-entropy.
    SoftmaxRegression,
    /// Rosenbrock's function: no data, batch 1.
    Rosenbrock,
    /// The ill-conditioned quadratic: no data, batch 1.
    Quadratic,
}

impl Model {
    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cnn => "cnn",
            Self::Mlp => "mlp",
            Self::CharGpt => "char-gpt",
            Self::SoftmaxRegression => "softmax-regression",
            Self::Rosenbrock => "rosenbrock",
            Self::Quadratic => "quadratic",
        }
    }

    /// The batch sizes this model is timed at: a test function has no data, so batch 1 only.
    pub fn batch_sizes(self, asked: &[usize]) -> Vec<usize> {
        match self {
            Self::Rosenbrock | Self::Quadratic => vec![1],
            _ => asked.to_vec(),
        }
    }
}

/// The largest batch `bench train` measures: 16,384 images, whose CNN activations take about
/// 2 GiB. A larger one is refused before anything is allocated.
pub const MAX_BATCH_SIZE: usize = 16_384;

/// Refuses a batch above [`MAX_BATCH_SIZE`], naming the flag and the bound.
pub(crate) fn check_batch_size(batch: usize) -> Result<(), BenchError> {
    if batch > MAX_BATCH_SIZE {
        return Err(BenchError::Invalid(format!(
            "--batch-size {batch}: at most {MAX_BATCH_SIZE} (adamlab_bench::train::MAX_BATCH_SIZE)"
        )));
    }
    Ok(())
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The backends.
    pub targets: Vec<Target>,
    /// The optimizers.
    pub optimizers: Vec<OptimizerSpec>,
    /// The models.
    pub models: Vec<Model>,
    /// Images (samples) per step.
    pub batch_sizes: Vec<usize>,
    /// Untimed steps.
    pub warmup: usize,
    /// Timed steps (≥ 1).
    pub repeats: usize,
}

impl TrainConfig {
    /// Checks what a user can get wrong.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.repeats == 0 {
            return Err(BenchError::Invalid("--repeats must be at least 1".into()));
        }
        crate::step::check_repeats(self.repeats, self.warmup)?;
        if self.batch_sizes.contains(&0) {
            return Err(BenchError::Invalid("batch sizes must be at least 1".into()));
        }
        for &batch in &self.batch_sizes {
            check_batch_size(batch)?;
        }
        if self.targets.is_empty() || self.optimizers.is_empty() || self.models.is_empty() || self.batch_sizes.is_empty() {
            return Err(BenchError::Invalid("nothing to measure: a list is empty".into()));
        }
        Ok(())
    }
}

/// The time of a training step, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phases {
    /// The whole step, in adamlab's training loop.
    pub total: Summary,
    /// Forward pass and loss (median, from the synced run).
    pub forward: f64,
    /// Backward pass (gradients collected).
    pub backward: f64,
    /// Optimizer step.
    pub step: f64,
}

/// Measures every backend × model × optimizer × batch size, reporting each record to `observer`.
pub fn run(config: &TrainConfig, observer: &mut dyn Observer) -> Result<Vec<Record>, BenchError> {
    config.validate()?;
    let batches: usize = config.models.iter().map(|m| m.batch_sizes(&config.batch_sizes).len()).sum();
    observer.planned(config.targets.len() * config.optimizers.len() * batches);
    let mut records = Vec::new();
    for target in &config.targets {
        for &model in &config.models {
            for spec in &config.optimizers {
                for batch in model.batch_sizes(&config.batch_sizes) {
                    observer.started(&format!(
                        "{} {} {spec} batch {batch}",
                        target.backend,
                        model.name()
                    ));
                    let reset = rss::reset_peak();
                    let phases = measure_one(&target.device, model, spec, batch, config)?;
                    let mut record =
                        Record::new(Bench::Train, target.backend.name(), &target.description)
                            .with_timing(&phases.total, config.warmup);
                    record.model = Some(model.name().to_string());
                    record.optimizer = Some(spec.to_string());
                    record.reference = Some(spec.entry().reference.to_string());
                    record.implementation = Some(crate::step::implementation(spec).to_string());
                    record.batch_size = Some(batch as u64);
                    record.lr = Some(spec.lr());
                    record.images_per_second = Some(batch as f64 / (phases.total.median * 1e-3));
                    record.forward_ms = Some(phases.forward);
                    record.backward_ms = Some(phases.backward);
                    record.step_ms = Some(phases.step);
                    record.peak_rss_mib = rss::peak_mib();
                    if !reset {
                        record.note =
                            Some("peak RSS not reset: it covers the whole process".into());
                    }
                    observer.measured(&record);
                    records.push(record);
                }
            }
        }
    }
    Ok(records)
}

fn measure_one(
    device: &Device,
    model: Model,
    spec: &OptimizerSpec,
    batch: usize,
    config: &TrainConfig,
) -> Result<Phases, BenchError> {
    let (warmup, repeats) = (config.warmup, config.repeats);
    let steps = warmup + repeats;
    let total = match model {
        Model::Cnn => time_loop(
            device,
            adamlab_train::classification::model(),
            random_images(steps * batch),
            batch,
            spec,
            warmup,
        )?,
        Model::Mlp => time_loop(
            device,
            adamlab_train::mlp::model(),
            random_points(steps * batch),
            batch,
            spec,
            warmup,
        )?,
        Model::CharGpt => {
            let config = CharGptConfig::fortunes();
            let init = |device: &Device| config.init(device);
            let model = fit::Model {
                name: language_model::model_name(&config),
                init: &init,
            };
            time_loop(device, model, random_windows(steps * batch, config.context), batch, spec, warmup)?
        }
        Model::SoftmaxRegression => time_loop(
            device,
            adamlab_train::classification::softmax_regression(),
            random_images(steps * batch),
            batch,
            spec,
            warmup,
        )?,
        Model::Rosenbrock => time_loop(device, test_functions::rosenbrock(), test_functions::steps(steps), 1, spec, warmup)?,
        Model::Quadratic => time_loop(device, test_functions::quadratic(), test_functions::steps(steps), 1, spec, warmup)?,
    };
    let synced = measure_phases(device, model, spec, batch, config)?;
    Ok(Phases { total, ..synced })
}

/// `n` random 28×28 images (a fixed generator: the pixels do not change the time), labels
/// cycling through the ten classes.
fn random_images(n: usize) -> TrainData<MnistItem, MnistBatcher> {
    let mut state = 0x9e37_79b9_u32;
    let items = (0..n)
        .map(|i| MnistItem {
            pixels: (0..28 * 28)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 24) as u8
                })
                .collect(),
            label: (i % 10) as u8,
        })
        .collect();
    TrainData {
        dataset: Arc::new(InMemDataset::new(items)),
        batcher: MnistBatcher,
        fingerprint: "random images".into(),
    }
}

/// `n` windows of `context + 1` random tokens (a fixed generator: the tokens do not change the
/// time).
fn random_windows(n: usize, context: usize) -> TrainData<Window, TextBatcher> {
    let mut state = 0x2545_f491_u32;
    let windows = (0..n)
        .map(|_| {
            Window(
                (0..=context)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        (state % VOCAB as u32) as u8
                    })
                    .collect(),
            )
        })
        .collect();
    TrainData {
        dataset: Arc::new(InMemDataset::new(windows)),
        batcher: TextBatcher,
        fingerprint: "random windows".into(),
    }
}

/// `n` points of the MLP's shape (two features, one target).
fn random_points(n: usize) -> TrainData<Point, PointBatcher> {
    let points = (0..n)
        .map(|i| {
            let x = i as f32 / n as f32;
            (vec![x, 1.0 - x], vec![2.0 * x - 1.0])
        })
        .collect();
    TrainData {
        dataset: Arc::new(InMemDataset::new(points)),
        batcher: PointBatcher,
        fingerprint: "random points".into(),
    }
}

/// Trains one epoch of `data` in batches of `batch` through [`fit::fit`], in dataset order, and
/// summarises the time between consecutive step reports after the first `warmup` steps.
fn time_loop<M, I, Bt>(
    device: &Device,
    model: fit::Model<M>,
    data: TrainData<I, Bt>,
    batch: usize,
    spec: &OptimizerSpec,
    warmup: usize,
) -> Result<Summary, BenchError>
where
    M: Trainable,
    I: Example,
    Bt: Batcher<I, M::Input> + Clone + 'static,
{
    let controls = ControlsSpec::optimizer(spec.clone());
    let mut clock = StepClock {
        last: None,
        times: Vec::new(),
    };
    fit::fit(
        device,
        model,
        &data,
        Fit {
            config: RunConfig {
                epochs: 1,
                batch_size: batch,
                seed: 0,
                shuffle: false,
                checkpoint_every: None,
            },
            controls: &controls,
            start: Start::Seeded,
            checkpointer: None,
            evaluate: None,
            observer: &mut clock,
        },
    )
    .map_err(|stopped| BenchError::Invalid(format!("training stopped: {}", stopped.error)))?;
    // The first interval runs from the run's start: it holds the model's initialisation.
    Summary::of(&clock.times[warmup.min(clock.times.len())..])
        .ok_or_else(|| BenchError::Invalid("--repeats must be at least 1".into()))
}

/// Milliseconds between consecutive step reports (the first from the run's start).
struct StepClock {
    last: Option<Instant>,
    times: Vec<f64>,
}

impl fit::Observer for StepClock {
    fn on_start(&mut self, _: &adamlab_train::checkpoint::Progress) -> Result<(), ObserverError> {
        self.last = Some(Instant::now());
        Ok(())
    }

    fn on_step(&mut self, _: &StepReport) -> Result<(), ObserverError> {
        let now = Instant::now();
        if let Some(last) = self.last.replace(now) {
            self.times.push((now - last).as_secs_f64() * 1e3);
        }
        Ok(())
    }

    fn on_epoch(&mut self, _: &EpochReport) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// The step split into phases, syncing the device between them.
fn measure_phases(
    device: &Device,
    model: Model,
    spec: &OptimizerSpec,
    batch: usize,
    config: &TrainConfig,
) -> Result<Phases, BenchError> {
    let device = device.clone().autodiff();
    device.seed(0);
    let mut optimizer = spec.build()?.module_optimizer();
    let lr = spec.lr();
    let (warmup, repeats) = (config.warmup, config.repeats);
    let phases = match model {
        Model::Cnn => {
            let images =
                Tensor::<4>::random([batch, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
            let labels: Vec<i64> = (0..batch).map(|i| (i % 10) as i64).collect();
            let labels = Tensor::<1, Int>::from_ints(TensorData::new(labels, [batch]), &device);
            let cnn = CnnConfig::new().init(&device);
            time_phases(&device, warmup, repeats, cnn, &mut optimizer, lr, |m| {
                adamlab_train::classification::loss(m, images.clone(), labels.clone())
            })?
        }
        Model::Mlp => {
            let inputs = Tensor::<2>::random([batch, 2], Distribution::Normal(0.0, 1.0), &device);
            let targets = Tensor::<2>::random([batch, 1], Distribution::Normal(0.0, 1.0), &device);
            let mlp = MlpConfig::new().init(&device);
            time_phases(&device, warmup, repeats, mlp, &mut optimizer, lr, |m| {
                MseLoss::new().forward(m.forward(inputs.clone()), targets.clone(), Reduction::Mean)
            })?
        }
        Model::CharGpt => {
            let config = CharGptConfig::fortunes();
            let data = random_windows(batch, config.context);
            let windows: Vec<Window> = (0..batch).filter_map(|i| data.dataset.get(i).ok()).collect();
            let text = TextBatcher.batch(windows, &device);
            time_phases(&device, warmup, repeats, config.init(&device), &mut optimizer, lr, |m| {
                m.forward_language_model(text.clone()).loss
            })?
        }
        Model::SoftmaxRegression => {
            let data = random_images(batch);
            let items: Vec<MnistItem> = (0..batch).filter_map(|i| data.dataset.get(i).ok()).collect();
            let images = MnistBatcher.batch(items, &device);
            let model = SoftmaxRegressionConfig::new().init(&device);
            time_phases(&device, warmup, repeats, model, &mut optimizer, lr, |m| {
                m.forward_classification(images.clone()).loss
            })?
        }
        Model::Rosenbrock => {
            time_phases(&device, warmup, repeats, Rosenbrock::init(&device), &mut optimizer, lr, Rosenbrock::value)?
        }
        Model::Quadratic => {
            time_phases(&device, warmup, repeats, Quadratic::init(&device), &mut optimizer, lr, Quadratic::value)?
        }
    };
    Ok(phases)
}

/// Times `warmup + repeats` training steps of `model`, syncing the device after each phase.
fn time_phases<M: Module>(
    device: &Device,
    warmup: usize,
    repeats: usize,
    mut model: M,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    loss: impl Fn(&M) -> Tensor<1>,
) -> Result<Phases, DeviceError> {
    let (mut total, mut forward, mut backward, mut step) = (vec![], vec![], vec![], vec![]);
    measure::sync(device)?;
    for i in 0..warmup + repeats {
        let t0 = Instant::now();
        let value = loss(&model);
        measure::sync(device)?;
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(value.backward(), &model);
        measure::sync(device)?;
        let t2 = Instant::now();
        model = optimizer.step(lr, model, grads);
        measure::sync(device)?;
        let t3 = Instant::now();
        if i >= warmup {
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            total.push(ms(t0, t3));
            forward.push(ms(t0, t1));
            backward.push(ms(t1, t2));
            step.push(ms(t2, t3));
        }
    }
    let median = |v: &[f64]| Summary::of(v).expect("repeats ≥ 1").median;
    Ok(Phases {
        total: Summary::of(&total).expect("repeats ≥ 1"),
        forward: median(&forward),
        backward: median(&backward),
        step: median(&step),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quiet;
    use adamlab_backend::BackendKind;

    #[test]
    fn a_small_run_splits_each_step_into_three_phases() {
        let config = TrainConfig {
            targets: vec![Target::new(BackendKind::Flex).unwrap()],
            optimizers: vec![OptimizerSpec::parse("adam").unwrap()],
            models: vec![Model::Cnn, Model::Mlp],
            batch_sizes: vec![2],
            warmup: 0,
            repeats: 2,
        };
        let records = run(&config, &mut Quiet).unwrap();
        assert_eq!(records.len(), 2);
        for r in &records {
            assert_eq!((r.batch_size, r.repeats), (Some(2), Some(2)));
            let phases = [r.forward_ms, r.backward_ms, r.step_ms].map(Option::unwrap);
            assert!(phases.iter().all(|p| *p >= 0.0), "{phases:?}");
            assert!(r.images_per_second.unwrap() > 0.0);
        }
        assert_eq!(records[0].model.as_deref(), Some("cnn"));
    }

    /// The workloads are timed like the article's models; a test function at batch 1 only, the
    /// others at every batch size asked for.
    #[test]
    fn the_workloads_are_timed_and_a_test_function_at_batch_one() {
        let config = TrainConfig {
            targets: vec![Target::new(BackendKind::Flex).unwrap()],
            optimizers: vec![OptimizerSpec::parse("adam").unwrap()],
            models: vec![Model::CharGpt, Model::SoftmaxRegression, Model::Rosenbrock, Model::Quadratic],
            batch_sizes: vec![1, 2],
            warmup: 0,
            repeats: 1,
        };
        let records = run(&config, &mut Quiet).unwrap();
        let seen: Vec<(&str, u64)> = records.iter().map(|r| (r.model.as_deref().unwrap(), r.batch_size.unwrap())).collect();
        assert_eq!(
            seen,
            [("char-gpt", 1), ("char-gpt", 2), ("softmax-regression", 1), ("softmax-regression", 2), ("rosenbrock", 1), ("quadratic", 1)]
        );
        for r in &records {
            let phases = [r.forward_ms, r.backward_ms, r.step_ms].map(Option::unwrap);
            assert!(phases.iter().all(|p| *p >= 0.0) && r.median_ms.unwrap() > 0.0, "{r:?}");
        }
    }

    #[test]
    fn a_zero_batch_size_is_refused() {
        let config = TrainConfig {
            targets: vec![Target::new(BackendKind::Flex).unwrap()],
            optimizers: vec![OptimizerSpec::parse("adam").unwrap()],
            models: vec![Model::Cnn],
            batch_sizes: vec![0],
            warmup: 0,
            repeats: 1,
        };
        assert!(run(&config, &mut Quiet).unwrap_err().is_usage());
    }
}
