//! Replays of reference fixtures: an optimizer of the registry fed the gradients a reference
//! implementation (torch.optim, lion-pytorch, schedulefree, adabelief-pytorch, pytorch-optimizer)
//! was fed, compared after every step on its parameters and on every state tensor the reference
//! kept.
//!
//! The fixtures are written by `tools/reference/generate.py`, one safetensors file per case
//! (`fixtures/torch/replay/<optimizer>/<case>.safetensors`; the layout is in the generator's
//! docstring), and embedded in this crate by its build script. Nothing here names an optimizer:
//! each fixture carries the spec that must reproduce it, and the registry builds it.
//!
//! An optimizer with a fused kernel (its entry has torch's `fused` keyword, on by default) is
//! replayed twice: as its spec builds it (the fused step where the backend has a kernel), and
//! with `fused=false` (the tensor-op reference step), reported as `replay/<case> (reference
//! step)`. Both must match the reference.

use crate::compare::{CheckReport, Deviation, Tolerance};
use adamlab_optim::fused::FUSED;
use adamlab_optim::{AnyOptimizer, OptimizerSpec, Value};
use burn::optim::{DynOptimizer, DynState, StateSink, StateSource};
use burn::tensor::kind::BridgeTensor;
use burn::tensor::{DType, Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}
pub use embedded::{MLP_FIXTURES, REPLAY_FIXTURES};

/// Tolerance of the replays, on parameters and on every state tensor: atol 1e-6 + rtol 1e-5.
///
/// A replay feeds the reference's own gradients, so nothing chaotic is involved: each step's
/// update is the same f32 expression, evaluated in the reference's order. What differs is that
/// torch's CPU kernels fuse some multiply-adds (`lerp`, `addcdiv`, `addcmul`), so a value may
/// differ in its last bit; over 200 steps these differences stay at a few ulps. Measured for Adam
/// on ndarray, flex and wgpu: at most 1.2e-7 (one ulp at |θ| ≈ 1) in every case but lr 0.1, where
/// parameters travel from |θ| ≈ 2 towards 0 and keep the absolute error of their largest
/// magnitude: 9.5e-7 (two ulps at |θ| ≈ 4). rtol 1e-5 (~80 ulps) covers state tensors, whose
/// values can be tiny. A wrong constant moves values by far more: ε 1.5× too large shifts Adam's
/// tiny-gradient case by ~3e-5 at step 1, β₂ 0.99 instead of 0.999 its default case by ~1e-4.
///
/// State tensors take their absolute scale from the gradients: their absolute tolerance is this
/// atol times the largest |g| of the case (at least 1). With gradients of order 1e6, a moment
/// such as `exp_avg` that cancels down to ~1e2 keeps the rounding of its 1e6-sized terms: one ulp
/// of 1e6 is 0.06 (measured: 8e-3 on Adam's `exp_avg` at step 11 of the huge-gradient case, on
/// every backend; torch's CPU `lerp` fuses its multiply-add). Parameters keep this tolerance.
pub const REPLAY_TOLERANCE: Tolerance = Tolerance::new(1e-6, 1e-5);

/// Relative tolerance of bfloat16 moments (`state_dtype=bf16`), 2⁻⁷: one bfloat16 ulp (2⁻⁸ to 2⁻⁷
/// of the value). torch and adamlab compute a moment's f32 value an ulp apart now and then (see
/// [`REPLAY_TOLERANCE`]), and two f32 values an ulp apart can round to neighbouring bfloat16s.
/// Measured on the eight bfloat16 cases (`tests/low_bit_states.rs`, on flex, ndarray and wgpu):
/// of each case's 16 400 or 24 600 moment values, all equal to the bit but one in each of two
/// cases: one bfloat16 ulp (4e-3 relative) after L2 decay, and three ulps of a moment cancelled to
/// 3e-8, far below the atol. Kept as f32 (`state_dtype=f32`), the moments miss by more.
pub const BF16_STATE_RTOL: f64 = 1.0 / 128.0;

