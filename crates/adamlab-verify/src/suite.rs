//! The properties every optimizer of the registry must have, whatever its algorithm: its state
//! survives a save and load, its values stay finite on zero and on huge gradients, and it descends
//! on a quadratic and on Rosenbrock's function at its default hyper-parameters.
//!
//! The test suite runs them over [`adamlab_optim::registry`], so a new optimizer is covered by
//! adding its registry line; an optimizer defined in another crate can run them on its own entry
//! (see `examples/custom_optimizer.rs`).

use adamlab_optim::{Args, CycledMomentum, Kind, OptimizerEntry, OptimizerSpec, Value};
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};

/// A module holding one parameter of rank `D`, for the objective functions below.
#[derive(Module, Debug)]
pub struct Point<const D: usize> {
    /// The point.
    pub x: Param<Tensor<D>>,
}

/// The largest learning rate Rosenbrock's function is run at: its gradient at the start
/// (−1.2, 1) is about (−216, −88), so a plain step of 1e-2·g overshoots the valley by metres, and
/// torch's own SGD and ASGD at their default lr 1e-2 diverge there. Every optimizer whose default
/// lr is larger runs at this one.
const ROSENBROCK_MAX_LR: f64 = 1e-3;

/// `entry` at its defaults: the optimizer and its learning rate.
fn defaults(entry: &'static OptimizerEntry) -> (ModuleOptimizer, f64) {
    let spec = default_spec(entry);
    (module_optimizer(&spec), spec.lr())
}

/// Runs `steps` steps of `entry` (defaults) on `objective` from `x0`; returns the objective's
/// values before and after, and the final point.
fn minimise<const D: usize>(
    entry: &'static OptimizerEntry,
    device: &Device,
    x0: Tensor<D>,
    steps: usize,
    max_lr: f64,
    objective: impl Fn(Tensor<D>) -> Tensor<1>,
) -> (f32, f32, Vec<f32>) {
    let device = device.clone().autodiff();
    let (mut optimizer, lr) = defaults(entry);
    let lr = lr.min(max_lr);
    let mut point = Point {
        x: Param::from_tensor(Tensor::from_data(x0.into_data(), &device)),
    };
    let value = |p: &Point<D>| objective(p.x.val()).into_scalar::<f32>();
    let before = value(&point);
    for _ in 0..steps {
        let loss = objective(point.x.val());
        let grads = GradientsParams::from_grads(loss.backward(), &point);
        point = optimizer.step(lr, point, grads);
    }
    let after = value(&point);
    let x = point.x.val().to_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
    (before, after, x)
}

/// `entry` at its defaults lowers `½·Σ aᵢ·xᵢ²` (a 4×4 matrix parameter, curvatures from 0.5 to 8)
/// over 200 steps, from a fixed start.
pub fn descends_on_a_quadratic(entry: &'static OptimizerEntry, device: &Device) -> Result<(), String> {
    let curvature: Vec<f32> = (0..16).map(|i| 0.5 + 7.5 * i as f32 / 15.0).collect();
    let start: Vec<f32> = (0..16).map(|i| ((i * 7 % 16) as f32 - 7.5) / 5.0).collect();
    let a = Tensor::<2>::from_data(TensorData::new(curvature, [4, 4]), &device.clone().autodiff());
    let x0 = Tensor::<2>::from_data(TensorData::new(start, [4, 4]), device);
    let (before, after, _) = minimise(entry, device, x0, 200, f64::INFINITY, |x| {
        x.clone().mul(x).mul(a.clone()).sum().mul_scalar(0.5)
    });
    (after.is_finite() && after < before)
        .then_some(())
        .ok_or_else(|| format!("{}: quadratic from {before} to {after} in 200 steps", entry.name))
}

