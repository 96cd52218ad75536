//! The training controls against torch (`fixtures/torch/controls/`, written by
//! `tools/reference/generate.py controls` from `tools/reference/controls.py`): every schedule's
//! learning rate for 300 steps, gradient clipping on fixed gradients, the article's MLP for
//! 100 epochs with schedules, clipping and two param groups, and the loop's extras (a weight EMA,
//! gradient accumulation) trained through `adamlab_train::fit` itself.

use crate::compare::{CheckReport, Deviation, Tolerance};
use crate::params::named_params;
use crate::torch::mlp_from_torch;
use adamlab_optim::clip::{self, Clip};
use adamlab_optim::schedule::ScheduleSpec;
use adamlab_optim::{OptimizerSpec, Value};
use adamlab_train::controls::{Controls, ControlsSpec, GroupSpec};
use adamlab_train::fit::{self, EpochReport, Fit, ObserverError, RunConfig, Start, StepReport, TrainData};
use adamlab_train::lookahead::Lookahead;
use adamlab_train::swa::Swa;
use adamlab_train::mlp::{Point, PointBatcher};
use burn::data::dataset::InMemDataset;
use std::sync::Arc;
use burn::module::{Module, Param, ParamGroup};
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::GradientsParams;
use burn::optim::lr_scheduler::LrScheduler;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;
use std::collections::BTreeMap;

const SCHEDULES: &str = include_str!("../../../fixtures/torch/controls/schedules.json");
const CLIPPING: &str = include_str!("../../../fixtures/torch/controls/clipping.json");
const PLATEAU: &str = include_str!("../../../fixtures/torch/controls/plateau.json");
/// The MLP cases, by name.
pub const MLP_CONTROLS: [(&str, &str); 5] = [
    ("warmup-cosine", include_str!("../../../fixtures/torch/controls/mlp-warmup-cosine.json")),
    ("clip-norm", include_str!("../../../fixtures/torch/controls/mlp-clip-norm.json")),
    ("clip-value-sgd", include_str!("../../../fixtures/torch/controls/mlp-clip-value-sgd.json")),
    ("onecycle-sgd", include_str!("../../../fixtures/torch/controls/mlp-onecycle-sgd.json")),
    ("two-groups-adamw", include_str!("../../../fixtures/torch/controls/mlp-two-groups-adamw.json")),
];
/// The loop's extras on the MLP, trained through `adamlab_train::fit`.
pub const MLP_LOOP: [(&str, &str); 4] = [
    ("swa-sgd", include_str!("../../../fixtures/torch/controls/mlp-swa-sgd.json")),
    ("ema-adam", include_str!("../../../fixtures/torch/controls/mlp-ema-adam.json")),
    ("lookahead-adam", include_str!("../../../fixtures/torch/controls/mlp-lookahead-adam.json")),
    ("accumulate-sgd", include_str!("../../../fixtures/torch/controls/mlp-accumulate-sgd.json")),
];

/// Schedules: relative 1e-7 on every learning rate and cycled momentum, the bound. The
/// schedules replay torch's own f64 recursions, so they agree to a few ulps (measured: see the
/// README's table of results).
pub const SCHEDULE_TOLERANCE: Tolerance = Tolerance::new(0.0, 1e-7);

/// Clipping: atol 1e-7 + rtol 1e-6 on the total norm and every clipped gradient. The norms are f32
/// sums, whose order differs from torch's kernels by a few ulps.
pub const CLIP_TOLERANCE: Tolerance = Tolerance::new(1e-7, 1e-6);

/// The MLP with controls: atol 1e-6 + rtol 1e-4 on every loss and parameter, as the other
/// optimizers' MLP fixtures (`adamlab_verify::torch::MLP_FIXTURE_TOLERANCE`).
pub const MLP_CONTROLS_TOLERANCE: Tolerance = Tolerance::new(1e-6, 1e-4);

#[derive(Debug, Deserialize)]
struct ScheduleCase {
    spec: String,
    optimizer: String,
    base_lr: f64,
    lrs: Vec<f64>,
    momenta: Vec<f64>,
}

#[derive(Debug, Deserialize)]
struct Cases<T> {
    cases: Vec<T>,
}

