//! The properties every optimizer of the registry must have, whatever its algorithm: its state
//! survives a save and load, its values stay finite on zero and on huge gradients, and it descends
//! on a quadratic and on Rosenbrock's function at its default hyper-parameters.
//!
//! The test suite runs them over [`adamlab_optim::registry`], so a new optimizer is covered by
//! adding its registry line; an optimizer defined in another crate can run them on its own entry
//! (see `examples/custom_optimizer.rs`).

use adamlab_optim::{OptimizerEntry, OptimizerSpec};
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
    let spec = OptimizerSpec::parse_for(entry, entry.name)
        .unwrap_or_else(|err| panic!("{}: its defaults must build: {err}", entry.name));
    let optimizer = spec.build().expect("parse checks that it builds");
    (optimizer.module_optimizer(), spec.lr())
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
    let device = device.clone().autodiff();
    device.seed(7);
    let mut model: Linear = LinearConfig::new(3, 2).init(&device);
    let input = Tensor::<2>::from_floats([[1.0, -0.5, 2.0], [0.3, 0.7, -1.1]], &device);
    let grads = |model: &Linear, scale: f32| {
        let loss = model.forward(input.clone()).mul_scalar(scale).sum();
        GradientsParams::from_grads(loss.backward(), model)
    };
    let (mut original, lr) = defaults(entry);
    for scale in [1.0, 0.01] {
        let g = grads(&model, scale);
        model = original.step(lr, model, g);
    }
    let keeps_tensors = !original.to_record().is_empty();
    let bytes = original
        .into_bytes()
        .map_err(|err| format!("{}: saving the state: {err}", entry.name))?;
    let restored = defaults(entry)
        .0
        .from_bytes(bytes)
        .map_err(|err| format!("{}: loading the state: {err}", entry.name))?;
    let weights = |m: &Linear| {
        let mut w = m.weight.val().to_data().try_to_vec::<f32>().expect("f32");
        w.extend(m.bias.as_ref().expect("bias").val().to_data().try_to_vec::<f32>().expect("f32"));
        w
    };
    // Two third steps: a small opposing gradient (as burn's own resume test uses) exercises a
    // stored momentum, Lion's sign of it included; a large one exercises step-dependent
    // coefficients such as ASGD's η, whose change is too small to see on a small step.
    let mut state_matters = false;
    for scale in [-0.01, -0.5] {
        let expected = weights(&original.clone().step(lr, model.clone(), grads(&model, scale)));
        let actual = weights(&restored.clone().step(lr, model.clone(), grads(&model, scale)));
        if expected != actual {
            return Err(format!("{}: resumed step {actual:?} differs from {expected:?}", entry.name));
        }
        let fresh = weights(&defaults(entry).0.step(lr, model.clone(), grads(&model, scale)));
        state_matters |= fresh != expected;
    }
    if keeps_tensors && !state_matters {
        return Err(format!(
            "{}: a fresh optimizer's step equals the resumed one: the state is not carried (or has no effect)",
            entry.name
        ));
    }
    Ok(())
}

/// Every property, by name, for the test suite and `adamlab verify`.
pub const PROPERTIES: &[(&str, fn(&'static OptimizerEntry, &Device) -> Result<(), String>)] = &[
    ("resumes exactly after save and load", resumes_exactly_after_save_and_load),
    ("stays finite on zero and huge gradients", stays_finite_on_zero_and_huge_gradients),
    ("descends on a quadratic", descends_on_a_quadratic),
    ("descends on Rosenbrock", descends_on_rosenbrock),
];