/// `entry` at its defaults (its lr capped at [`ROSENBROCK_MAX_LR`]) lowers Rosenbrock's
/// `(1 − x)² + 100·(y − x²)²` from (−1.2, 1) over 500 steps.
pub fn descends_on_rosenbrock(entry: &'static OptimizerEntry, device: &Device) -> Result<(), String> {
    let x0 = Tensor::<1>::from_floats([-1.2, 1.0], device);
    let (before, after, _) = minimise(entry, device, x0, 500, ROSENBROCK_MAX_LR, |p| {
        let x = p.clone().slice(0..1);
        let y = p.slice(1..2);
        let a = x.clone().neg().add_scalar(1.0);
        let b = y.sub(x.clone().mul(x));
        a.clone().mul(a).add(b.clone().mul(b).mul_scalar(100.0)).sum()
    });
    (after.is_finite() && after < before)
        .then_some(())
        .ok_or_else(|| format!("{}: Rosenbrock from {before} to {after} in 500 steps", entry.name))
}

/// `entry` at its defaults keeps its parameters finite over 20 steps of zero gradients, then 20
/// steps of gradients of magnitude 1e15 (their squares, 1e30, still fit in f32).
pub fn stays_finite_on_zero_and_huge_gradients(entry: &'static OptimizerEntry, device: &Device) -> Result<(), String> {
    for (scale, what) in [(0.0f32, "zero"), (1e15, "huge")] {
        let x0 = Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], device);
        let (_, _, x) = minimise(entry, device, x0, 20, f64::INFINITY, |x| {
            // A linear objective: its gradient is `scale` times a fixed pattern of signs.
            let signs = Tensor::<2>::from_floats([[1.0, -1.0, 1.0], [-1.0, 1.0, 0.5]], &x.device());
            x.mul(signs).sum().mul_scalar(scale)
        });
        if let Some(bad) = x.iter().find(|v| !v.is_finite()) {
            return Err(format!("{}: a parameter became {bad} on {what} gradients", entry.name));
        }
    }
    Ok(())
}

/// `entry` at its defaults, saved after two steps and loaded into a fresh optimizer, takes the
/// same third step as the optimizer that never stopped, bit for bit; when it keeps state tensors,
/// a fresh optimizer's third step differs (so the state really matters and really was carried).
pub fn resumes_exactly_after_save_and_load(entry: &'static OptimizerEntry, device: &Device) -> Result<(), String> {
    resume(&default_spec(entry), device, true)
}

/// `entry` at its defaults, as a spec.
fn default_spec(entry: &'static OptimizerEntry) -> OptimizerSpec {
    OptimizerSpec::parse_for(entry, entry.name)
        .unwrap_or_else(|err| panic!("{}: its defaults must build: {err}", entry.name))
}

/// The module optimizer `spec` builds.
fn module_optimizer(spec: &OptimizerSpec) -> ModuleOptimizer {
    spec.build().expect("a parsed spec builds").module_optimizer()
}

/// A 3×2 Linear layer with its gradient at scale `scale`, for the step properties.
struct LinearCase {
    model: Linear,
    input: Tensor<2>,
}

impl LinearCase {
    fn new(device: &Device) -> Self {
        let device = device.clone().autodiff();
        device.seed(7);
        Self {
            model: LinearConfig::new(3, 2).init(&device),
            input: Tensor::<2>::from_floats([[1.0, -0.5, 2.0], [0.3, 0.7, -1.1]], &device),
        }
    }

    fn grads(&self, model: &Linear, scale: f32) -> GradientsParams {
        let loss = model.forward(self.input.clone()).mul_scalar(scale).sum();
        GradientsParams::from_grads(loss.backward(), model)
    }
}

/// The weights and bias of `model`, in one vector.
fn weights(model: &Linear) -> Vec<f32> {
    let mut w = model.weight.val().to_data().try_to_vec::<f32>().expect("f32");
    w.extend(model.bias.as_ref().expect("bias").val().to_data().try_to_vec::<f32>().expect("f32"));
    w
}

/// `spec`'s optimizer, saved after two steps and loaded into a fresh optimizer, takes the same
/// third step as the optimizer that never stopped, bit for bit. (Whether the state matters is
/// checked at the defaults only: some specs make it irrelevant, as Lion's β₁ = 0 does.)
pub fn resumes_the_same_update(spec: &OptimizerSpec, device: &Device) -> Result<(), String> {
    resume(spec, device, false)
}

