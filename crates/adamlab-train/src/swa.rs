//! Stochastic weight averaging (Izmailov et al. 2018, <https://arxiv.org/abs/1803.05407>) as
//! torch's `swa_utils` run it: `AveragedModel(model)` (an equal-weight average) updated after every
//! epoch past the start, with `SWALR(optimizer, swa_lr, anneal_epochs, anneal_strategy)` stepped
//! at the same moments instead of the regular schedule.
//!
//! torch's recipe, with 0-based epochs:
//!
//! ```text
//! for epoch in range(epochs):
//!     train(...)                           # the regular schedule steps inside, per step here
//!     if epoch > swa_start:
//!         swa_model.update_parameters(model)
//!         swa_scheduler.step()
//!     else:
//!         scheduler.step()
//! ```
//!
//! adamlab's schedules step per optimizer step, so [`Swa::after`] counts whole epochs: the regular
//! schedule runs through epoch `after` (1-based, torch's `swa_start = after − 1`), and from then
//! on every epoch's end averages the weights and anneals the learning rate towards `swa_lr`; the
//! learning rate is constant within an epoch, as torch's per-epoch SWALR holds it. Evaluation and
//! the saved weights are the average once it exists. `update_bn` has nothing to do: adamlab's
//! models hold no batch-norm statistics.

use crate::ema::{Keep, lerp_params, valid_params};
use burn::module::Module;

/// SWA's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Swa {
    /// Epochs trained with the regular schedule before averaging starts (≥ 1).
    pub after: usize,
    /// The learning rate SWALR anneals to, `swa_lr` (every param group's).
    pub swa_lr: f64,
    /// Epochs of the annealing (torch's default 10).
    pub anneal_epochs: usize,
    /// `anneal_strategy="cos"` (torch's default), else `"linear"`.
    pub cosine: bool,
}

impl std::fmt::Display for Swa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "swa(after={}, swa_lr={}, anneal_epochs={}, anneal_strategy={})",
            self.after,
            self.swa_lr,
            self.anneal_epochs,
            if self.cosine { "cos" } else { "linear" }
        )
    }
}

impl Swa {
    fn anneal(&self, t: f64) -> f64 {
        if self.cosine { (1.0 - (std::f64::consts::PI * t).cos()) / 2.0 } else { t }
    }

    /// `SWALR.get_lr()` at its `step`-th `step()` call (1 for the first), from the group's
    /// current learning rate `lr`, in f64 as Python computes it.
    pub fn swalr(&self, lr: f64, step: usize) -> f64 {
        let mut step = step as f64;
        if self.anneal_epochs == 0 {
            step = step.max(1.0);
        }
        let span = self.anneal_epochs.max(1) as f64;
        let prev_alpha = self.anneal(((step - 1.0) / span).clamp(0.0, 1.0));
        let prev_lr = if prev_alpha == 1.0 {
            self.swa_lr
        } else {
            (lr - prev_alpha * self.swa_lr) / (1.0 - prev_alpha)
        };
        let alpha = self.anneal((step / span).clamp(0.0, 1.0));
        self.swa_lr * alpha + prev_lr * (1.0 - alpha)
    }
}

/// The equal-weight average after one more update: `current` itself on the first (`averaged` is
/// `None`), else `averaged.lerp(current, 1 / (n + 1))` for the `n` models averaged so far, as
/// torch's `get_swa_multi_avg_fn` computes it (the weight in f32, as its `1 / (n_averaged + 1)`
/// tensor holds it).
pub fn average<M: Module>(averaged: Option<M>, current: &M, n_averaged: usize) -> M {
    match averaged {
        None => current.clone(),
        Some(averaged) => {
            let weight = f64::from(1.0f32 / (n_averaged as f32 + 1.0));
            lerp_params(averaged, &valid_params(current), weight, &Keep)
        }
    }
}
