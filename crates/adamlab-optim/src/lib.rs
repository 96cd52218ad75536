//! Optimizers for burn that compute what `torch.optim` computes.
//!
//! Each optimizer implements [`burn::optim::Optimizer`], so it runs inside burn's
//! [`ModuleOptimizer`](burn::optim::ModuleOptimizer), its parameter groups and burn-train's
//! `Learner`, on every backend. One optimizer per module, reading like its paper:
//!
//! - [`adam`]: Adam, AdamW (decoupled weight decay) and AMSGrad, as `torch.optim.Adam`.
//!
//! ```no_run
//! use adamlab_optim::AdamConfig;
//! let mut optimizer = AdamConfig::new().init().expect("valid hyper-parameters");
//! // model = optimizer.step(1e-3, model, grads);
//! # let _ = &mut optimizer;
//! ```

pub mod adam;

pub use adam::{Adam, AdamConfig, AdamConfigError, AdamState};

// `#[derive(RecordState)]` expands to paths under `crate::` and `burn_pack::`.
use burn::optim::{RecordState, StateSink, StateSource};

/// Checks a learning rate taken from a user: finite and ≥ 0, as torch.optim requires.
///
/// burn passes the learning rate to every step rather than to the optimizer's configuration, so
/// it is checked apart from [`AdamConfig::validate`].
pub fn check_learning_rate(lr: f64) -> Result<(), AdamConfigError> {
    if lr >= 0.0 && lr.is_finite() {
        Ok(())
    } else {
        Err(AdamConfigError::LearningRate(lr))
    }
}