/// The resume check, and with `state_must_matter` the check that a fresh optimizer differs.
fn resume(spec: &OptimizerSpec, device: &Device, state_must_matter: bool) -> Result<(), String> {
    let case = LinearCase::new(device);
    let mut model = case.model.clone();
    let (mut original, lr) = (module_optimizer(spec), spec.lr());
    for scale in [1.0, 0.01] {
        let g = case.grads(&model, scale);
        model = original.step(lr, model, g);
    }
    let keeps_tensors = !original.to_record().is_empty();
    let bytes = original
        .into_bytes()
        .map_err(|err| format!("{spec}: saving the state: {err}"))?;
    let restored = module_optimizer(spec)
        .from_bytes(bytes)
        .map_err(|err| format!("{spec}: loading the state: {err}"))?;
    // Two third steps: a small opposing gradient (as burn's own resume test uses) exercises a
    // stored momentum, Lion's sign of it included; a large one exercises step-dependent
    // coefficients such as ASGD's η, whose change is too small to see on a small step.
    let mut state_matters = false;
    for scale in [-0.01, -0.5] {
        let expected = weights(&original.clone().step(lr, model.clone(), case.grads(&model, scale)));
        let actual = weights(&restored.clone().step(lr, model.clone(), case.grads(&model, scale)));
        if expected != actual {
            return Err(format!("{spec}: resumed step {actual:?} differs from {expected:?}"));
        }
        let fresh = weights(&module_optimizer(spec).step(lr, model.clone(), case.grads(&model, scale)));
        state_matters |= fresh != expected;
    }
    if state_must_matter && keeps_tensors && !state_matters {
        return Err(format!(
            "{spec}: a fresh optimizer's step equals the resumed one: the state is not carried (or has no effect)"
        ));
    }
    Ok(())
}

/// With `maximize`, three steps of `spec`'s optimizer on the gradients g are, bit for bit, three
/// steps without it on −g (torch negates the gradient before anything else). Nothing to check
/// for an optimizer without the keyword.
pub fn maximize_is_a_step_on_the_negated_gradient(spec: &OptimizerSpec, device: &Device) -> Result<(), String> {
    if !spec.entry().params.iter().any(|p| p.name == "maximize") {
        return Ok(());
    }
    let with = |maximize: bool| {
        spec.with("maximize", Value::Bool(maximize))
            .map_err(|err| format!("{spec}: maximize={maximize}: {err}"))
    };
    let (maximizing, minimizing) = (with(true)?, with(false)?);
    let case = LinearCase::new(device);
    let (mut up, mut down) = (module_optimizer(&maximizing), module_optimizer(&minimizing));
    let (mut a, mut b) = (case.model.clone(), case.model.clone());
    for scale in [1.0, -0.3, 2.0] {
        a = up.step(spec.lr(), a.clone(), case.grads(&a, scale));
        b = down.step(spec.lr(), b.clone(), case.grads(&b, -scale));
        let (wa, wb) = (weights(&a), weights(&b));
        if wa.iter().map(|x| x.to_bits()).ne(wb.iter().map(|x| x.to_bits())) {
            return Err(format!("{maximizing}: {wa:?} on g, but {wb:?} without maximize on −g"));
        }
    }
    Ok(())
}