/// The tolerance of bfloat16 parameters (`param_dtype` bfloat16 in a fixture): the same
/// bfloat16, no more. Two distinct bfloat16s differ by at least 2⁻⁸ of the larger magnitude, and
/// 0 differs from anything else by all of it, so an rtol of 2⁻⁹ with no atol passes equal values
/// only. The stochastic rounding's draws are the reference's ([`adamlab_optim::stochastic`]),
/// so only an f32 update an ulp away from torch's whose dropped bits straddle the draw could
/// round to the other neighbour: a chance of about 2⁻¹⁶ per such element and step, which the
/// fixtures have not met (measured: every value equal, on flex).
pub const BF16_PARAM_TOLERANCE: Tolerance = Tolerance::new(0.0, 1.0 / 512.0);

/// The tolerance of `optimizer`'s replays: [`REPLAY_TOLERANCE`] unless a measured reason says
/// otherwise here.
pub fn replay_tolerance(optimizer: &str) -> Tolerance {
    match optimizer {
        _ => REPLAY_TOLERANCE,
    }
}

/// One parameter of a replay fixture.
#[derive(Debug, Clone)]
pub struct ReplayParam {
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its initial value, row-major.
    pub initial: Vec<f32>,
    /// The gradient fed at each step.
    pub grads: Vec<Vec<f32>>,
    /// The parameter after each step.
    pub params: Vec<Vec<f32>>,
    /// Every state the reference kept, by its key: the value after each step.
    pub states: BTreeMap<String, Vec<Vec<f32>>>,
    /// The weights to evaluate with after the last step, for optimizers whose evaluation weights
    /// differ from their training weights.
    pub eval: Option<Vec<f32>>,
}

/// A replay fixture: the reference fed fixed gradients, with everything it computed.
#[derive(Debug, Clone)]
pub struct ReplayFixture {
    /// `<optimizer>/<case>`, e.g. `sgd/nesterov`.
    pub case: String,
    /// The registry name of the optimizer under test.
    pub optimizer: String,
    /// The adamlab spec that must reproduce the reference: `sgd(lr=0.01, momentum=0.9)`.
    pub spec: String,
    /// The reference, e.g. `torch.optim.SGD`.
    pub reference: String,
    /// The reference's version, e.g. `torch 2.15.0`.
    pub reference_version: String,
    /// The script that wrote the fixture.
    pub generator: String,
    /// The style of the synthetic gradients (`normal`, `tiny`, …).
    pub gradients: String,
    /// Steps recorded.
    pub steps: usize,
    /// The parameters.
    pub params: Vec<ReplayParam>,
    /// The parameters' dtype, and their gradients' (metadata `param_dtype`; f32 when absent):
    /// bfloat16 values are stored as f32, exactly, and replayed as bfloat16 tensors.
    pub param_dtype: DType,
}

/// A fixture that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("fixture {case}: {message}")]
pub struct FixtureError {
    case: String,
    message: String,
}

