//! RMSprop, with torch.optim.RMSprop's semantics and defaults.
//!
//! Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning", lecture 6e, 2012,
//! <https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf>; the centered
//! variant is Graves, "Generating Sequences With Recurrent Neural Networks", 2013,
//! <https://arxiv.org/abs/1308.0850> (eq. 38–45).
//!
//! For each parameter θ with gradient g, at step t = 1, 2, … (torch's order):
//!
//! ```text
//! g ← −g                                   if maximize
//! g ← g + λ·θ                              if weight_decay λ ≠ 0 (L2)
//! v ← α·v + (1 − α)·g²                     running average of g² (torch's `square_avg`)
//! ḡ ← ḡ + (1 − α)·(g − ḡ)                  if centered: running average of g (`grad_avg`)
//! d = √(v − ḡ²) + ε                        if centered
//! d = √v + ε                               otherwise
//! b ← μ·b + g/d                            if momentum μ > 0 (torch's `momentum_buffer`)
//! θ ← θ − lr·b                             if momentum μ > 0
//! θ ← θ − lr·g/d                           otherwise
//! ```
//!
//! Deliberate differences from torch.optim.RMSprop: real tensors only, and no `foreach`,
//! `capturable` or `differentiable` (implementation switches that do not change the arithmetic
//! of the single-tensor path this file follows). Values that are infinite are refused, where
//! torch only refuses negative ones. Like torch, α is only required to be ≥ 0: α > 1 makes
//! `1 − α` negative and is the user's to avoid.
//!
//! `fused` (adamlab's keyword: torch's RMSprop has none; default true) steps with the fused
//! step beside the reference ([`kernel`]; on Flex, NdArray and CubeCL tensors): one pass over
//! θ, g, v and the buffers the options use (ḡ, b), in place, computing
//! [`RmsProp::reference_step`]'s arithmetic in its order, so the numbers are the same (bit for
//! bit on the CPU). Anything else (another backend or dtype, autodiff tensors) takes the
//! reference.

mod kernel;

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::torch_ops::lerp_two_roundings;
use crate::hyper::{Interval, Keyword, Kind};
use crate::keywords::{EPS_OR_ZERO, LR, MOMENTUM};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`RmsProp`], with `torch.optim.RMSprop`'s defaults.
    pub struct RmsPropConfig {
        LR => 0.01;
        ALPHA => {
            /// Smoothing constant α of the running averages (torch requires only α ≥ 0).
            alpha: f64 = 0.99,
        }
        EPS_OR_ZERO.help("added to the denominator √v for numerical stability") => {
            /// Added to the root, outside it (torch's default; burn's RmsProp defaults to 1e-5).
            eps: f64 = 1e-8,
        }
        WEIGHT_DECAY;
        MOMENTUM.help("momentum μ of the buffer b ← μ·b + g/d (0: none)") => {
            /// Momentum μ; 0 keeps no buffer (torch's default; burn's RmsProp defaults to 0.9).
            momentum: f64 = 0.0,
        }
        CENTERED => {
            /// Divide by `√(v − ḡ²)` instead of `√v`.
            centered: bool = false,
        }
        MAXIMIZE;
        FUSED_ADAMLAB;
    }
}

/// `alpha`: smoothing constant of the running averages. torch requires only α ≥ 0.
pub const ALPHA: Keyword = Keyword {
    name: "alpha",
    kind: Kind::Float(Interval::NON_NEGATIVE),
    help: "smoothing constant α of the running average of g² (and of g when centered)",
};
/// `centered`: normalise by an estimate of the variance rather than the raw second moment.
pub const CENTERED: Keyword = Keyword {
    name: "centered",
    kind: Kind::Bool,
    help: "divide by √(v − ḡ²), an estimate of the gradient's standard deviation (Graves)",
};