/// Where a schedule can cycle `spec`'s momentum (OneCycleLR: β₁ of `betas`, or SGD's
/// `momentum`), the cycled value is ignored until set, then replaces the configured one: the
/// steps with it unset equal the spec's own, bit for bit; set, they equal those of the spec with
/// that value configured, and differ from the spec's own. Eight steps: a rectified optimizer
/// (AdaBelief without its SGD fallback) leaves θ unchanged for its first five. Nothing to check
/// for an optimizer whose momentum no schedule cycles.
pub fn a_cycled_momentum_replaces_the_configured_one(spec: &OptimizerSpec, device: &Device) -> Result<(), String> {
    let cell = CycledMomentum::default();
    let cycled = match spec.build_cycling_momentum(cell.clone()) {
        Ok(cycled) => cycled,
        Err(err) if err.to_string().contains("cannot have its momentum cycled") => return Ok(()),
        Err(err) => return Err(format!("{spec}: building it with a cycled momentum: {err}")),
    };
    let has_betas = spec.entry().params.iter().any(|p| p.name == "betas");
    let (configured, beta2) = if has_betas { spec.args().pair("betas") } else { (spec.args().f64("momentum"), 0.0) };
    let value = if configured == 0.5 { 0.6 } else { 0.5 };
    let set = if has_betas {
        spec.with("betas", Value::Tuple(vec![Value::Number(value), Value::Number(beta2)]))
    } else {
        spec.with("momentum", Value::Number(value))
    }
    .map_err(|err| format!("{spec}: configuring the momentum {value}: {err}"))?;
    let case = LinearCase::new(device);
    let run = |mut optimizer: ModuleOptimizer| {
        let mut model = case.model.clone();
        for scale in [1.0, -0.3, 2.0, 0.5, -1.0, 1.5, 0.7, -0.2] {
            let g = case.grads(&model, scale);
            model = optimizer.step(spec.lr(), model, g);
        }
        weights(&model).iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    };
    let own = run(module_optimizer(spec));
    if run(cycled.module_optimizer()) != own {
        return Err(format!("{spec}: an unset cycled momentum changes the steps"));
    }
    cell.set(value);
    let cycled = run(cycled.module_optimizer());
    if cycled != run(module_optimizer(&set)) {
        return Err(format!("{spec}: the cycled momentum {value} steps otherwise than {set}"));
    }
    if cycled == own {
        return Err(format!("{spec}: the cycled momentum {value} changes nothing"));
    }
    Ok(())
}

/// Values outside the range of each keyword of `spec`'s optimizer, one keyword at a time, are
/// errors naming the optimizer and the keyword, in one line: through the spec (`with`), and
/// through the entry's build handed the value unchecked (so the configuration's own validation
/// is tested, not only the registry's).
pub fn out_of_range_values_are_errors_naming_the_keyword(spec: &OptimizerSpec, _device: &Device) -> Result<(), String> {
    let entry = spec.entry();
    for param in entry.params {
        for bad in out_of_range(param.kind) {
            let expected = format!("{}: invalid {} ", entry.name, param.name);
            let message = match spec.with(param.name, bad.clone()) {
                Ok(_) => return Err(format!("{spec}: {}={bad} is accepted", param.name)),
                Err(err) => err.to_string(),
            };
            if !message.starts_with(&expected) || message.lines().count() != 1 {
                return Err(format!("{spec}: {}={bad}: {message}", param.name));
            }
            // burn's built-ins have no configuration of ours: the registry's check is theirs.
            if entry.name.starts_with("burn-") || !representable(param.kind, &bad) {
                continue;
            }
            let mut given = spec.args().values().clone();
            given.insert(param.name, bad.clone());
            match (entry.build)(&Args::resolve(entry.params, &given)) {
                Ok(_) if param.name == "lr" => {} // burn passes lr to each step, not to the build
                Ok(_) => return Err(format!("{spec}: the build takes {}={bad} unchecked", param.name)),
                Err(err) if !err.to_string().starts_with(&format!("invalid {} ", param.name)) => {
                    return Err(format!("{spec}: the build's error for {}={bad}: {err}", param.name));
                }
                Err(_) => {}
            }
        }
    }
    Ok(())
}

