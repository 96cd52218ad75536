//! adamlab's Adam against burn's built-in Adam and AdamW.
//!
//! Each case starts two copies of the same freshly initialised model, one driven by our optimizer
//! and one by burn's, and compares every parameter after every step. At each step both receive
//! the same gradient: the loss's gradient on the data at our copy's parameters. burn's optimizers
//! get torch's eps (1e-8), so the two compute the same update in exact arithmetic: burn adds
//! `ε·√(1 − β₂ᵗ)` to `√v` before dividing by `√(1 − β₂ᵗ)`, we add ε after, as torch does; the
//! remaining differences are f32 rounding, which the tolerance bounds.
//!
//! Why the same gradient rather than each copy its own: burn's updates differ from ours by up to
//! ~1e-5 relative from the first step (its bias corrections are f32, see [`PARITY_TOLERANCE`]),
//! and Adam divides by `√v`, so for a weight whose gradient is near zero a tiny difference in the
//! gradient becomes a difference of order lr. Letting each copy compute its own gradients, the
//! CNN's two copies were measured 1e-4 to 7e-3 apart after 50 steps on every backend: that
//! feedback belongs to the forward and backward passes, not to the optimizers under test.
//!
//! `maximize` has no burn counterpart: its case compares our Adam maximising `−L` with our Adam
//! minimising `L`, which must agree exactly.

use crate::compare::{CheckReport, Deviation, Tolerance};
use crate::params::named_params;
use adamlab_models::{Cnn, CnnConfig, Mlp, MlpConfig};
use adamlab_optim::AdamConfig;
use adamlab_train::{cnn, mlp};
use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Per-element tolerance of the parity checks: atol 5e-6 + rtol 1e-5.
///
/// Fed the same gradients, the two optimizers differ in two ways. The order of a few f32
/// operations, ~1e-7 of each update; and burn evaluates `β₁ᵗ` and `β₂ᵗ` in f32, where β₂ = 0.999
/// is 0.99900001, so its early bias correction `1 − β₂ᵗ` is ~1.3e-5 off (ours, like torch, is
/// computed in f64). Each of burn's early updates is then ~6e-6 off relative, ~6e-8 for the
/// MLP's lr of 1e-2, and over 50 steps that adds up to a few 1e-6 (measured: at most 1.7e-6 on
/// the MLP and under 1e-6 on the CNN, on ndarray, flex and wgpu). A wrong formula (a bias
/// correction, a β, the decay) moves parameters by a sizeable fraction of lr (1e-3 or 1e-2)
/// within a few steps.
pub const PARITY_TOLERANCE: Tolerance = Tolerance::new(5e-6, 1e-5);

/// Steps each parity case runs, comparing after every one.
pub const PARITY_STEPS: usize = 50;

/// Which of the article's models a case trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParityModel {
    /// `Linear(2, 1)` on the article's two points, MSE, lr 0.01.
    Mlp,
    /// The CNN on one fixed batch of 8 synthetic 28×28 images, cross-entropy, lr 1e-3.
    Cnn,
}

impl ParityModel {
    /// Both models.
    pub const ALL: [ParityModel; 2] = [Self::Mlp, Self::Cnn];

    /// `mlp` or `cnn`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Cnn => "cnn",
        }
    }

    fn lr(self) -> f64 {
        match self {
            Self::Mlp => 0.01,
            Self::Cnn => 1e-3,
        }
    }
}

/// What our optimizer is compared with.
#[derive(Debug, Clone)]
pub enum Reference {
    /// A burn optimizer, built by this function.
    Burn(fn() -> ModuleOptimizer),
    /// Our own Adam with this config, minimising the loss while ours maximises its negation.
    NegatedObjective(AdamConfig),
}

/// One parity case: our config and its reference.
#[derive(Debug, Clone)]
pub struct ParityCase {
    /// Short name, e.g. `amsgrad`.
    pub name: &'static str,
    /// Our optimizer's configuration.
    pub ours: AdamConfig,
    /// What it must equal.
    pub reference: Reference,
}