impl ReplayFixture {
    /// Reads a fixture from the generator's safetensors bytes.
    pub fn parse(case: &str, bytes: &[u8]) -> Result<Self, FixtureError> {
        let error = |message: String| FixtureError {
            case: case.to_string(),
            message,
        };
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| error(e.to_string()))?;
        let meta = metadata.metadata().clone().unwrap_or_default();
        let field = |key: &str| {
            meta.get(key)
                .cloned()
                .ok_or_else(|| error(format!("no `{key}` in its metadata")))
        };
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| error(e.to_string()))?;
        let read = |name: &str| -> Result<Option<(Vec<usize>, Vec<f32>)>, FixtureError> {
            let Ok(view) = tensors.tensor(name) else {
                return Ok(None);
            };
            let data = view.data();
            let values = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| {
                        f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                    })
                    .collect(),
                // Quantized states (bitsandbytes' codes).
                Dtype::U8 => data.iter().map(|&b| f32::from(b)).collect(),
                other => return Err(error(format!("{name} has dtype {other:?}"))),
            };
            Ok(Some((view.shape().to_vec(), values)))
        };
        let steps: usize = field("steps")?
            .parse()
            .map_err(|_| error("`steps` is not a number".into()))?;
        let count: usize = field("params")?
            .parse()
            .map_err(|_| error("`params` is not a number".into()))?;
        let per_step = |values: Vec<f32>| -> Vec<Vec<f32>> {
            let n = values.len() / steps.max(1);
            values.chunks(n.max(1)).map(<[f32]>::to_vec).collect()
        };
        let mut params = Vec::with_capacity(count);
        for i in 0..count {
            let missing = |what: &str| error(format!("no `{what}.{i}` tensor"));
            let (shape, initial) = read(&format!("initial.{i}"))?.ok_or_else(|| missing("initial"))?;
            let (_, grads) = read(&format!("grad.{i}"))?.ok_or_else(|| missing("grad"))?;
            let (_, values) = read(&format!("param.{i}"))?.ok_or_else(|| missing("param"))?;
            let mut states = BTreeMap::new();
            for name in tensors.names() {
                if let Some(key) = name
                    .strip_prefix("state.")
                    .and_then(|rest| rest.strip_suffix(&format!(".{i}")))
                {
                    let (_, values) = read(name)?.expect("listed");
                    states.insert(key.to_string(), per_step(values));
                }
            }
            params.push(ReplayParam {
                shape,
                initial,
                grads: per_step(grads),
                params: per_step(values),
                states,
                eval: read(&format!("eval.{i}"))?.map(|(_, v)| v),
            });
        }
        Ok(Self {
            case: field("case")?,
            optimizer: field("optimizer")?,
            spec: field("spec")?,
            reference: field("reference")?,
            reference_version: field("reference_version")?,
            generator: field("generator")?,
            gradients: field("gradients")?,
            steps,
            params,
            param_dtype: match meta.get("param_dtype").map(String::as_str) {
                None | Some("float32") => DType::F32,
                Some("bfloat16") => DType::BF16,
                Some(other) => return Err(error(format!("param_dtype {other} is not replayed"))),
            },
        })
    }
}

/// Every embedded replay fixture, parsed, in path order.
pub fn replay_fixtures() -> Vec<ReplayFixture> {
    REPLAY_FIXTURES
        .iter()
        .map(|(case, bytes)| {
            ReplayFixture::parse(case, bytes).unwrap_or_else(|err| panic!("embedded fixture: {err}"))
        })
        .collect()
}

/// The embedded replay fixture `case` (`<optimizer>/<case>`).
pub fn replay_fixture(case: &str) -> Option<ReplayFixture> {
    let (_, bytes) = REPLAY_FIXTURES.iter().find(|(name, _)| *name == case)?;
    Some(ReplayFixture::parse(case, bytes).unwrap_or_else(|err| panic!("embedded fixture: {err}")))
}

/// Replays `fixture` through the optimizer its spec names, on `device`.
pub fn replay(fixture: &ReplayFixture, device: &Device) -> CheckReport {
    let spec = OptimizerSpec::parse(&fixture.spec)
        .unwrap_or_else(|err| panic!("{}: its spec does not build: {err}", fixture.case));
    replay_with(&*spec.build().expect("parse checks that it builds"), spec.lr(), fixture, device)
}

/// Replays `fixture` through `optimizer` at learning rate `lr`, comparing the parameters and every
/// state leaf after every step (and the evaluation weights after the last step, when the fixture
/// records them).
///
/// State leaves are compared by name with the reference's state keys. A tensor leaf the optimizer
/// keeps and the reference did not record is a failure, and so is a reference state tensor the
/// optimizer lacks. A scalar leaf (a step counter, say) is compared when the reference recorded a
/// value of that name.
pub fn replay_with(
    optimizer: &dyn AnyOptimizer,
    lr: f64,
    fixture: &ReplayFixture,
    device: &Device,
) -> CheckReport {
    let base = replay_tolerance(&fixture.optimizer);
    let tolerance = match fixture.param_dtype {
        DType::BF16 => BF16_PARAM_TOLERANCE,
        _ => base,
    };
    let scale = fixture
        .params
        .iter()
        .flat_map(|p| p.grads.iter().flatten())
        .fold(1f64, |m, g| m.max(f64::from(g.abs())));
    let state_rtol = if fixture.spec.contains("state_dtype=bf16") {
        BF16_STATE_RTOL
    } else {
        base.rtol
    };
    let tolerances = Tolerances {
        param: tolerance,
        state: Some(Tolerance::new(base.atol * scale, state_rtol)),
    };
    run_replay(optimizer, lr, fixture, device, tolerances, format!("replay/{}", fixture.case))
}

