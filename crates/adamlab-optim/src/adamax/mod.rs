//! Adamax, with torch.optim.Adamax's semantics and defaults.
//!
//! [`Adamax::step`](burn::optim::Optimizer::step) is written twice: the tensor-op
//! [reference](Adamax::reference_step), and the fused step beside it ([`kernel`]; on Flex,
//! NdArray and CubeCL tensors), one in-place pass over θ, g, m and u computing the reference's
//! arithmetic in its order, its single roundings of torch's fused multiply-adds included (see
//! [`torch_ops`]). The `fused` keyword picks between them; it is adamlab's (torch's Adamax has
//! none), default true, and the numbers are the same.

mod kernel;

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::hyper::CycledMomentum;
use crate::keywords::{BETAS, EPS_OR_ZERO, LR};
use crate::registry::OptimizerEntry;
use crate::torch_ops;

crate::hyper_config! {
    /// Configuration of [`Adamax`], with `torch.optim.Adamax`'s defaults.
    pub struct AdamaxConfig {
        LR => 0.002;
        BETAS.help("decay rates of the first moment and of the infinity norm") => {
            /// Decay rate of the first-moment (mean) estimate, β₁.
            beta1: f64 = 0.9,
            /// Decay rate of the infinity norm `u`, β₂.
            beta2: f64 = 0.999,
        }
        EPS_OR_ZERO.help("added to |g| in the infinity norm u = max(β₂·u, |g| + eps)") => {
            /// Added to `|g|` inside the maximum that updates `u`, so that `u` is never 0.
            eps: f64 = 1e-8,
        }
        WEIGHT_DECAY;
        MAXIMIZE;
        FUSED_ADAMLAB;
    }
}

/// The registry's `adamax`: `torch.optim.Adamax`.
pub const ADAMAX: OptimizerEntry = OptimizerEntry {
    name: "adamax",
    summary: "Adamax (Kingma & Ba, 2015): Adam with the infinity norm in place of the second moment",
    reference: "torch.optim.Adamax (torch 2.15)",
    params: AdamaxConfig::PARAMS,
    build: AdamaxConfig::build_entry,
};

/// Adamax (Kingma & Ba, 2015, section 7.1, <https://arxiv.org/abs/1412.6980>), computed as
/// `torch.optim.Adamax` computes it.
///
/// For each parameter θ with gradient g, at step t = 1, 2, …:
///
/// ```text
/// g ← −g                                   if maximize
/// g ← g + λ·θ                              if weight decay (L2)
/// m ← β₁·m + (1 − β₁)·g                    first moment
/// u ← max(β₂·u, |g| + ε)                   exponentially weighted infinity norm
/// θ ← θ − (lr / (1 − β₁ᵗ)) · m / u
/// ```
///
/// As torch does, and contrary to the paper's `max(β₂·u, |g|)`, ε is added to `|g|` inside the
/// maximum rather than to the denominator. The step size `lr / (1 − β₁ᵗ)` is computed in f64 (torch
/// computes it as a Python float). The first moment follows torch's `lerp`, `m + w·(g − m)` with
/// w = 1 − β₁ when w < 0.5 and `g − (g − m)·(1 − w)` otherwise, and like the weight decay
/// `g + λ·θ` it is rounded once, as torch's fused kernels round it (see [`torch_ops`]).
#[derive(Clone, Debug)]
pub struct Adamax {
    config: AdamaxConfig,
    /// β₁ set by a schedule at every step (OneCycleLR), when one cycles it.
    cycled_beta1: Option<CycledMomentum>,
}

crate::builds!(AdamaxConfig => Adamax { cycled_beta1 });

/// The state Adamax keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct AdamaxState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// First moment m (torch's `exp_avg`).
    pub exp_avg: Tensor<D>,
    /// Infinity norm u (torch's `exp_inf`).
    pub exp_inf: Tensor<D>,
}