/// Values of the wrong kind or outside `kind`'s range: past each finite end of an interval (and
/// NaN), a fraction and a whole number past each end for an integer, a number for a boolean, an
/// unknown name for a choice, each element of a tuple in turn.
pub fn out_of_range(kind: Kind) -> Vec<Value> {
    match kind {
        Kind::Float(range) => {
            let mut values = vec![Value::Number(f64::NAN)];
            if range.min.is_finite() {
                let below = if range.min_inclusive { range.min - range.min.abs().max(1.0) } else { range.min };
                values.push(Value::Number(below));
            }
            if range.max.is_finite() {
                let above = if range.max_inclusive { range.max + range.max.abs().max(1.0) } else { range.max };
                values.push(Value::Number(above));
            }
            values
        }
        Kind::Int { min, max } => {
            let mut values = vec![Value::Number(min as f64 + 0.5), Value::Number(min as f64 - 1.0)];
            if max < i64::MAX {
                values.push(Value::Number(max as f64 + 1.0));
            }
            values
        }
        Kind::Bool => vec![Value::Number(1.0)],
        Kind::Choice(_) => vec![Value::Name("no-such-choice".to_string())],
        Kind::Tuple(kinds) => {
            let valid: Vec<Value> = kinds.iter().map(|k| in_range(*k)).collect();
            let mut values = vec![Value::Tuple(valid[..valid.len() - 1].to_vec())];
            for (i, kind) in kinds.iter().enumerate() {
                for bad in out_of_range(*kind) {
                    let mut tuple = valid.clone();
                    tuple[i] = bad;
                    values.push(Value::Tuple(tuple));
                }
            }
            values
        }
        Kind::List(inner) => out_of_range(*inner).into_iter().map(|bad| Value::Tuple(vec![bad])).collect(),
        Kind::Optional(inner) => out_of_range(*inner),
    }
}

/// Whether a configuration field of `kind` can hold `value` (a number where a number is kept, a
/// tuple of the right length, a whole number ≥ 0 where a count is kept), so that the entry's build
/// can be handed it unchecked.
fn representable(kind: Kind, value: &Value) -> bool {
    match (kind, value) {
        (Kind::Float(_), Value::Number(_)) => true,
        (Kind::Int { .. }, Value::Number(x)) => x.fract() == 0.0 && *x >= 0.0,
        (Kind::Tuple(kinds), Value::Tuple(values)) => {
            kinds.len() == values.len() && kinds.iter().zip(values).all(|(k, v)| representable(*k, v) || *v == in_range(*k))
        }
        (Kind::Optional(inner), value) => representable(*inner, value),
        _ => false,
    }
}

/// A value `kind` accepts.
fn in_range(kind: Kind) -> Value {
    match kind {
        Kind::Float(range) => Value::Number(if range.contains(1.0) {
            1.0
        } else if range.contains(0.5) {
            0.5
        } else if range.contains(0.0) {
            0.0
        } else {
            -1.0
        }),
        Kind::Int { min, .. } => Value::Number(min as f64),
        Kind::Bool => Value::Bool(false),
        Kind::Choice(names) => Value::Name(names[0].to_string()),
        Kind::Tuple(kinds) => Value::Tuple(kinds.iter().map(|k| in_range(*k)).collect()),
        Kind::List(_) => Value::Tuple(Vec::new()),
        Kind::Optional(_) => Value::None,
    }
}

/// The properties of a spec, which the test suite runs over the registry's defaults and every
/// fixture spec.
pub const SPEC_PROPERTIES: &[(&str, fn(&OptimizerSpec, &Device) -> Result<(), String>)] = &[
    ("resumes the same update after save and load", resumes_the_same_update),
    ("maximize is a step on −g", maximize_is_a_step_on_the_negated_gradient),
    ("a cycled momentum replaces the configured one once set", a_cycled_momentum_replaces_the_configured_one),
    ("out-of-range values are errors naming the keyword", out_of_range_values_are_errors_naming_the_keyword),
];

/// Every property, by name, for the test suite and `adamlab verify`.
pub const PROPERTIES: &[(&str, fn(&'static OptimizerEntry, &Device) -> Result<(), String>)] = &[
    ("resumes exactly after save and load", resumes_exactly_after_save_and_load),
    ("stays finite on zero and huge gradients", stays_finite_on_zero_and_huge_gradients),
    ("descends on a quadratic", descends_on_a_quadratic),
    ("descends on Rosenbrock", descends_on_rosenbrock),
];
