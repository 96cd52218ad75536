//! Adagrad, with torch.optim.Adagrad's semantics and defaults.
//!
//! Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
//! Optimization", JMLR 2011, <https://jmlr.org/papers/v12/duchi11a.html>.
//!
//! For each parameter θ with gradient g, at step t = 1, 2, … (torch's order):
//!
//! ```text
//! g ← −g                                   if maximize
//! g ← g + λ·θ                              if weight_decay λ ≠ 0 (L2)
//! η_t = lr / (1 + (t − 1)·lr_decay)        in f64, as torch's Python float
//! s ← s + g²                               s₀ = initial_accumulator_value (torch's `sum`)
//! θ ← θ − η_t · g / (√s + ε)
//! ```
//!
//! Deliberate differences from torch.optim.Adagrad: dense gradients only (burn has no sparse
//! gradients, so torch's sparse branch has no counterpart), real tensors only, and no `foreach`
//! or `differentiable` (implementation switches that do not change the arithmetic of the
//! single-tensor path this file follows). Values that are infinite are refused, where torch only
//! refuses negative ones.
//!
//! `fused` (torch's keyword; adamlab's default is true, torch's None) steps with the fused step
//! beside the reference ([`kernel`]; on Flex, NdArray and CubeCL tensors): one pass over θ, g
//! and s, in place, computing [`Adagrad::reference_step`]'s arithmetic in its order, so the
//! numbers are the same (bit for bit on the CPU). Anything else (another backend or dtype,
//! autodiff tensors) takes the reference.