/// Replays `fixture` through `optimizer` comparing the parameters only, at `tolerance`: for an
/// optimizer that keeps other state than the reference (burn's built-ins, see
/// [`crate::parity::burn_replays`]). Reported as `case`.
pub fn replay_params_only(
    optimizer: &dyn AnyOptimizer,
    lr: f64,
    fixture: &ReplayFixture,
    device: &Device,
    tolerance: Tolerance,
    case: String,
) -> CheckReport {
    run_replay(optimizer, lr, fixture, device, Tolerances { param: tolerance, state: None }, case)
}

fn run_replay(
    optimizer: &dyn AnyOptimizer,
    lr: f64,
    fixture: &ReplayFixture,
    device: &Device,
    tolerances: Tolerances,
    case: String,
) -> CheckReport {
    let dynamic = optimizer.dyn_optimizer();
    let mut deviation = Deviation::default();
    for (index, param) in fixture.params.iter().enumerate() {
        let param = Replayed { param, index, dtype: fixture.param_dtype };
        replay_param(&*dynamic, optimizer, lr, param, device, tolerances, &mut deviation);
    }
    CheckReport {
        case,
        steps: fixture.steps,
        tolerance: tolerances.param,
        deviation,
    }
}

/// The tolerances of one replay: on parameters, and on state tensors (scaled by the gradients;
/// `None`: the state is not compared).
#[derive(Clone, Copy)]
struct Tolerances {
    param: Tolerance,
    state: Option<Tolerance>,
}

/// One parameter of a fixture, its index and the dtype it is replayed in.
#[derive(Clone, Copy)]
struct Replayed<'a> {
    param: &'a ReplayParam,
    index: usize,
    dtype: DType,
}

fn replay_param(
    dynamic: &dyn DynOptimizer,
    optimizer: &dyn AnyOptimizer,
    lr: f64,
    Replayed { param, index, dtype }: Replayed<'_>,
    device: &Device,
    tolerances: Tolerances,
    deviation: &mut Deviation,
) {
    let Tolerances { param: tolerance, state: state_tolerance } = tolerances;
    let rank = param.shape.len();
    let tensor = |values: &[f32]| bridge(values, &param.shape, device, dtype);
    let mut theta = tensor(&param.initial);
    let mut state: Option<DynState> = None;
    let name = |what: &str| format!("param{index}.{what}");
    for (step_index, grad) in param.grads.iter().enumerate() {
        let step = step_index + 1;
        (theta, state) = dynamic.step_dyn(rank, lr, theta, tensor(grad), state.take());
        let values = host(&theta, rank);
        deviation.record(tolerance, step, &name("param"), &values, &param.params[step_index]);
        let Some(state_tolerance) = state_tolerance else {
            continue;
        };
        let mut sink = StateSink::default();
        if let Some(state) = &state {
            dynamic.state_flatten("", state, &mut sink);
        }
        for (key, data) in &sink.tensors {
            match param.states.get(key) {
                Some(expected) => {
                    deviation.record(state_tolerance, step, &name(key), &to_f32(data), &expected[step_index])
                }
                None => deviation.record_missing(step, &name(key)),
            }
        }
        for (key, scalar) in &sink.scalars {
            if let (Some(expected), Ok(value)) = (param.states.get(key), f64::try_from(*scalar)) {
                deviation.record(state_tolerance, step, &name(key), &[value as f32], &expected[step_index]);
            }
        }
        for key in param.states.keys() {
            let kept = sink.tensors.iter().any(|(k, _)| k == key) || sink.scalars.iter().any(|(k, _)| k == key);
            if !kept {
                deviation.record_missing(step, &name(key));
            }
        }
    }
    if let (Some(expected), Some(state), Some(_)) = (&param.eval, &state, state_tolerance) {
        let mut sink = StateSink::default();
        dynamic.state_flatten("p", state, &mut sink);
        let mut source = StateSource::new(sink.scalars.into_iter().collect());
        for (key, data) in sink.tensors {
            source.insert_tensor(key, data);
        }
        let eval = optimizer.eval_param_dyn(rank, theta, "p", &mut source);
        deviation.record(tolerance, param.grads.len(), &name("eval"), &host(&eval, rank), expected);
    }
}

