//! Lookahead (Zhang et al. 2019, <https://arxiv.org/abs/1907.08610>) around any optimizer, as
//! pytorch-optimizer's `Lookahead(optimizer, k, alpha)` steps it (`pullback_momentum="none"`).
//!
//! The optimizer moves the fast weights; the slow weights start as the initial weights. Every
//! `k` optimizer steps the fast weights move back `1 − α` of the way to the slow ones,
//! `torch._foreach_lerp_(fast, slow, 1 − α)`, and the slow weights become them. The model
//! trained, evaluated and saved is the fast one, as with pytorch-optimizer's wrapper (its
//! `backup_and_load_cache` evaluates the slow weights on request; adamlab does not offer that).

use crate::ema::{Lift, lerp_params, valid_params};
use burn::module::Module;
use burn::tensor::Tensor;

/// Lookahead's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lookahead {
    /// Optimizer steps between synchronisations (≥ 1; 5 in the paper).
    pub k: usize,
    /// How far the slow weights move towards the fast ones, in [0, 1] (0.5 in the paper).
    pub alpha: f64,
}

impl std::fmt::Display for Lookahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lookahead(k={}, alpha={})", self.k, self.alpha)
    }
}

/// A new value made a parameter of an autodiff model again, requiring gradients as the old one
/// did (as burn's optimizers put their updates back).
struct OntoAutodiff;

impl Lift for OntoAutodiff {
    fn lift<const D: usize>(&self, old: Tensor<D>, new: Tensor<D>) -> Tensor<D> {
        let new = new.autodiff();
        if old.is_require_grad() { new.require_grad() } else { new }
    }
}

/// One synchronisation: `fast` (the trained model, with autodiff) moved `1 − alpha` of the way
/// to `slow` (without autodiff); returns the new fast weights and the new slow ones (equal).
pub fn sync<M: Module>(fast: M, slow: &M, alpha: f64) -> (M, M) {
    let fast = lerp_params(fast, &valid_params(slow), 1.0 - alpha, &OntoAutodiff);
    let slow = fast.valid();
    (fast, slow)
}