impl Adamax {
    /// One Adamax step for one parameter tensor, written with tensor operations: the readable
    /// reference that the fused kernels must equal. Every backend and dtype runs it; see
    /// [`Adamax`] for the update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamaxState<D>>,
    ) -> (Tensor<D>, Option<AdamaxState<D>>) {
        let AdamaxConfig {
            beta1: _,
            beta2,
            eps,
            weight_decay,
            maximize,
            fused: _,
        } = self.config;
        let beta1 = self.beta1();

        let mut g = if maximize { grad.neg() } else { grad };
        if weight_decay != 0.0 {
            // As torch's `g.add(θ, alpha=λ)`: one rounding.
            g = torch_ops::mul_add_scalar_one_rounding(theta.clone(), weight_decay as f32, g);
        }

        let (t, m, u) = match state {
            Some(state) => (state.step + 1, state.exp_avg, state.exp_inf),
            None => (1, g.zeros_like(), g.zeros_like()),
        };

        // m ← β₁·m + (1 − β₁)·g, as torch's `exp_avg.lerp_(g, 1 − β₁)`.
        let m = torch_ops::lerp_one_rounding(m, g.clone(), 1.0 - beta1);
        // u ← max(β₂·u, |g| + ε).
        let u = u.mul_scalar(beta2).max_pair(g.abs().add_scalar(eps));

        // In f64, as Python evaluates torch's `lr / (1 - beta1 ** step)`.
        let bias_correction = 1.0 - beta1.powf(t as f64);
        let clr = lr / bias_correction;
        // θ ← θ − clr·m / u, as torch's `θ.addcdiv_(m, u, value=−clr)`.
        let theta = theta.add(m.clone().mul_scalar(-clr).div(u.clone()));

        let state = AdamaxState {
            step: t,
            exp_avg: m,
            exp_inf: u,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(Adamax, AdamaxState { exp_avg, exp_inf });

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::Optimizer;
    use crate::testing::{self, device, tensor, thetas};
    use burn::tensor::TensorData;

    const LR: f64 = 0.1;

    /// θ after each of `grads`, from θ₀ = [1, −2].
    fn trajectory(config: AdamaxConfig, grads: &[[f32; 2]]) -> Vec<TensorData> {
        thetas(&config.build().unwrap(), LR, grads)
    }

    /// Hand-computed in f64 (lr 0.1, torch's defaults):
    /// step 1, g = [0.5, −1]: m = 0.1·g = [0.05, −0.1], u = |g| + 1e-8, clr = 0.1/0.1 = 1,
    /// θ = θ₀ − m/u = [1 − 0.05/0.50000001, −2 + 0.1/1.00000001] = [0.90000002, −1.90000001];
    /// step 2, g = [0.25, 0.5]: m = [0.07, −0.04], u = max(0.999·u, |g| + 1e-8) = [0.49950001,
    /// 0.99900001], clr = 0.1/0.19, θ = [0.90000002 − 0.1/0.19·0.07/0.49950001,
    /// −1.90000001 + 0.1/0.19·0.04/0.99900001] = [0.82624203, −1.87892630].
    #[test]
    fn first_two_steps_match_hand_computed_values() {
        let thetas = trajectory(AdamaxConfig::new(), &[[0.5, -1.0], [0.25, 0.5]]);
        testing::assert_near(&thetas[0], [0.900_000_02, -1.900_000_01]);
        testing::assert_near(&thetas[1], [0.826_242_03, -1.878_926_30]);
    }

    /// The infinity norm: after a large gradient, u decays by β₂ per step rather than dropping to
    /// the new |g|, so the step after it is small (here g = 0 at step 2 leaves u = 0.999·|g₁|).
    #[test]
    fn infinity_norm_decays_by_beta2_and_keeps_the_maximum() {
        let adamax = AdamaxConfig::new().build().unwrap();
        let (theta, state) = adamax.step(LR, tensor([1.0, -2.0]), tensor([4.0, -0.5]), None);
        let (_, state) = adamax.step(LR, theta, tensor([0.0, 2.0]), state);
        let u = state.unwrap().exp_inf.to_data();
        // [max(0.999·4, 0 + ε), max(0.999·0.5, 2 + ε)].
        testing::assert_near(&u, [3.996, 2.0]);
    }

    /// First step with λ = 0.5: g + λθ₀ = [1, −2]; Adamax's first step is ±lr·|g|/(|g| + ε), so
    /// θ = [0.9, −1.9] to 1e-8 (without decay, the same). The moment shows the decay: m = 0.1·[1, −2].
    #[test]
    fn weight_decay_is_added_to_the_gradient() {
        let adamax = AdamaxConfig::new().with_weight_decay(0.5).build().unwrap();
        let (theta, state) = adamax.step(LR, tensor([1.0, -2.0]), tensor([0.5, -1.0]), None);
        testing::assert_near(&theta.to_data(), [0.9, -1.9]);
        let state = state.unwrap();
        testing::assert_near(&state.exp_avg.to_data(), [0.1, -0.2]);
        testing::assert_near(&state.exp_inf.to_data(), [1.0, 2.0]);
    }

    /// `maximize` climbs: its first step moves along +g instead of −g.
    #[test]
    fn maximize_moves_along_the_gradient() {
        let thetas = trajectory(AdamaxConfig::new().with_maximize(true), &[[0.5, -1.0]]);
        testing::assert_near(&thetas[0], [1.1, -2.1]);
    }

    /// With β₁ < 0.5 torch's lerp takes its other form, `g − (g − m)·β₁`; the first step still
    /// gives m = (1 − β₁)·g and θ = θ₀ − lr·g/(|g| + ε).
    #[test]
    fn small_beta1_uses_the_other_lerp_form_with_the_same_value() {
        let adamax = AdamaxConfig::new().with_beta1(0.3).build().unwrap();
        let (theta, state) = adamax.step(LR, tensor([1.0, -2.0]), tensor([0.5, -1.0]), None);
        testing::assert_near(&theta.to_data(), [0.9, -1.9]);
        let m = state.unwrap().exp_avg.to_data();
        testing::assert_near(&m, [0.35, -0.7]);
    }

    /// The fused helpers equal Rust's `f32::mul_add` (one rounding) element for element, where
    /// plain tensor ops (two roundings) do not: 256 products of magnitude ~1e5 added to values
    /// that cancel most of them, as in the huge-gradient replays.
    #[test]
    fn fused_mul_add_rounds_once_like_an_fma() {
        let mut seed = 12_345u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let a: Vec<f32> = (0..256).map(|_| next() * 1e6).collect();
        let b: Vec<f32> = (0..256).map(|_| next()).collect();
        let c: Vec<f32> = a
            .iter()
            .zip(&b)
            .map(|(a, b)| -a * b * (1.0 + next() * 1e-3))
            .collect();
        let w = 0.1f32;
        let t = |v: &[f32]| Tensor::<1>::from_floats(v, &device());
        let values = |x: Tensor<1>| x.to_data().as_slice::<f32>().unwrap().to_vec();

        let fma_scalar: Vec<f32> = a.iter().zip(&c).map(|(a, c)| a.mul_add(w, *c)).collect();
        let fma: Vec<f32> = a
            .iter()
            .zip(&b)
            .zip(&c)
            .map(|((a, b), c)| a.mul_add(*b, *c))
            .collect();
        assert_eq!(values(torch_ops::mul_add_scalar_one_rounding(t(&a), w, t(&c))), fma_scalar);
        assert_eq!(values(torch_ops::mul_add_one_rounding(t(&a), t(&b), t(&c))), fma);
        // The comparison can fail: two roundings give other values here.
        assert_ne!(values(t(&a).mul_scalar(w).add(t(&c))), fma_scalar);
        assert_ne!(values(t(&a).mul(t(&b)).add(t(&c))), fma);
    }
}
