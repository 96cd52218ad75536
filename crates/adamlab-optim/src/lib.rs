//! Optimizers for burn that compute what their reference implementations compute
//! (`torch.optim`, `lion-pytorch`, `schedulefree`, `adabelief-pytorch`, `pytorch-optimizer`), and
//! the registry that lists them.
//!
//! Each optimizer implements [`burn::optim::Optimizer`], so it runs inside burn's
//! [`ModuleOptimizer`](burn::optim::ModuleOptimizer), its parameter groups and burn-train's
//! `Learner`, on every backend. One optimizer per module, reading like its paper. [`REGISTRY`]
//! lists them all, with burn's own built-ins beside them for comparison; the CLI, verification
//! and benchmarks read it and name no optimizer themselves.
//!
//! ```no_run
//! use adamlab_optim::{AdamConfig, OptimizerSpec};
//! let mut optimizer = AdamConfig::new().init().expect("valid hyper-parameters");
//! // model = optimizer.step(1e-3, model, grads);
//! # let _ = &mut optimizer;
//! // Or by spec, as the command line takes it:
//! let spec = OptimizerSpec::parse("sgd(momentum=0.9, nesterov=true)").expect("a valid spec");
//! let mut optimizer = spec.build().expect("checked by parse").module_optimizer();
//! # let _ = &mut optimizer;
//! ```

// Built without a CPU backend, the element functions and helpers the CPU kernels share with the
// CubeCL ones go unused (every step there takes the CubeCL kernel or the tensor-op reference).
#![cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]

pub mod adabelief;
pub mod adadelta;
pub mod adafactor;
pub mod adagrad;
pub mod adam;
pub mod adam8bit;
pub mod adamax;
pub mod adopt;
pub mod asgd;
pub mod burn_builtin;
pub mod clip;
pub mod fused;
pub mod hyper;
pub mod keywords;
pub mod lion;
pub mod lion8bit;
pub mod muon;
pub mod nadam;
pub mod radam;
pub mod registry;
pub mod rmsprop;
pub mod rprop;
pub mod schedule;
pub mod schedule_free_adamw;
pub mod sgd;
pub mod spec;
pub mod stochastic;
#[cfg(test)]
mod testing;
pub mod torch_ops;

pub use adam::{Adam, AdamConfig, AdamState};
pub use hyper::{
    Args, ConfigError, HyperParam, HyperValue, Interval, Keyword, Kind, CycledMomentum, Value,
    check_learning_rate,
};
pub use registry::{
    EvalWeights, AnyOptimizer, OptimizerEntry, OptimizerSpec, SpecError, eval_weights, lookup,
    registry,
};

// `#[derive(RecordState)]` expands to paths under `crate::` and `burn_pack::`.
use burn::optim::{RecordState, StateSink, StateSource};

/// Every optimizer, one line each: adamlab's, then burn's built-ins (`burn-NAME`) for
/// comparison. Adding an optimizer is writing its file and adding its line here.
pub static REGISTRY: &[OptimizerEntry] = &[
    adam::ADAM,
    adam::ADAMW,
    adam8bit::ADAM8BIT,
    adam8bit::ADAMW8BIT,
    sgd::SGD,
    rprop::RPROP,
    asgd::ASGD,
    adamax::ADAMAX,
    nadam::NADAM,
    radam::RADAM,
    adabelief::ADABELIEF,
    adopt::ADOPT,
    adagrad::ADAGRAD,
    adadelta::ADADELTA,
    rmsprop::RMSPROP,
    adafactor::ADAFACTOR,
    muon::MUON,
    lion::LION,
    lion8bit::LION8BIT,
    schedule_free_adamw::SCHEDULE_FREE_ADAMW,
    burn_builtin::adam::BURN_ADAM,
    burn_builtin::adam::BURN_ADAMW,
    burn_builtin::sgd::BURN_SGD,
    burn_builtin::adagrad::BURN_ADAGRAD,
    burn_builtin::rmsprop::BURN_RMSPROP,
    burn_builtin::adafactor::BURN_ADAFACTOR,
    burn_builtin::muon::BURN_MUON,
    burn_builtin::lion::BURN_LION,
];
