//! The training loop's extras through `adamlab_train::fit`: gradient accumulation equals the
//! larger batch, a skipped non-finite step leaves no trace, and a run with every extra (EMA,
//! Lookahead, accumulation, skipped steps) resumes from a checkpoint bit for bit. Against torch:
//! `tests/training_controls.rs` (`mlp-ema-adam`, `mlp-lookahead-adam`, `mlp-accumulate-sgd`).

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::models::Mlp;
use adamlab::optim::OptimizerSpec;
use adamlab::train::checkpoint::{Checkpointer, Mode};
use adamlab::train::controls::ControlsSpec;
use adamlab::train::lookahead::Lookahead;
use adamlab::train::swa::Swa;
use adamlab::train::fit::{self, EpochReport, Fit, ObserverError, RunConfig, Start, StepReport, TrainData};
use adamlab::train::mlp::{Point, PointBatcher, model};
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::tensor::Device;
use std::sync::Arc;

/// Every step's report; fails the run at step `fail_at`, as a kill would stop it.
#[derive(Default)]
struct Steps {
    reports: Vec<StepReport>,
    fail_at: Option<usize>,
}

impl fit::Observer for Steps {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        if self.fail_at == Some(report.step) {
            return Err("stopped by the test".into());
        }
        self.reports.push(*report);
        Ok(())
    }

    fn on_epoch(&mut self, _: &EpochReport) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// `n` points of `Linear(2, 1)`'s shape: y = 0.5·x₀ − x₁ + 0.25, on a fixed grid.
fn points(n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| {
            let (a, b) = ((i % 7) as f32 / 3.0 - 1.0, (i % 5) as f32 / 2.0 - 1.0);
            (vec![a, b], vec![0.5 * a - b + 0.25])
        })
        .collect()
}

fn data(points: Vec<Point>) -> TrainData<Point, PointBatcher> {
    TrainData {
        dataset: Arc::new(InMemDataset::new(points)),
        batcher: PointBatcher,
        fingerprint: "test points".into(),
    }
}

fn config(epochs: usize, batch_size: usize) -> RunConfig {
    RunConfig {
        epochs,
        batch_size,
        seed: 0,
        shuffle: false,
        checkpoint_every: Some(1),
    }
}

fn controls(optimizer: &str) -> ControlsSpec {
    ControlsSpec::optimizer(OptimizerSpec::parse(optimizer).unwrap())
}

/// The MLP's initial weights, drawn once and shared by every run of a comparison (burn draws
/// parameters lazily from a generator that parallel tests share).
fn initial(device: &Device) -> Mlp {
    let autodiff = device.clone().autodiff();
    let mlp = (model().init)(&autodiff);
    let record = mlp.clone().into_record();
    mlp.load_record(record)
}

fn train(
    device: &Device,
    data: &TrainData<Point, PointBatcher>,
    config: RunConfig,
    controls: &ControlsSpec,
    start: Start<Mlp>,
    checkpointer: Option<&Checkpointer>,
    observer: &mut Steps,
) -> Result<Mlp, fit::Stopped<Mlp>> {
    fit::fit(
        device,
        model(),
        data,
        Fit {
            config,
            controls,
            start,
            checkpointer,
            evaluate: None,
            observer,
        },
    )
}

fn values(model: &Mlp) -> Vec<f32> {
    let mut v = model.fc.weight.val().into_data().try_to_vec::<f32>().unwrap();
    v.extend(model.fc.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap());
    v
}

/// f32 rounding of the gradient sums: the micro-batches' mean losses, scaled and added, round
/// differently from one mean over all examples. Measured: below 1e-6 after 8 Adam steps.
const ACCUMULATION_TOLERANCE: f32 = 1e-5;