/// The cases: defaults, L2 weight decay, AMSGrad (with L2), decoupled weight decay, maximize.
pub fn parity_cases() -> Vec<ParityCase> {
    vec![
        ParityCase {
            name: "default",
            ours: AdamConfig::new(),
            reference: Reference::Burn(|| burn::optim::AdamConfig::new().with_epsilon(1e-8).init()),
        },
        ParityCase {
            name: "l2-weight-decay",
            ours: AdamConfig::new().with_weight_decay(0.1),
            reference: Reference::Burn(|| {
                burn::optim::AdamConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(Some(WeightDecayConfig::new(0.1)))
                    .init()
            }),
        },
        ParityCase {
            name: "amsgrad",
            ours: AdamConfig::new().with_amsgrad(true).with_weight_decay(0.1),
            reference: Reference::Burn(|| {
                burn::optim::AdamConfig::new()
                    .with_epsilon(1e-8)
                    .with_amsgrad(true)
                    .with_weight_decay(Some(WeightDecayConfig::new(0.1)))
                    .init()
            }),
        },
        ParityCase {
            name: "adamw",
            ours: AdamConfig::adamw().with_weight_decay(0.1),
            reference: Reference::Burn(|| {
                burn::optim::AdamWConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(0.1)
                    .init()
            }),
        },
        ParityCase {
            name: "maximize",
            ours: AdamConfig::new().with_maximize(true),
            reference: Reference::NegatedObjective(AdamConfig::new()),
        },
    ]
}

/// Runs `case` on `model` for `steps` steps on `device` (autodiff is enabled here).
pub fn check(device: &Device, model: ParityModel, case: &ParityCase, steps: usize) -> CheckReport {
    let device = device.clone().autodiff();
    let ours = case.ours.init().expect("parity cases are valid");
    let (reference, reference_sign) = match &case.reference {
        Reference::Burn(build) => (build(), 1.0),
        Reference::NegatedObjective(config) => (config.init().expect("valid"), 1.0),
    };
    let our_sign = if case.ours.maximize { -1.0 } else { 1.0 };
    let mut run = Lockstep {
        ours,
        reference,
        our_sign,
        reference_sign,
        lr: model.lr(),
        deviation: Deviation::default(),
    };
    match model {
        ParityModel::Mlp => {
            let net = MlpConfig::new().init(&device);
            let (inputs, targets) = mlp::article_data(&device);
            run.run(net, steps, |m: &Mlp| {
                MseLoss::new().forward(m.forward(inputs.clone()), targets.clone(), Reduction::Mean)
            });
        }
        ParityModel::Cnn => {
            let net = CnnConfig::new().init(&device);
            let (images, labels) = synthetic_batch(8, &device);
            run.run(net, steps, |m: &Cnn| cnn::loss(m, images.clone(), labels.clone()));
        }
    }
    CheckReport {
        case: format!("burn-parity/{}/{}", model.name(), case.name),
        steps,
        tolerance: PARITY_TOLERANCE,
        deviation: run.deviation,
    }
}

/// Every case on every model, on `device`.
pub fn check_all(device: &Device) -> Vec<CheckReport> {
    ParityModel::ALL
        .into_iter()
        .flat_map(|model| {
            parity_cases()
                .into_iter()
                .map(move |case| check(device, model, &case, PARITY_STEPS))
        })
        .collect()
}

/// Two optimizers trained side by side from the same weights.
struct Lockstep {
    ours: ModuleOptimizer,
    reference: ModuleOptimizer,
    /// Our objective is `our_sign · loss`.
    our_sign: f32,
    reference_sign: f32,
    lr: f64,
    deviation: Deviation,
}

impl Lockstep {
    /// Steps both optimizers from the same weights, comparing every parameter after every step.
    ///
    /// Both are fed the gradient taken at *our* parameters, so the comparison measures the two
    /// optimizers' arithmetic, not how rounding in the forward and backward passes is amplified
    /// by Adam (see the module documentation).
    fn run<M: Module + Clone>(&mut self, model: M, steps: usize, loss: impl Fn(&M) -> Tensor<1>) {
        let (mut ours, mut reference) = (model.clone(), model);
        for step in 1..=steps {
            let grads = |sign: f32| {
                GradientsParams::from_grads(loss(&ours).mul_scalar(sign).backward(), &ours)
            };
            let (our_grads, reference_grads) = (grads(self.our_sign), grads(self.reference_sign));
            reference = self.reference.step(self.lr, reference, reference_grads);
            ours = self.ours.step(self.lr, ours, our_grads);
            for ((name, actual), (_, expected)) in
                named_params(&ours).into_iter().zip(named_params(&reference))
            {
                self.deviation
                    .record(PARITY_TOLERANCE, step, &name, &actual, &expected);
            }
        }
    }
}

/// A deterministic batch of `n` 28×28 images with values in [0, 1) and labels `i mod 10`, the
/// same on every backend (no device RNG involved).
pub fn synthetic_batch(n: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let pixels: Vec<f32> = (0..n * 28 * 28)
        .map(|_| {
            // xorshift64*: a fixed, portable sequence.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
    (
        Tensor::from_data(TensorData::new(pixels, [n, 1, 28, 28]), device),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    )
}