mod kernel;

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::hyper::{Interval, Keyword, Kind};
use crate::keywords::{EPS_OR_ZERO, LR};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Adagrad`], with `torch.optim.Adagrad`'s defaults.
    pub struct AdagradConfig {
        LR => 0.01;
        Keyword {
            name: "lr_decay",
            kind: Kind::Float(Interval::NON_NEGATIVE),
            help: "step-size decay: step t uses lr / (1 + (t − 1)·lr_decay)",
        } => {
            /// Step-size decay: step t uses `lr / (1 + (t − 1)·lr_decay)`.
            lr_decay: f64 = 0.0,
        }
        WEIGHT_DECAY;
        Keyword {
            name: "initial_accumulator_value",
            kind: Kind::Float(Interval::NON_NEGATIVE),
            help: "starting value of the running sum of squared gradients",
        } => {
            /// Starting value of the sum of squared gradients.
            initial_accumulator_value: f64 = 0.0,
        }
        EPS_OR_ZERO.help("added to the denominator √s for numerical stability") => {
            /// Added to `√s`, outside the square root (torch's default; burn's AdaGrad defaults
            /// to 1e-5).
            eps: f64 = 1e-10,
        }
        MAXIMIZE;
        FUSED;
    }
}

/// The registry's `adagrad`: `torch.optim.Adagrad`.
pub const ADAGRAD: OptimizerEntry = OptimizerEntry {
    name: "adagrad",
    summary: "Adagrad (Duchi et al., 2011): steps scaled by the root of the summed squared gradients",
    reference: "torch.optim.Adagrad (torch 2.15)",
    params: AdagradConfig::PARAMS,
    build: AdagradConfig::build_entry,
};

/// Adagrad, computed as `torch.optim.Adagrad` computes it on dense gradients; see the
/// [module documentation](self) for the update rule.
///
/// The decayed step size `η_t` is computed in f64, as torch computes it in Python, and enters
/// the update as torch's `θ.addcdiv_(g, √s + ε, value=−η_t)`: `θ − (η_t·g)/(√s + ε)`.
#[derive(Clone, Debug)]
pub struct Adagrad {
    config: AdagradConfig,
}

crate::builds!(AdagradConfig => Adagrad);

/// η_t = lr / (1 + (t − 1)·lr_decay), in f64 as torch's Python float.
fn decayed_lr(config: &AdagradConfig, lr: f64, t: usize) -> f64 {
    lr / (1.0 + (t - 1) as f64 * config.lr_decay)
}

impl Adagrad {
    /// One Adagrad step for one parameter tensor, written with tensor operations: the readable
    /// reference that the fused kernels must equal. Every backend and dtype runs it; see the
    /// [module](self) for the update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdagradState<D>>,
    ) -> (Tensor<D>, Option<AdagradState<D>>) {
        let AdagradConfig {
            lr_decay: _,
            weight_decay,
            initial_accumulator_value,
            eps,
            maximize,
            fused: _,
        } = self.config;

        // torch creates `sum` full of initial_accumulator_value when the optimizer is built.
        let (t, s) = match state {
            Some(state) => (state.step + 1, state.sum),
            None => (1, grad.full_like(initial_accumulator_value)),
        };

        let mut g = if maximize { grad.neg() } else { grad };
        if weight_decay != 0.0 {
            // g ← g + λ·θ, as torch's `grad.add(param, alpha=λ)`.
            g = g.add(theta.clone().mul_scalar(weight_decay));
        }

        // η_t = lr / (1 + (t − 1)·lr_decay), in f64.
        let clr = decayed_lr(&self.config, lr, t);

        // s ← s + g², as torch's `state_sum.addcmul_(g, g, value=1)`.
        let s = s.add(g.clone().mul(g.clone()));
        // √s + ε.
        let std = s.clone().sqrt().add_scalar(eps);
        // θ ← θ − η_t·g / (√s + ε), as torch's `θ.addcdiv_(g, std, value=−η_t)`.
        let theta = theta.sub(g.mul_scalar(clr).div(std));

        (theta, Some(AdagradState { step: t, sum: s }))
    }
}

crate::fused::impl_optimizer!(Adagrad, AdagradState { sum });

/// The state Adagrad keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct AdagradState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// Running sum of squared gradients s, from `initial_accumulator_value` (torch's `sum`).
    pub sum: Tensor<D>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::thetas;
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.1;

    /// θ after each of `grads`, from θ₀ = [1, −2].
    fn trajectory(config: AdagradConfig, grads: &[[f32; 2]]) -> Vec<TensorData> {
        thetas(&config.build().unwrap(), LR, grads)
    }

    // f32 holds these values to ~2e-7; 1e-6 leaves room for the order of operations only.
    fn tolerance() -> Tolerance<f32> {
        Tolerance::absolute(1e-6)
    }

    fn assert_theta(actual: &TensorData, expected: [f32; 2]) {
        actual.assert_approx_eq::<f32>(&TensorData::from(expected), tolerance());
    }

    /// Hand-computed in f64 (lr 0.1, torch's defaults):
    /// step 1, g = [0.5, −1]: s = [0.25, 1], θ = θ₀ − 0.1·g/√s = [0.9, −1.9];
    /// step 2, g = [0.25, 0.5]: s = [0.3125, 1.25],
    /// θ = [0.9 − 0.025/0.5590170, −1.9 − 0.05/1.1180340] = [0.855278640, −1.944721360].
    #[test]
    fn first_two_steps_match_hand_computed_values() {
        let thetas = trajectory(AdagradConfig::new(), &[[0.5, -1.0], [0.25, 0.5]]);
        assert_theta(&thetas[0], [0.9, -1.9]);
        assert_theta(&thetas[1], [0.855_278_64, -1.944_721_4]);
    }

    /// lr_decay 1 halves the second step size (η₂ = 0.1/(1 + 1)) and leaves the first alone:
    /// θ₂ = [0.9 − 0.05·0.25/0.5590170, −1.9 − 0.05·0.5/1.1180340] = [0.877639320, −1.922360680].
    #[test]
    fn lr_decay_shrinks_later_steps() {
        let thetas = trajectory(
            AdagradConfig::new().with_lr_decay(1.0),
            &[[0.5, -1.0], [0.25, 0.5]],
        );
        assert_theta(&thetas[0], [0.9, -1.9]);
        assert_theta(&thetas[1], [0.877_639_3, -1.922_360_7]);
    }

    /// initial_accumulator_value 0.75 starts s there: s₁ = [1, 1.75],
    /// θ = [1 − 0.05/1, −2 + 0.1/√1.75] = [0.95, −1.924407105].
    #[test]
    fn initial_accumulator_value_starts_the_sum() {
        let thetas = trajectory(
            AdagradConfig::new().with_initial_accumulator_value(0.75),
            &[[0.5, -1.0]],
        );
        assert_theta(&thetas[0], [0.95, -1.924_407_1]);
    }

    /// λ = 0.5 turns g = [0.5, −1] into g + λθ₀ = [1, −2], whose first step is again ±lr.
    #[test]
    fn weight_decay_is_added_to_the_gradient() {
        let plain = trajectory(AdagradConfig::new(), &[[0.5, -1.0], [0.25, 0.5]]);
        let decayed = trajectory(
            AdagradConfig::new().with_weight_decay(0.5),
            &[[0.5, -1.0], [0.25, 0.5]],
        );
        assert_theta(&decayed[0], [0.9, -1.9]);
        // Step 2: g + λθ₁ = [0.7, −0.45], s = [1.49, 4.2025], θ = [0.9 − 0.07/1.2206556,
        // −1.9 + 0.045/2.05] = [0.842653, −1.878049].
        assert_theta(&decayed[1], [0.842_653_2, -1.878_048_8]);
        assert_ne!(plain[1], decayed[1]);
    }

    /// eps 1 is visible: θ = [1 − 0.05/1.5, −2 + 0.1/2] = [0.966666667, −1.95].
    #[test]
    fn eps_is_added_outside_the_square_root() {
        let thetas = trajectory(AdagradConfig::new().with_eps(1.0), &[[0.5, -1.0]]);
        assert_theta(&thetas[0], [0.966_666_7, -1.95]);
    }

    /// `maximize` climbs: its first step moves along +g instead of −g.
    #[test]
    fn maximize_moves_along_the_gradient() {
        let thetas = trajectory(AdagradConfig::new().with_maximize(true), &[[0.5, -1.0]]);
        assert_theta(&thetas[0], [1.1, -2.1]);
    }

}
