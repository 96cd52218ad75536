//! NAdam, with torch.optim.NAdam's semantics and defaults.

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::torch_ops;
use crate::hyper::{Interval, Keyword, Kind, CycledMomentum};
use crate::keywords::{EPS_OR_ZERO, LR};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`NAdam`], with `torch.optim.NAdam`'s defaults.
    pub struct NAdamConfig {
        LR => 0.002;
        BETAS;
        EPS_OR_ZERO.help("added to the denominator √v̂ for numerical stability") => {
            /// Added to the bias-corrected `√v̂`, outside the square root (torch accepts 0).
            eps: f64 = 1e-8,
        }
        WEIGHT_DECAY_L2_OR_DECOUPLED;
        Keyword {
            name: "momentum_decay",
            kind: Kind::Float(Interval::NON_NEGATIVE),
            help: "momentum decay ψ of the schedule μₜ = β₁·(1 − ½·0.96^(t·ψ))",
        } => {
            /// Momentum decay ψ of the schedule `μₜ = β₁·(1 − ½·0.96^(t·ψ))`.
            momentum_decay: f64 = 4e-3,
        }
        DECOUPLED_WEIGHT_DECAY;
        MAXIMIZE;
    }
}

/// The registry's `nadam`: `torch.optim.NAdam`.
pub const NADAM: OptimizerEntry = OptimizerEntry {
    name: "nadam",
    summary: "NAdam (Dozat, 2016): Adam with Nesterov momentum and a momentum schedule",
    reference: "torch.optim.NAdam (torch 2.15)",
    params: NAdamConfig::PARAMS,
    build: NAdamConfig::build_entry,
};

/// NAdam (Dozat, 2016, "Incorporating Nesterov Momentum into Adam",
/// <https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ>), computed as `torch.optim.NAdam`
/// computes it.
///
/// For each parameter θ with gradient g, at step t = 1, 2, …:
///
/// ```text
/// g ← −g                                   if maximize
/// θ ← θ·(1 − lr·λ)                         if decoupled weight decay (NAdamW)
/// g ← g + λ·θ                              otherwise, L2 weight decay
/// μₜ   = β₁·(1 − ½·0.96^(t·ψ))             momentum schedule
/// μₜ₊₁ = β₁·(1 − ½·0.96^((t+1)·ψ))
/// Πₜ ← Πₜ₋₁·μₜ                             torch's `mu_product`, Π₀ = 1
/// m ← β₁·m + (1 − β₁)·g                    first moment
/// v ← β₂·v + (1 − β₂)·g²                   second moment
/// d = √(v / (1 − β₂ᵗ)) + ε
/// θ ← θ − lr·(1 − μₜ)/(1 − Πₜ) · g / d
/// θ ← θ − lr·μₜ₊₁/(1 − Πₜ·μₜ₊₁) · m / d
/// ```
///
/// Precision follows torch's: μₜ, μₜ₊₁, the bias correction and both step sizes are f64 (Python
/// floats); `Πₜ` is an f32 tensor in torch's state, so it is kept in f32 here and multiplied by μₜ
/// rounded to f32, as torch's in-place `mu_product *= mu` does; `Πₜ·μₜ₊₁` then reads it back as
/// f64. (Over long runs `Πₜ` underflows to 0 in f32, as in torch.)
/// The first moment (torch's `lerp`), the second moment and the L2 decay are each rounded once
/// ([`torch_ops`]'s one-rounding policy, torch's CPU kernels'). torch's CPU
/// `sqrt` is not correctly rounded (an ulp off on about a fifth of f32 inputs, AVX2), so the
/// parameters agree with torch's to an ulp, not bit for bit.
#[derive(Clone, Debug)]
pub struct NAdam {
    config: NAdamConfig,
    /// β₁ set by a schedule at every step (OneCycleLR), when one cycles it.
    cycled_beta1: Option<CycledMomentum>,
}