#[test]
fn three_batches_of_four_accumulated_step_as_one_batch_of_twelve_on_every_backend() {
    for backend in compiled() {
        let device = device(backend).unwrap();
        // 22 points: batches of 4 give 6 per epoch (the last of 2), two steps of 3 batches: 12 and
        // 10 examples, as batches of 12 give.
        let data = data(points(22));
        for optimizer in ["sgd(lr=0.1, momentum=0.9)", "adam(lr=0.05)"] {
            let start = initial(&device);
            let mut accumulated = controls(optimizer);
            accumulated.accumulate = 3;
            let (mut a, mut b) = (Steps::default(), Steps::default());
            let small = train(&device, &data, config(4, 4), &accumulated, Start::Weights(Box::new(start.clone())), None, &mut a)
                .unwrap_or_else(|s| panic!("{}", s.error));
            let large = train(&device, &data, config(4, 12), &controls(optimizer), Start::Weights(Box::new(start)), None, &mut b)
                .unwrap_or_else(|s| panic!("{}", s.error));
            assert_eq!(a.reports.len(), 8, "{backend} {optimizer}: two steps per epoch");
            assert_eq!(a.reports.len(), b.reports.len());
            for (x, y) in a.reports.iter().zip(&b.reports) {
                assert!((x.loss - y.loss).abs() <= ACCUMULATION_TOLERANCE, "{backend} {optimizer} step {}: {} vs {}", x.step, x.loss, y.loss);
            }
            for (x, y) in values(&small).iter().zip(values(&large)) {
                assert!((x - y).abs() <= ACCUMULATION_TOLERANCE, "{backend} {optimizer}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn a_skipped_non_finite_step_leaves_the_weights_as_if_its_batch_were_not_there() {
    let device = device(BackendKind::Flex).unwrap();
    let clean = points(8);
    let mut poisoned = clean.clone();
    poisoned[2].0[0] = f32::NAN;
    poisoned[3].1[0] = f32::INFINITY;
    let without: Vec<Point> = clean.iter().enumerate().filter(|(i, _)| !(2..4).contains(i)).map(|(_, p)| p.clone()).collect();
    let mut spec = controls("adam(lr=0.05)");
    spec.skip_nonfinite = true;
    let start = initial(&device);
    let (mut a, mut b) = (Steps::default(), Steps::default());
    let skipped = train(&device, &data(poisoned.clone()), config(1, 2), &spec, Start::Weights(Box::new(start.clone())), None, &mut a)
        .unwrap_or_else(|s| panic!("{}", s.error));
    let reference = train(&device, &data(without), config(1, 2), &spec, Start::Weights(Box::new(start.clone())), None, &mut b)
        .unwrap_or_else(|s| panic!("{}", s.error));
    let flags: Vec<bool> = a.reports.iter().map(|r| r.skipped).collect();
    assert_eq!(flags, [false, true, false, false]);
    assert_eq!(values(&skipped), values(&reference), "bit for bit");
    // Without the policy the same data stops the run at that step.
    let stopped = train(&device, &data(poisoned), config(1, 2), &controls("adam(lr=0.05)"), Start::Weights(Box::new(start)), None, &mut Steps::default())
        .err()
        .expect("a NaN loss stops the run");
    assert!(stopped.error.to_string().contains("step 2"), "{}", stopped.error);
}

/// A run of `epochs` with `spec`, stopped by its observer at step `fail_at` and resumed from its
/// last checkpoint (one every step), against the uninterrupted run: the same reports from there,
/// the same final weights, bit for bit. Returns the uninterrupted run's reports.
fn resumes_bit_for_bit(name: &str, data: &TrainData<Point, PointBatcher>, spec: &ControlsSpec, epochs: usize, fail_at: usize) -> Vec<StepReport> {
    let device = device(BackendKind::Flex).unwrap();
    let start = initial(&device);
    let dir = |part: &str| std::env::temp_dir().join(format!("adamlab-loop-extras-{}-{name}-{part}", std::process::id()));
    let (whole_dir, cut_dir) = (dir("whole"), dir("cut"));
    let mut whole_steps = Steps::default();
    let whole = {
        let checkpointer = Checkpointer::open(&whole_dir, Mode::Fresh, 2).unwrap();
        train(&device, data, config(epochs, 2), spec, Start::Weights(Box::new(start.clone())), Some(&checkpointer), &mut whole_steps)
            .unwrap_or_else(|s| panic!("{}", s.error))
    };
    {
        let checkpointer = Checkpointer::open(&cut_dir, Mode::Fresh, 2).unwrap();
        let mut cut = Steps { fail_at: Some(fail_at), ..Steps::default() };
        assert!(train(&device, data, config(epochs, 2), spec, Start::Weights(Box::new(start)), Some(&checkpointer), &mut cut).is_err());
    }
    let resumed = {
        let checkpointer = Checkpointer::open(&cut_dir, Mode::Resume, 2).unwrap();
        let mut rest = Steps::default();
        let resumed = train(&device, data, config(epochs, 2), spec, Start::Resume, Some(&checkpointer), &mut rest)
            .unwrap_or_else(|s| panic!("{name}: {}", s.error));
        let expected = &whole_steps.reports[fail_at - 1..];
        assert_eq!(rest.reports.len(), expected.len(), "{name}");
        for (ours, theirs) in rest.reports.iter().zip(expected) {
            assert_eq!((ours.step, ours.loss.to_bits(), ours.lr), (theirs.step, theirs.loss.to_bits(), theirs.lr), "{name}");
        }
        resumed
    };
    assert_eq!(values(&resumed), values(&whole), "{name}: the final (averaged) weights, bit for bit");
    for dir in [whole_dir, cut_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
    whole_steps.reports
}

#[test]
fn a_run_with_ema_lookahead_accumulation_and_a_skipped_step_resumes_bit_for_bit() {
    let mut points = points(20);
    // Batches of 2, two per step: 5 steps an epoch; point 9 poisons step 3 (steps 3 and 8).
    points[9].0[1] = f32::NAN;
    let mut spec = controls("adamw(lr=0.05)");
    spec.schedule = Some(adamlab::optim::schedule::ScheduleSpec::parse("cosine(t_max=12)").unwrap());
    (spec.accumulate, spec.ema, spec.skip_nonfinite) = (2, Some(0.8), true);
    spec.lookahead = Some(Lookahead { k: 3, alpha: 0.5 });
    // Stopped at step 9 (epoch 2, its fourth step), after the checkpoint of step 8, the skipped one.
    let reports = resumes_bit_for_bit("ema", &data(points), &spec, 2, 9);
    assert_eq!(reports.iter().filter(|r| r.skipped).count(), 2, "one skipped step per epoch");
}

#[test]
fn a_run_with_swa_resumes_bit_for_bit_inside_its_averaging_epochs() {
    let mut spec = controls("sgd(lr=0.1, momentum=0.9)");
    spec.schedule = Some(adamlab::optim::schedule::ScheduleSpec::parse("cosine(t_max=40)").unwrap());
    spec.swa = Some(Swa { after: 1, swa_lr: 0.02, anneal_epochs: 2, cosine: true });
    spec.lookahead = Some(Lookahead { k: 4, alpha: 0.5 });
    // 5 steps an epoch, 4 epochs: the schedule for epoch 1, its rate held through epoch 2, SWALR's
    // from epoch 3; stopped at step 13 (epoch 3), resumed.
    let reports = resumes_bit_for_bit("swa", &data(points(10)), &spec, 4, 13);
    let lrs: Vec<f64> = reports.iter().map(|r| r.lr).collect();
    assert!(lrs[..5].windows(2).all(|w| w[1] < w[0]), "the cosine in epoch 1: {lrs:?}");
    for epoch in 1..4 {
        let within = &lrs[5 * epoch..5 * epoch + 5];
        assert!(within.iter().all(|lr| *lr == within[0]), "held within epoch {}: {lrs:?}", epoch + 1);
    }
    assert!(lrs[5] < lrs[4] && lrs[10] != lrs[5] && lrs[15] == 0.02, "held, then annealed to swa_lr: {lrs:?}");
}
