//! adamlab's optimizers against burn's built-ins (Adam, AdamW, SGD, AdaGrad, RmsProp, Lion,
//! Adafactor), and burn's built-ins against torch on the replay fixtures ([`burn_replays`]).
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
use crate::replay::ReplayFixture;
use adamlab_models::{Cnn, CnnConfig, Mlp, MlpConfig};
use adamlab_optim::OptimizerSpec;
use adamlab_train::{classification as cnn, mlp};
use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
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

/// Steps of the CNN's parity cases. Each step of the CNN costs two forward and backward passes
/// of the CNN, which on wgpu (llvmpipe in CI) made 50 steps the suite's longest test (8 of its
/// 10.5 minutes); 20 steps cover Adam's bias-correction transient, where burn's f32 corrections
/// differ most from ours, and the MLP cases keep 50.
pub const CNN_PARITY_STEPS: usize = 20;

impl ParityModel {
    /// The steps a parity case runs on this model: [`PARITY_STEPS`], or [`CNN_PARITY_STEPS`].
    pub fn parity_steps(self) -> usize {
        match self {
            Self::Mlp => PARITY_STEPS,
            Self::Cnn => CNN_PARITY_STEPS,
        }
    }
}

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
#[derive(Debug, Clone, Copy)]
pub enum Reference {
    /// A burn built-in, by its registry spec (`burn-sgd(momentum=0.9)`).
    Burn(&'static str),
    /// The same spec without `maximize`, minimising the loss while ours maximises its negation.
    NegatedObjective(&'static str),
}

/// One parity case: our spec, its reference, and the models it runs on.
#[derive(Debug, Clone, Copy)]
pub struct ParityCase {
    /// `<optimizer>/<case>`, e.g. `adam/amsgrad`.
    pub name: &'static str,
    /// Our optimizer, as a spec of the registry (the model's lr is used, not the spec's).
    pub ours: &'static str,
    /// What it must equal.
    pub reference: Reference,
    /// The models it runs on: the MLP for every case; the CNN only for Adam's, which are slow on
    /// llvmpipe and cover convolution-shaped parameters once.
    pub models: &'static [ParityModel],
}

/// Cases run on the MLP only.
pub const MLP_ONLY: &[ParityModel] = &[ParityModel::Mlp];
/// Cases run on both models.
pub const BOTH: &[ParityModel] = &[ParityModel::Mlp, ParityModel::Cnn];

/// Every parity case: each of burn's built-ins against ours, in configurations where both compute
/// torch's update (docs/optimizers/ says where they differ by design). burn's Muon has no row: it
/// computes another update (f32 Newton–Schulz, SGD-style momentum, `adjust_lr_fn` reading burn's
/// `[fan_in, fan_out]` layout; see [`BURN_REPLAY_DIFFERENCES`]).
pub const PARITY_CASES: &[ParityCase] = &[
    ParityCase { name: "adam/default", ours: "adam", reference: Reference::Burn("burn-adam"), models: BOTH },
    ParityCase {
        name: "adam/l2-weight-decay",
        ours: "adam(weight_decay=0.1)",
        reference: Reference::Burn("burn-adam(weight_decay=0.1)"),
        models: BOTH,
    },
    ParityCase {
        name: "adam/amsgrad",
        ours: "adam(amsgrad=true, weight_decay=0.1)",
        reference: Reference::Burn("burn-adam(amsgrad=true, weight_decay=0.1)"),
        models: BOTH,
    },
    ParityCase {
        name: "adamw/default",
        ours: "adamw(weight_decay=0.1)",
        reference: Reference::Burn("burn-adamw(weight_decay=0.1)"),
        models: BOTH,
    },
    ParityCase {
        name: "adam/maximize",
        ours: "adam(maximize=true)",
        reference: Reference::NegatedObjective("adam"),
        models: BOTH,
    },
    ParityCase { name: "sgd/default", ours: "sgd", reference: Reference::Burn("burn-sgd"), models: MLP_ONLY },
    ParityCase {
        name: "sgd/momentum-dampening",
        ours: "sgd(momentum=0.9, dampening=0.1)",
        reference: Reference::Burn("burn-sgd(momentum=0.9, dampening=0.1)"),
        models: MLP_ONLY,
    },
    ParityCase {
        name: "sgd/nesterov",
        ours: "sgd(momentum=0.9, nesterov=true)",
        reference: Reference::Burn("burn-sgd(momentum=0.9, nesterov=true)"),
        models: MLP_ONLY,
    },
    ParityCase {
        name: "sgd/weight-decay",
        ours: "sgd(momentum=0.9, weight_decay=0.1)",
        reference: Reference::Burn("burn-sgd(momentum=0.9, weight_decay=0.1)"),
        models: MLP_ONLY,
    },
    ParityCase {
        name: "sgd/maximize",
        ours: "sgd(momentum=0.9, maximize=true)",
        reference: Reference::NegatedObjective("sgd(momentum=0.9)"),
        models: MLP_ONLY,
    },
    ParityCase { name: "adagrad/default", ours: "adagrad", reference: Reference::Burn("burn-adagrad"), models: MLP_ONLY },
    ParityCase {
        name: "adagrad/lr-decay-weight-decay",
        ours: "adagrad(lr_decay=0.01, weight_decay=0.1, eps=1e-3)",
        reference: Reference::Burn("burn-adagrad(lr_decay=0.01, weight_decay=0.1, eps=1e-3)"),
        models: MLP_ONLY,
    },
    ParityCase { name: "rmsprop/default", ours: "rmsprop", reference: Reference::Burn("burn-rmsprop"), models: MLP_ONLY },
    ParityCase {
        name: "rmsprop/centered-momentum-weight-decay",
        ours: "rmsprop(alpha=0.9, centered=true, momentum=0.5, weight_decay=0.1)",
        reference: Reference::Burn("burn-rmsprop(alpha=0.9, centered=true, momentum=0.5, weight_decay=0.1)"),
        models: MLP_ONLY,
    },
    ParityCase { name: "lion/default", ours: "lion", reference: Reference::Burn("burn-lion"), models: MLP_ONLY },
    ParityCase {
        name: "lion/weight-decay",
        ours: "lion(betas=(0.95, 0.98), weight_decay=1.0)",
        reference: Reference::Burn("burn-lion(betas=(0.95, 0.98), weight_decay=1.0)"),
        models: MLP_ONLY,
    },
    ParityCase { name: "adafactor/default", ours: "adafactor", reference: Reference::Burn("burn-adafactor"), models: MLP_ONLY },
    ParityCase {
        name: "adafactor/decay-d-weight-decay",
        ours: "adafactor(beta2_decay=-0.5, d=2.0, weight_decay=0.1)",
        reference: Reference::Burn("burn-adafactor(beta2_decay=-0.5, d=2.0, weight_decay=0.1)"),
        models: MLP_ONLY,
    },
];

/// Runs `case` on `model` for `steps` steps on `device` (autodiff is enabled here).
pub fn check(device: &Device, model: ParityModel, case: &ParityCase, steps: usize) -> CheckReport {
    let device = device.clone().autodiff();
    let build = |spec: &str| {
        let spec = OptimizerSpec::parse(spec)
            .unwrap_or_else(|err| panic!("parity case {}: {err}", case.name));
        let optimizer = spec.build().expect("parse checks that it builds").module_optimizer();
        (spec, optimizer)
    };
    let (ours_spec, ours) = build(case.ours);
    let (reference, reference_sign) = match case.reference {
        Reference::Burn(spec) => (build(spec).1, 1.0),
        Reference::NegatedObjective(spec) => (build(spec).1, 1.0),
    };
    let maximizes = ours_spec
        .args()
        .values()
        .get("maximize")
        .is_some_and(|v| *v == adamlab_optim::Value::Bool(true));
    let our_sign = if maximizes { -1.0 } else { 1.0 };
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

/// Every case on each of its models, on `device`, optionally only those of one optimizer (the
/// part of the case name before `/`).
pub fn check_all(device: &Device, optimizer: Option<&str>) -> Vec<CheckReport> {
    PARITY_CASES
        .iter()
        .filter(|case| optimizer.is_none_or(|o| case.name.split('/').next() == Some(o)))
        .flat_map(|case| {
            case.models
                .iter()
                .map(move |model| check(device, *model, case, model.parity_steps()))
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

/// burn's built-in twin of a replay fixture's optimizer, fed torch's gradients.
#[derive(Debug)]
pub struct BurnReplay {
    /// The fixture, `<optimizer>/<case>`.
    pub fixture: String,
    /// burn's spec: the fixture's spec under the `burn-` name.
    pub spec: String,
    /// Its parameters against the reference's, at [`PARITY_TOLERANCE`].
    pub report: CheckReport,
}

/// Every replay fixture that a burn built-in can run with the same settings ([`burn_replay`]),
/// optionally only one optimizer's.
pub fn burn_replays(device: &Device, optimizer: Option<&str>) -> Vec<BurnReplay> {
    crate::replay::replay_fixtures()
        .iter()
        .filter(|f| optimizer.is_none_or(|name| f.optimizer == name))
        .filter_map(|fixture| burn_replay(fixture, device))
        .collect()
}

/// `fixture` replayed through burn's built-in twin of its optimizer, when burn can run it with the
/// same settings (the fixture's spec under the name `burn-<optimizer>` parses: burn has every
/// option the case sets), compared with the reference (torch) on the parameters only, at
/// [`PARITY_TOLERANCE`]: burn's state is its own.
pub fn burn_replay(fixture: &ReplayFixture, device: &Device) -> Option<BurnReplay> {
    let text = format!("burn-{}", fixture.spec);
    let spec = OptimizerSpec::parse(&text).ok()?;
    let built = spec.build().expect("parse checks that it builds");
    let report = crate::replay::replay_params_only(
        &*built,
        spec.lr(),
        fixture,
        device,
        PARITY_TOLERANCE,
        format!("burn-replay/{}", fixture.case),
    );
    Some(BurnReplay { fixture: fixture.case.clone(), spec: text, report })
}

/// Replay fixtures on which burn's built-in twin computes another update than the reference,
/// by design or by rounding, with the reason. A pattern `<optimizer>/*` covers every case of that
/// optimizer. Every other fixture that burn can run ([`burn_replays`]) must agree with the
/// reference at [`PARITY_TOLERANCE`], and every case listed here must still differ (a test holds
/// both), so this table stays the truth about burn 0.22.1.
pub const BURN_REPLAY_DIFFERENCES: &[(&str, &str)] = &[
    (
        "adam/large-lr",
        "burn's bias corrections are f32 (β₂ = 0.999 is 0.99900001): at lr 0.1 its parameters \
         leave torch's by 1.6e-5 after 166 steps",
    ),
    (
        "adafactor/tiny-gradients",
        "burn adds ε₁ = 1e-30 to G² (the paper's), torch floors V̂ at ε₁ = f32 machine epsilon: \
         with gradients of about 1e-9 the two ε₁ dominate differently",
    ),
    (
        "adafactor/tiny-gradients-eps1-1e-10",
        "the same ε₁ placement, with ε₁ = 1e-10 given to both",
    ),
    (
        "muon/*",
        "burn's Muon runs Newton–Schulz in f32 (torch: bfloat16), keeps SGD's momentum v = μv + g \
         (torch: B + (1 − μ)(g − B)), and reads dims[0] and dims[1] of burn's [fan_in, fan_out] \
         weight as A and B in adjust_lr_fn, torch's B and A",
    ),
];

/// Why burn's built-in differs from the reference on `fixture` (`<optimizer>/<case>`), when
/// [`BURN_REPLAY_DIFFERENCES`] says it does.
pub fn burn_replay_difference(fixture: &str) -> Option<&'static str> {
    BURN_REPLAY_DIFFERENCES
        .iter()
        .find_map(|&(pattern, why)| difference_covers(pattern, fixture).then_some(why))
}

/// Whether a [`BURN_REPLAY_DIFFERENCES`] `pattern` covers `fixture` (`<optimizer>/<case>`): the
/// same name, or `<optimizer>/*`.
pub fn difference_covers(pattern: &str, fixture: &str) -> bool {
    let optimizer = fixture.split('/').next().unwrap_or(fixture);
    pattern == fixture || pattern.strip_suffix("/*") == Some(optimizer)
}