/// Every schedule of the fixture, against torch's learning rate at each of its 300 steps (and
/// OneCycleLR's cycled momentum).
pub fn check_schedules() -> Vec<CheckReport> {
    let fixture: Cases<ScheduleCase> = serde_json::from_str(SCHEDULES).expect("embedded fixture");
    fixture
        .cases
        .iter()
        .map(|case| {
            let spec = ScheduleSpec::parse(&case.spec)
                .unwrap_or_else(|err| panic!("schedule fixture {}: {err}", case.spec));
            let mut schedule = spec.build(case.base_lr).expect("parse checks that it builds");
            let mut deviation = Deviation::default();
            for (step, (lr, momentum)) in case.lrs.iter().zip(&case.momenta).enumerate() {
                let (_, cycled) = schedule.peek();
                let ours = LrScheduler::step(&mut schedule);
                deviation.record_f64(SCHEDULE_TOLERANCE, step + 1, "lr", ours, *lr);
                if let Some(cycled) = cycled {
                    deviation.record_f64(SCHEDULE_TOLERANCE, step + 1, "momentum", cycled, *momentum);
                }
            }
            CheckReport {
                case: format!("torch-schedule/{} ({})", case.spec, case.optimizer),
                steps: case.lrs.len(),
                tolerance: SCHEDULE_TOLERANCE,
                deviation,
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct PlateauCase {
    spec: String,
    base_lr: f64,
    /// `None` for NaN (JSON has no NaN).
    metrics: Vec<Option<f64>>,
    lrs: Vec<f64>,
}

/// `reduce-on-plateau` against torch's `ReduceLROnPlateau`: the learning rate after each of 80
/// epoch metrics, for every mode, threshold mode, patience, cooldown, min_lr and eps case of the
/// fixture. Same tolerance as the other schedules (the rule is a few f64 products).
pub fn check_plateau() -> Vec<CheckReport> {
    let fixture: Cases<PlateauCase> = serde_json::from_str(PLATEAU).expect("embedded fixture");
    fixture
        .cases
        .iter()
        .map(|case| {
            let spec = ScheduleSpec::parse(&case.spec)
                .unwrap_or_else(|err| panic!("plateau fixture {}: {err}", case.spec));
            let mut schedule = spec.build(case.base_lr).expect("parse checks that it builds");
            let mut deviation = Deviation::default();
            for (epoch, (metric, lr)) in case.metrics.iter().zip(&case.lrs).enumerate() {
                schedule.observe(metric.unwrap_or(f64::NAN));
                // A few optimizer steps between epochs do not move it.
                schedule.advance(3);
                deviation.record_f64(SCHEDULE_TOLERANCE, epoch + 1, "lr", schedule.peek().0, *lr);
            }
            CheckReport {
                case: format!("torch-plateau/{}", case.spec),
                steps: case.lrs.len(),
                tolerance: SCHEDULE_TOLERANCE,
                deviation,
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct ClipCase {
    kind: String,
    max_norm: Option<f64>,
    norm_type: Option<serde_json::Value>,
    clip_value: Option<f64>,
    shapes: Vec<Vec<usize>>,
    grads: Vec<Vec<f32>>,
    total_norm: Option<f64>,
    clipped: Vec<Vec<f32>>,
}

/// Three parameters of rank 1, 2 and 4, as the clipping fixture has them.
#[derive(Module, Debug)]
struct Three {
    a: Param<Tensor<1>>,
    b: Param<Tensor<2>>,
    c: Param<Tensor<4>>,
}

/// `clip_grad_norm_` and `clip_grad_value_` on the fixture's fixed gradients, on `device`.
pub fn check_clipping(device: &Device) -> Vec<CheckReport> {
    let fixture: Cases<ClipCase> = serde_json::from_str(CLIPPING).expect("embedded fixture");
    fixture
        .cases
        .iter()
        .map(|case| {
            let shape = |i: usize| case.shapes[i].clone();
            let data = |i: usize| TensorData::new(case.grads[i].clone(), shape(i));
            let module = Three {
                a: Param::from_tensor(Tensor::zeros(shape(0), device)),
                b: Param::from_tensor(Tensor::zeros(shape(1), device)),
                c: Param::from_tensor(Tensor::zeros(shape(2), device)),
            };
            let mut grads = GradientsParams::new();
            grads.register::<1>(module.a.id, Tensor::from_data(data(0), device));
            grads.register::<2>(module.b.id, Tensor::from_data(data(1), device));
            grads.register::<4>(module.c.id, Tensor::from_data(data(2), device));
            let clip = match case.kind.as_str() {
                "norm" => Clip::Norm {
                    max_norm: case.max_norm.expect("a norm case has max_norm"),
                    norm_type: match &case.norm_type {
                        Some(serde_json::Value::String(s)) if s == "inf" => f64::INFINITY,
                        Some(v) => v.as_f64().expect("a number"),
                        None => 2.0,
                    },
                },
                _ => Clip::Value(case.clip_value.expect("a value case has clip_value")),
            };
            let total = clip::apply(clip, &module, &mut grads);
            let mut deviation = Deviation::default();
            if let (Some(ours), Some(theirs)) = (total, case.total_norm) {
                deviation.record_f64(CLIP_TOLERANCE, 1, "total_norm", ours, theirs);
            }
            let host = |t: TensorData| t.convert::<f32>().try_to_vec::<f32>().expect("f32");
            let clipped = [
                host(grads.get::<1>(module.a.id).expect("kept").to_data()),
                host(grads.get::<2>(module.b.id).expect("kept").to_data()),
                host(grads.get::<4>(module.c.id).expect("kept").to_data()),
            ];
            for (i, (ours, theirs)) in clipped.iter().zip(&case.clipped).enumerate() {
                deviation.record(CLIP_TOLERANCE, 1, &format!("grad{i}"), ours, theirs);
            }
            CheckReport {
                case: format!("torch-clip/{clip:?}"),
                steps: 1,
                tolerance: CLIP_TOLERANCE,
                deviation,
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct MlpControlsFixture {
    optimizer: String,
    schedule: Option<String>,
    clip: Option<BTreeMap<String, f64>>,
    groups: Vec<GroupFixture>,
    inputs: Vec<f32>,
    targets: Vec<f32>,
    initial: BTreeMap<String, Vec<f32>>,
    losses: Vec<f32>,
    params: Vec<BTreeMap<String, Vec<f32>>>,
    lrs: Vec<Vec<f64>>,
    /// The EMA's decay, and its parameters after every step.
    #[serde(default)]
    ema: Option<f64>,
    #[serde(default)]
    ema_params: Vec<BTreeMap<String, Vec<f32>>>,
    /// Examples per batch and batches per step (the whole set in one, by default).
    #[serde(default)]
    batch_size: Option<usize>,
    #[serde(default)]
    accumulate: Option<usize>,
    /// Lookahead's k and alpha.
    #[serde(default)]
    lookahead: Option<LookaheadFixture>,
    /// SWA's start and SWALR's settings, and the averaged parameters after every epoch from then.
    #[serde(default)]
    swa: Option<SwaFixture>,
    #[serde(default)]
    swa_params: Vec<BTreeMap<String, Vec<f32>>>,
}

#[derive(Debug, Deserialize)]
struct SwaFixture {
    after: usize,
    swa_lr: f64,
    anneal_epochs: usize,
    anneal_strategy: String,
}

#[derive(Debug, Deserialize)]
struct LookaheadFixture {
    k: usize,
    alpha: f64,
}

#[derive(Debug, Deserialize)]
struct GroupFixture {
    paths: Vec<String>,
    overrides: BTreeMap<String, f64>,
}

/// The controls a fixture describes.
fn controls_spec(fixture: &MlpControlsFixture) -> ControlsSpec {
    let optimizer = OptimizerSpec::parse(&fixture.optimizer).expect("a valid spec");
    let schedule = fixture
        .schedule
        .as_ref()
        .map(|s| ScheduleSpec::parse(s).expect("a valid schedule"));
    let clip = fixture.clip.as_ref().map(|c| match c.get("max_norm") {
        Some(max_norm) => Clip::Norm {
            max_norm: *max_norm,
            norm_type: c.get("norm_type").copied().unwrap_or(2.0),
        },
        None => Clip::Value(c["clip_value"]),
    });
    let groups = fixture
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| GroupSpec {
            name: format!("group{}", i + 1),
            select: ParamGroup::from_paths(g.paths.clone()),
            overrides: g.overrides.iter().map(|(k, v)| (k.clone(), Value::Number(*v))).collect(),
        })
        .collect();
    ControlsSpec {
        optimizer,
        groups,
        schedule,
        clip,
        accumulate: fixture.accumulate.unwrap_or(1),
        ema: fixture.ema,
        skip_nonfinite: false,
        lookahead: fixture.lookahead.as_ref().map(|l| Lookahead { k: l.k, alpha: l.alpha }),
        swa: fixture.swa.as_ref().map(|s| Swa {
            after: s.after,
            swa_lr: s.swa_lr,
            anneal_epochs: s.anneal_epochs,
            cosine: s.anneal_strategy == "cos",
        }),
    }
}

/// The article's MLP for 100 epochs with the fixture's controls, from torch's weights: every loss,
/// parameter and group learning rate.
pub fn check_mlp_controls(name: &str, json: &str, device: &Device) -> CheckReport {
    let fixture: MlpControlsFixture = serde_json::from_str(json).expect("embedded fixture");
    let device = device.clone().autodiff();
    let mut controls = Controls::new(&controls_spec(&fixture))
        .unwrap_or_else(|err| panic!("controls fixture {name}: {err}"));
    let mut model = mlp_from_torch(&fixture.initial, &device);
    let inputs = Tensor::<2>::from_data(TensorData::new(fixture.inputs.clone(), [2, 2]), &device);
    let targets = Tensor::<2>::from_data(TensorData::new(fixture.targets.clone(), [2, 1]), &device);
    let mut deviation = Deviation::default();
    for (epoch, ((expected_loss, expected_params), lrs)) in
        fixture.losses.iter().zip(&fixture.params).zip(&fixture.lrs).enumerate()
    {
        for (group, ((ours, _), theirs)) in controls.next_rates().iter().zip(lrs).enumerate() {
            deviation.record_f64(MLP_CONTROLS_TOLERANCE, epoch + 1, &format!("lr{group}"), *ours, *theirs);
        }
        let loss = MseLoss::new().forward(model.forward(inputs.clone()), targets.clone(), Reduction::Mean);
        let loss_value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (model, _) = controls
            .step(model, grads)
            .unwrap_or_else(|refused| panic!("controls fixture {name}: {}", refused.error));
        deviation.record(MLP_CONTROLS_TOLERANCE, epoch + 1, "loss", &[loss_value], &[*expected_loss]);
        for (param, values) in named_params(&model) {
            deviation.record(MLP_CONTROLS_TOLERANCE, epoch + 1, &param, &values, &expected_params[&param]);
        }
    }
    CheckReport {
        case: format!("torch-controls/mlp-{name}"),
        steps: fixture.losses.len(),
        tolerance: MLP_CONTROLS_TOLERANCE,
        deviation,
    }
}

/// The losses `fit` reports, one per optimizer step.
struct Losses(Vec<f32>);

impl fit::Observer for Losses {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        self.0.push(report.loss);
        Ok(())
    }

    fn on_epoch(&mut self, _: &EpochReport) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// The article's MLP trained by `adamlab_train::fit` with the fixture's extras (EMA,
/// accumulation), one epoch per fixture step, from torch's weights, in the fixture's order: every
/// step's loss (for accumulation, the sum of the micro-batches' `loss / N`), then the final weights
/// (the EMA's where the run keeps one, as `fit` returns them) against torch's last ones.
pub fn check_mlp_loop(name: &str, json: &str, device: &Device) -> CheckReport {
    let fixture: MlpControlsFixture = serde_json::from_str(json).expect("embedded fixture");
    let spec = controls_spec(&fixture);
    let points: Vec<Point> = fixture
        .inputs
        .chunks(2)
        .zip(fixture.targets.chunks(1))
        .map(|(x, y)| (x.to_vec(), y.to_vec()))
        .collect();
    let data = TrainData {
        dataset: Arc::new(InMemDataset::new(points)),
        batcher: PointBatcher,
        fingerprint: "the article's two points".into(),
    };
    let initial = mlp_from_torch(&fixture.initial, &device.clone().autodiff());
    let mut losses = Losses(Vec::new());
    let trained = fit::fit(
        device,
        adamlab_train::mlp::model(),
        &data,
        Fit {
            config: RunConfig {
                epochs: fixture.losses.len(),
                batch_size: fixture.batch_size.unwrap_or(2),
                seed: 0,
                shuffle: false,
                checkpoint_every: None,
            },
            controls: &spec,
            start: Start::Weights(Box::new(initial)),
            checkpointer: None,
            evaluate: None,
            observer: &mut losses,
        },
    )
    .unwrap_or_else(|stopped| panic!("loop fixture {name}: {}", stopped.error));
    let mut deviation = Deviation::default();
    for (step, (ours, theirs)) in losses.0.iter().zip(&fixture.losses).enumerate() {
        deviation.record(MLP_CONTROLS_TOLERANCE, step + 1, "loss", &[*ours], &[*theirs]);
    }
    assert_eq!(losses.0.len(), fixture.losses.len(), "loop fixture {name}: steps");
    let expected = match (fixture.ema, &fixture.swa) {
        (Some(_), _) => fixture.ema_params.last(),
        (None, Some(_)) => fixture.swa_params.last(),
        (None, None) => fixture.params.last(),
    }
    .expect("a fixture has steps");
    for (param, values) in named_params(&trained) {
        deviation.record(MLP_CONTROLS_TOLERANCE, fixture.losses.len(), &param, &values, &expected[&param]);
    }
    CheckReport {
        case: format!("torch-loop/mlp-{name}"),
        steps: fixture.losses.len(),
        tolerance: MLP_CONTROLS_TOLERANCE,
        deviation,
    }
}

/// Every controls check on `device`.
pub fn check_all(device: &Device) -> Vec<CheckReport> {
    let mut reports = check_schedules();
    reports.extend(check_plateau());
    reports.extend(check_clipping(device));
    reports.extend(MLP_CONTROLS.iter().map(|(name, json)| check_mlp_controls(name, json, device)));
    reports.extend(MLP_LOOP.iter().map(|(name, json)| check_mlp_loop(name, json, device)));
    reports
}