crate::builds!(NAdamConfig => NAdam { cycled_beta1 });

/// The state NAdam keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct NAdamState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// Product of the momentum schedule, Πₜ = μ₁·…·μₜ, in f32 as torch keeps it.
    pub mu_product: f32,
    /// First moment m (torch's `exp_avg`).
    pub exp_avg: Tensor<D>,
    /// Second moment v (torch's `exp_avg_sq`).
    pub exp_avg_sq: Tensor<D>,
}

impl NAdam {
    /// One NAdam step for one parameter tensor, with tensor operations; see [`NAdam`] for the
    /// update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<NAdamState<D>>,
    ) -> (Tensor<D>, Option<NAdamState<D>>) {
        let NAdamConfig {
            beta1: _,
            beta2,
            eps,
            weight_decay,
            momentum_decay,
            decoupled_weight_decay,
            maximize,
        } = self.config;
        let beta1 = self.beta1();

        let g = if maximize { grad.neg() } else { grad };
        let (t, mu_product, m, v) = match state {
            Some(state) => (
                state.step + 1,
                state.mu_product,
                state.exp_avg,
                state.exp_avg_sq,
            ),
            None => (1, 1.0f32, g.zeros_like(), g.zeros_like()),
        };
        let step = t as f64;
        let bias_correction2 = 1.0 - beta2.powf(step);

        let (theta, g) = torch_ops::weight_decay(theta, g, lr, weight_decay, decoupled_weight_decay);

        // μₜ and μₜ₊₁ in f64, as Python evaluates them.
        let mu = beta1 * (1.0 - 0.5 * 0.96f64.powf(step * momentum_decay));
        let mu_next = beta1 * (1.0 - 0.5 * 0.96f64.powf((step + 1.0) * momentum_decay));
        // Πₜ ← Πₜ₋₁·μₜ in f32, as torch's f32 tensor `mu_product *= mu`.
        let mu_product = mu_product * mu as f32;

        // m ← β₁·m + (1 − β₁)·g, as torch's `exp_avg.lerp_(g, 1 − β₁)`.
        let m = torch_ops::lerp_one_rounding(m, g.clone(), 1.0 - beta1);
        // v ← β₂·v + (1 − β₂)·g², as torch's `exp_avg_sq.mul_(β₂).addcmul_(g, g, 1 − β₂)`.
        let v = torch_ops::mul_add_one_rounding(
            g.clone().mul_scalar(1.0 - beta2),
            g.clone(),
            v.mul_scalar(beta2),
        );
        // d = √(v / (1 − β₂ᵗ)) + ε.
        let denom = v
            .clone()
            .div_scalar(bias_correction2)
            .sqrt()
            .add_scalar(eps);

        // The gradient's share, then the momentum's, as torch's two `θ.addcdiv_` calls; the step
        // sizes in f64 with Πₜ read back from f32.
        let mu_product_f64 = f64::from(mu_product);
        let grad_step = -lr * (1.0 - mu) / (1.0 - mu_product_f64);
        let theta = theta.add(g.mul_scalar(grad_step).div(denom.clone()));
        let mu_product_next = mu_product_f64 * mu_next;
        let momentum_step = (-lr * mu_next) / (1.0 - mu_product_next);
        let theta = theta.add(m.clone().mul_scalar(momentum_step).div(denom));

        let state = NAdamState {
            step: t,
            mu_product,
            exp_avg: m,
            exp_avg_sq: v,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(NAdam, NAdamState { exp_avg, exp_avg_sq }, unfused);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.1;

    /// θ and the state after each of `grads`, from θ₀ = [1, −2].
    fn trajectory(config: NAdamConfig, grads: &[[f32; 2]]) -> Vec<(TensorData, NAdamState<1>)> {
        let look = |theta: &Tensor<1>, state: Option<&NAdamState<1>>| {
            (theta.to_data(), state.unwrap().clone())
        };
        testing::trajectory(&config.build().unwrap(), LR, grads, look)
    }

    /// Hand-computed in f64 (lr 0.1, torch's defaults, ψ = 0.004):
    /// μ₁ = 0.9·(1 − ½·0.96^0.004) = 0.45007348, μ₂ = 0.45014694, μ₃ = 0.45022038.
    /// Step 1, g = [0.5, −1]: Π₁ = μ₁, m = 0.1·g, d = |g| + 1e-8, so
    /// θ = θ₀ − 0.1·sign(g)·((1 − μ₁)/(1 − Π₁) + 0.1·μ₂/(1 − Π₁μ₂)) = θ₀ ∓ 0.10564518.
    /// Step 2, g = [0.25, 0.5]: m = [0.07, −0.04], v = [3.1225e-4, 1.249e-3], d = √(v/0.001999),
    /// Π₂ = μ₁μ₂, θ = θ₁ − 0.1·((1 − μ₂)/(1 − Π₂)·g + μ₃/(1 − Π₂μ₃)·m)/d
    /// = [0.84196249, −1.93546579].
    #[test]
    fn first_two_steps_match_hand_computed_values() {
        let steps = trajectory(NAdamConfig::new(), &[[0.5, -1.0], [0.25, 0.5]]);
        testing::assert_near(&steps[0].0, [0.894_354_82, -1.894_354_82]);
        testing::assert_near(&steps[1].0, [0.841_962_49, -1.935_465_79]);
        let mu = |t: f64| 0.9 * (1.0 - 0.5 * 0.96f64.powf(t * 0.004));
        assert_eq!(steps[0].1.mu_product, mu(1.0) as f32);
        assert_eq!(steps[1].1.mu_product, mu(1.0) as f32 * mu(2.0) as f32);
        assert_eq!(steps[1].1.step, 2);
    }

    /// L2 decay on the first step: g + λθ₀ = [1, −2] has the same sign as g, and the first step
    /// depends only on sign(g), so θ₁ is unchanged; the moment shows the decay, m = 0.1·[1, −2].
    /// Decoupled decay first shrinks θ₀ by (1 − 0.1·0.5) and keeps m = 0.1·g.
    #[test]
    fn weight_decay_is_coupled_or_decoupled_as_torch() {
        let l2 = trajectory(NAdamConfig::new().with_weight_decay(0.5), &[[0.5, -1.0]]);
        testing::assert_near(&l2[0].0, [0.894_354_82, -1.894_354_82]);
        testing::assert_near(&l2[0].1.exp_avg.to_data(), [0.1, -0.2]);
        let decoupled = trajectory(
            NAdamConfig::new()
                .with_weight_decay(0.5)
                .with_decoupled_weight_decay(true),
            &[[0.5, -1.0]],
        );
        testing::assert_near(&decoupled[0].0, [0.844_354_82, -1.794_354_82]);
        let m = decoupled[0].1.exp_avg.to_data();
        testing::assert_near(&m, [0.05, -0.1]);
    }

    /// ψ = 0 freezes the schedule at μ = β₁/2 = 0.45, so Π₁ = 0.45 and the first step is
    /// 0.1·(1 + 0.1·0.45/(1 − 0.2025)) = 0.10564263.
    #[test]
    fn momentum_decay_sets_the_schedule() {
        let steps = trajectory(NAdamConfig::new().with_momentum_decay(0.0), &[[0.5, -1.0]]);
        assert_eq!(steps[0].1.mu_product, 0.45);
        let expected = TensorData::from([0.894_357_37f32, -1.894_357_37]);
        steps[0]
            .0
            .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
    }

    /// `maximize` climbs: its first step moves along +g instead of −g.
    #[test]
    fn maximize_moves_along_the_gradient() {
        let steps = trajectory(NAdamConfig::new().with_maximize(true), &[[0.5, -1.0]]);
        let expected = TensorData::from([1.105_645_18f32, -2.105_645_18]);
        steps[0]
            .0
            .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
    }
}