/// A tensor of runtime rank, as the type-erased optimizer takes it.
fn bridge(values: &[f32], shape: &[usize], device: &Device, dtype: DType) -> BridgeTensor {
    let data = TensorData::new(values.to_vec(), shape.to_vec());
    macro_rules! rank {
        ($($d:literal)*) => {
            match shape.len() {
                $($d => Tensor::<$d>::from_data(data, device).cast(dtype).into_bridge(),)*
                rank => panic!("rank {rank} parameters are not replayed"),
            }
        };
    }
    rank!(1 2 3 4 5 6)
}

fn host(tensor: &BridgeTensor, rank: usize) -> Vec<f32> {
    macro_rules! rank {
        ($($d:literal)*) => {
            match rank {
                $($d => Tensor::<$d>::from_bridge(tensor.clone()).to_data(),)*
                rank => panic!("rank {rank} parameters are not replayed"),
            }
        };
    }
    to_f32(&rank!(1 2 3 4 5 6))
}

fn to_f32(data: &TensorData) -> Vec<f32> {
    data.clone()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensors convert to f32")
}

/// `fixture` replayed with `fused=false`, the tensor-op reference step, when its optimizer has a
/// fused kernel (its entry has the `fused` keyword): `replay/<case> (reference step)`. `None`
/// for an optimizer without one.
pub fn replay_reference_step(fixture: &ReplayFixture, device: &Device) -> Option<CheckReport> {
    let spec = OptimizerSpec::parse(&fixture.spec)
        .unwrap_or_else(|err| panic!("{}: its spec does not build: {err}", fixture.case));
    if !spec.entry().params.iter().any(|p| p.name == FUSED.name) {
        return None;
    }
    let reference = spec
        .with(FUSED.name, Value::Bool(false))
        .unwrap_or_else(|err| panic!("{}: fused=false does not build: {err}", fixture.case));
    let optimizer = reference.build().expect("`with` checks that it builds");
    let mut report = replay_with(&*optimizer, reference.lr(), fixture, device);
    report.case.push_str(" (reference step)");
    Some(report)
}

/// Every way `fixture` is replayed: through its spec ([`replay`]), and for an optimizer with a
/// fused kernel also through the reference step ([`replay_reference_step`]). None on a device
/// that cannot store the fixture's parameters (bfloat16 ones off Flex).
pub fn replays(fixture: &ReplayFixture, device: &Device) -> Vec<CheckReport> {
    if !device.supports_dtype(fixture.param_dtype) {
        return Vec::new();
    }
    let mut reports = vec![replay(fixture, device)];
    reports.extend(replay_reference_step(fixture, device));
    reports
}

/// Every replay fixture on `device` ([`replays`]: the reference step too, where there is a fused
/// one), optionally only those of one optimizer.
pub fn replay_all<'a>(
    device: &'a Device,
    optimizer: Option<&'a str>,
) -> impl Iterator<Item = CheckReport> + 'a {
    replay_fixtures()
        .into_iter()
        .filter(move |f| optimizer.is_none_or(|name| f.optimizer == name))
        .flat_map(move |fixture| replays(&fixture, device))
}