/// The registry's `rmsprop`: `torch.optim.RMSprop`.
pub const RMSPROP: OptimizerEntry = OptimizerEntry {
    name: "rmsprop",
    summary: "RMSprop (Hinton, 2012): steps scaled by a running RMS of the gradient; centered, momentum",
    reference: "torch.optim.RMSprop (torch 2.15)",
    params: RmsPropConfig::PARAMS,
    build: RmsPropConfig::build_entry,
};

/// RMSprop, computed as `torch.optim.RMSprop` computes it; see the [module documentation](self)
/// for the update rule.
///
/// `1 − α` is formed in f64 (a Python float in torch) and rounded to f32 once. The centered
/// average follows torch's `lerp`, including its switch to `g − (1 − w)·(g − ḡ)` when the weight
/// `w = 1 − α` is 0.5 or more (α ≤ 0.5), which torch makes for accuracy; torch's CPU kernel fuses
/// each lerp, and each `add(…, alpha=…)`, into one FMA, so the two agree to rounding, not bit for
/// bit.
#[derive(Clone, Debug)]
pub struct RmsProp {
    config: RmsPropConfig,
}

crate::builds!(RmsPropConfig => RmsProp);

impl RmsProp {
    /// One RMSprop step for one parameter tensor, written with tensor operations: the readable
    /// reference that the fused kernels must equal. Every backend and dtype runs it; see the
    /// [module](self) for the update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<RmsPropState<D>>,
    ) -> (Tensor<D>, Option<RmsPropState<D>>) {
        let RmsPropConfig {
            alpha,
            eps,
            weight_decay,
            momentum,
            centered,
            maximize,
            fused: _,
        } = self.config;

        // torch creates each buffer as zeros on the first step, and only those its options use.
        let (t, v, g_avg, b) = match state {
            Some(state) => (
                state.step + 1,
                state.square_avg,
                state.grad_avg,
                state.momentum_buffer,
            ),
            None => (1, grad.zeros_like(), None, None),
        };
        let g_avg = centered.then(|| g_avg.unwrap_or_else(|| grad.zeros_like()));
        let b = (momentum > 0.0).then(|| b.unwrap_or_else(|| grad.zeros_like()));

        let mut g = if maximize { grad.neg() } else { grad };
        if weight_decay != 0.0 {
            // g ← g + λ·θ, as torch's `grad.add(param, alpha=λ)`.
            g = g.add(theta.clone().mul_scalar(weight_decay));
        }

        // v ← α·v + (1 − α)·g², as torch's `square_avg.mul_(α).addcmul_(g, g, value=1 − α)`.
        let v = v
            .mul_scalar(alpha)
            .add(g.clone().mul_scalar(1.0 - alpha).mul(g.clone()));

        // d = √(v − ḡ²) + ε when centered, √v + ε otherwise.
        let g_avg = g_avg.map(|g_avg| lerp_two_roundings(g_avg, g.clone(), 1.0 - alpha));
        let d = match &g_avg {
            // As torch's `square_avg.addcmul(ḡ, ḡ, value=−1).sqrt_()`.
            Some(g_avg) => v.clone().sub(g_avg.clone().mul(g_avg.clone())).sqrt(),
            None => v.clone().sqrt(),
        }
        .add_scalar(eps);

        let (theta, b) = match b {
            Some(b) => {
                // b ← μ·b + g/d, as torch's `buf.mul_(μ).addcdiv_(g, d)`.
                let b = b.mul_scalar(momentum).add(g.div(d));
                // θ ← θ − lr·b, as torch's `param.add_(buf, alpha=−lr)`.
                (theta.sub(b.clone().mul_scalar(lr)), Some(b))
            }
            // θ ← θ − lr·g/d, as torch's `param.addcdiv_(g, d, value=−lr)`.
            None => (theta.sub(g.mul_scalar(lr).div(d)), None),
        };

        let state = RmsPropState {
            step: t,
            square_avg: v,
            momentum_buffer: b,
            grad_avg: g_avg,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(RmsProp, RmsPropState { square_avg, momentum_buffer, grad_avg });

/// The state RMSprop keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct RmsPropState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// Running average of g², v (torch's `square_avg`).
    pub square_avg: Tensor<D>,
    /// Momentum buffer b, when momentum > 0 (torch's `momentum_buffer`).
    pub momentum_buffer: Option<Tensor<D>>,
    /// Running average of g, ḡ, when centered (torch's `grad_avg`).
    pub grad_avg: Option<Tensor<D>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.01;
    const GRADS: [[f32; 2]; 2] = [[0.5, -1.0], [0.25, 0.5]];

    /// θ and the state after each of `grads`, from θ₀ = [1, −2].
    fn trajectory(config: RmsPropConfig, grads: &[[f32; 2]]) -> Vec<(TensorData, RmsPropState<1>)> {
        let look = |theta: &Tensor<1>, state: Option<&RmsPropState<1>>| {
            (theta.to_data(), state.unwrap().clone())
        };
        testing::trajectory(&config.build().unwrap(), LR, grads, look)
    }

    /// θ ~ 1 in f32 holds ~1e-7; 1e-6 leaves room for the order of operations only.
    fn assert_theta(actual: &TensorData, expected: [f32; 2]) {
        actual.assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::absolute(1e-6));
    }

    /// State values compared relative to their size, 1e-5 (a few f32 roundings).
    fn assert_state(actual: &Tensor<1>, expected: [f32; 2]) {
        actual
            .to_data()
            .assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::relative(1e-5));
    }

    /// Hand-computed in f64 (lr 0.01, torch's defaults):
    /// step 1, g = [0.5, −1]: v = 0.01·g² = [0.0025, 0.01], θ = θ₀ − 0.01·g/(0.1·|g|) = [0.9, −1.9];
    /// step 2, g = [0.25, 0.5]: v = [0.0031, 0.0124], θ = [0.855098703, −1.944901331].
    #[test]
    fn first_two_steps_match_hand_computed_values() {
        let steps = trajectory(RmsPropConfig::new(), &GRADS);
        assert_theta(&steps[0].0, [0.9, -1.9]);
        assert_state(&steps[0].1.square_avg, [0.0025, 0.01]);
        assert_theta(&steps[1].0, [0.855_098_7, -1.944_901_3]);
        assert_state(&steps[1].1.square_avg, [0.0031, 0.0124]);
        assert_eq!(steps[1].1.step, 2);
        assert!(steps[1].1.momentum_buffer.is_none() && steps[1].1.grad_avg.is_none());
    }

    /// α 0.5: v₁ = [0.125, 0.5], θ₂ = [0.977692899, −1.994022830].
    #[test]
    fn alpha_sets_the_averaging() {
        let steps = trajectory(RmsPropConfig::new().with_alpha(0.5), &GRADS);
        assert_state(&steps[0].1.square_avg, [0.125, 0.5]);
        assert_theta(&steps[1].0, [0.977_692_9, -1.994_022_8]);
    }

    /// Centered: ḡ₁ = 0.01·g = [0.005, −0.01], d = √(v − ḡ²) = √0.0099·|g|,
    /// θ₁ = [0.899496239, −1.899496229]; ḡ₂ = [0.00745, −0.0049], θ₂ = [0.854187485, −1.944441084].
    #[test]
    fn centered_divides_by_the_standard_deviation() {
        let steps = trajectory(RmsPropConfig::new().with_centered(true), &GRADS);
        assert_theta(&steps[0].0, [0.899_496_24, -1.899_496_2]);
        assert_state(steps[0].1.grad_avg.as_ref().unwrap(), [0.005, -0.01]);
        assert_theta(&steps[1].0, [0.854_187_5, -1.944_441_1]);
        assert_state(steps[1].1.grad_avg.as_ref().unwrap(), [0.007_45, -0.004_9]);
        assert!(steps[1].1.momentum_buffer.is_none());
    }

    /// Centered with α 0.3, where torch's lerp weight 0.7 takes its other form:
    /// ḡ₁ = 0.7·g = [0.35, −0.7], ḡ₂ = [0.28, 0.14], θ₂ = [0.959466184, −1.986449739].
    #[test]
    fn centered_with_a_large_lerp_weight() {
        let steps = trajectory(
            RmsPropConfig::new().with_centered(true).with_alpha(0.3),
            &GRADS,
        );
        assert_theta(&steps[0].0, [0.978_178_2, -1.978_178_2]);
        assert_state(steps[0].1.grad_avg.as_ref().unwrap(), [0.35, -0.7]);
        assert_state(steps[1].1.grad_avg.as_ref().unwrap(), [0.28, 0.14]);
        assert_theta(&steps[1].0, [0.959_466_2, -1.986_449_7]);
    }

    /// Momentum 0.9: b₁ = g/d = [10, −10] (to 1e-7), θ₁ = [0.9, −1.9];
    /// b₂ = 0.9·b₁ + g₂/d₂ = [13.4901299, −4.5098670], θ₂ = [0.765098721, −1.854901340].
    #[test]
    fn momentum_accumulates_the_normalised_gradient() {
        let steps = trajectory(RmsPropConfig::new().with_momentum(0.9), &GRADS);
        assert_theta(&steps[0].0, [0.9, -1.9]);
        assert_state(
            steps[0].1.momentum_buffer.as_ref().unwrap(),
            [9.999_998, -9.999_999],
        );
        assert_state(
            steps[1].1.momentum_buffer.as_ref().unwrap(),
            [13.490_13, -4.509_867],
        );
        assert_theta(&steps[1].0, [0.765_098_7, -1.854_901_3]);
        assert!(steps[1].1.grad_avg.is_none());
    }

    /// Centered and momentum 0.5 together: b₂ = [9.55606347, −0.53070300],
    /// θ₂ = [0.803935604, −1.894189199].
    #[test]
    fn centered_with_momentum() {
        let steps = trajectory(
            RmsPropConfig::new().with_centered(true).with_momentum(0.5),
            &GRADS,
        );
        assert_state(
            steps[1].1.momentum_buffer.as_ref().unwrap(),
            [9.556_063, -0.530_703],
        );
        assert_theta(&steps[1].0, [0.803_935_6, -1.894_189_2]);
    }

    /// λ 0.5: g₁ + λθ₀ = [1, −2], so θ₁ = [0.9, −1.9] again, but v₁ = [0.01, 0.04];
    /// θ₂ = [0.842460369, −1.877943567].
    #[test]
    fn weight_decay_is_added_to_the_gradient() {
        let steps = trajectory(RmsPropConfig::new().with_weight_decay(0.5), &GRADS);
        assert_theta(&steps[0].0, [0.9, -1.9]);
        assert_state(&steps[0].1.square_avg, [0.01, 0.04]);
        assert_theta(&steps[1].0, [0.842_460_4, -1.877_943_6]);
    }

    /// ε 1 is visible: θ₁ = [1 − 0.005/1.05, −2 + 0.01/1.1] = [0.995238095, −1.990909091].
    #[test]
    fn eps_is_added_outside_the_square_root() {
        let steps = trajectory(RmsPropConfig::new().with_eps(1.0), &GRADS);
        assert_theta(&steps[0].0, [0.995_238_1, -1.990_909_1]);
    }

    /// `maximize` climbs: θ moves along +g, θ₂ = [1.144901297, −2.055098669].
    #[test]
    fn maximize_moves_along_the_gradient() {
        let steps = trajectory(RmsPropConfig::new().with_maximize(true), &GRADS);
        assert_theta(&steps[0].0, [1.1, -2.1]);
        assert_theta(&steps[1].0, [1.144_901_3, -2.055_098_7]);
    }

}
