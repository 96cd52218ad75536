//! Resilient backpropagation (Rprop), with torch.optim.Rprop's semantics and defaults.
//!
//! Each weight has its own step size s, which grows while its gradient keeps its sign and
//! shrinks when the sign flips; the step takes only the sign of the gradient. For each parameter
//! θ with gradient g, at step t = 1, 2, …:
//!
//! ```text
//! g ← −g                                   if maximize
//! s ← lr, p ← 0                            at the first step (p: the previous gradient)
//! f = η₊ where g·p > 0, η₋ where g·p < 0, 1 where g·p = 0
//! s ← clamp(s·f, s_min, s_max)
//! g ← 0                                    where g·p < 0 (no step after a sign flip)
//! θ ← θ − sign(g)·s
//! p ← g
//! ```
//!
//! Riedmiller & Braun (1993), *A direct adaptive method for faster backpropagation learning: the
//! RPROP algorithm*, <https://doi.org/10.1109/ICNN.1993.298623>. As torch, this is the variant
//! without weight backtracking: after a sign flip the weight stays put and the stored gradient
//! is 0, so the next step neither grows nor shrinks s.
//!
//! The sign test is on the f32 product g·p, as torch's `grad.mul(prev).sign()`: a product that
//! underflows to 0 counts as "no sign", not as the product of the signs. The clamp is torch's
//! `clamp_(s_min, s_max)`: the lower bound first, then the upper, so `s_min > s_max` gives s_max.
//!
//! Deliberate differences from `torch.optim.Rprop`: none in the arithmetic, which is exact but
//! for the products s·f (one rounding each, as in torch). As in torch, the learning rate only
//! sets the initial step sizes: burn passes it to every step, and only the first step's is read.
//! A NaN gradient behaves as in torch, whose `sign(NaN)` is 0 like burn's: no step, s unchanged,
//! and the next step treats the NaN kept in p as no sign. An infinite `step_sizes` bound, which
//! torch accepts, is refused: specs take finite numbers. torch's `foreach`, `capturable` and
//! `differentiable` select implementations of the same arithmetic and have no counterpart here.

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::hyper::{Interval, Keyword, Kind};
use crate::keywords;
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Rprop`], with `torch.optim.Rprop`'s defaults.
    ///
    /// Rprop reads only the first step's learning rate, as its initial step size.
    pub struct RpropConfig {
        keywords::LR
            .help("initial step size s: only the first step's lr is read (a schedule has no effect)")
            => 0.01;
        Keyword {
            name: "etas",
            kind: Kind::Tuple(&[
                Kind::Float(Interval::new(0.0, false, 1.0, false)),
                Kind::Float(Interval::new(1.0, false, f64::INFINITY, false)),
            ]),
            help: "(η₋, η₊): step-size factors after a sign flip and while the sign holds",
        } => {
            /// Factor η₋ by which a step size shrinks when its gradient flips sign, in (0, 1).
            etaminus: f64 = 0.5,
            /// Factor η₊ by which a step size grows while its gradient keeps its sign, above 1.
            etaplus: f64 = 1.2,
        }
        Keyword {
            name: "step_sizes",
            kind: Kind::Tuple(&[Kind::Float(Interval::ANY), Kind::Float(Interval::ANY)]),
            help: "(s_min, s_max): the bounds each step size is clamped to",
        } => {
            /// Smallest step size (torch checks neither bound).
            step_size_min: f64 = 1e-6,
            /// Largest step size.
            step_size_max: f64 = 50.0,
        }
        MAXIMIZE;
    }
}

/// The registry's `rprop`: `torch.optim.Rprop`.
pub const RPROP: OptimizerEntry = OptimizerEntry {
    name: "rprop",
    summary: "Rprop (Riedmiller & Braun, 1993): per-weight step sizes driven by gradient signs",
    reference: "torch.optim.Rprop (torch 2.15)",
    params: RpropConfig::PARAMS,
    build: RpropConfig::build_entry,
};

/// Rprop, computed as `torch.optim.Rprop` computes it; see the [module](self) for the update
/// rule.
#[derive(Clone, Debug)]
pub struct Rprop {
    config: RpropConfig,
}

crate::builds!(RpropConfig => Rprop);

/// The state Rprop keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct RpropState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// The previous step's gradient p, 0 where its sign flipped (torch's `prev`).
    pub prev: Tensor<D>,
    /// Each weight's step size s (torch's `step_size`).
    pub step_size: Tensor<D>,
}

impl Rprop {
    /// One Rprop step for one parameter tensor, with tensor operations; see [`Rprop`] for the
    /// update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<RpropState<D>>,
    ) -> (Tensor<D>, Option<RpropState<D>>) {
        let RpropConfig {
            etaminus,
            etaplus,
            step_size_min,
            step_size_max,
            maximize,
        } = self.config;

        let g = if maximize { grad.neg() } else { grad };
        let (t, p, s) = match state {
            Some(state) => (state.step + 1, state.prev, state.step_size),
            // torch's `zeros_like(p)` and `full_like(grad, lr)`.
            None => (1, g.zeros_like(), g.full_like(lr)),
        };

        // The sign of the f32 product, as torch's `grad.mul(prev).sign()`.
        let product = g.clone().mul(p);
        let kept = product.clone().greater_elem(0.0);
        let flipped = product.lower_elem(0.0);
        // f = η₊ where the sign held, η₋ where it flipped, 1 elsewhere.
        let f = g
            .ones_like()
            .mask_fill(kept, etaplus)
            .mask_fill(flipped.clone(), etaminus);
        // s ← clamp(s·f, s_min, s_max), as torch's `step_size.mul_(sign).clamp_(min, max)`.
        let s = s.mul(f).clamp_min(step_size_min).clamp_max(step_size_max);
        // No step where the sign flipped; that zero is also the next step's p.
        let g = g.mask_fill(flipped, 0.0);
        // θ ← θ − sign(g)·s, as torch's `param.addcmul_(grad.sign(), step_size, value=−1)`.
        let theta = theta.sub(g.clone().sign().mul(s.clone()));

        let state = RpropState {
            step: t,
            prev: g,
            step_size: s,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(Rprop, RpropState { prev, step_size }, unfused);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::Optimizer;
    use crate::testing::{self, tensor};
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.1;

    /// θ and the state after each of `grads` at the learning rates `lrs`, from θ₀ = [1, −2].
    fn trajectory(
        config: RpropConfig,
        lrs: &[f64],
        grads: &[[f32; 2]],
    ) -> Vec<(TensorData, RpropState<1>)> {
        let look = |theta: &Tensor<1>, state: Option<&RpropState<1>>| {
            (theta.to_data(), state.unwrap().clone())
        };
        testing::trajectory_at(&config.build().unwrap(), lrs.iter().copied(), grads, look)
    }

    // f32 holds these to ~1e-7; 1e-6 leaves room for the order of operations only.
    fn assert_close(actual: &TensorData, expected: [f32; 2]) {
        actual.assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::absolute(1e-6));
    }

    /// lr 0.1, etas (0.5, 1.2). Step 1, g = [0.5, −1]: no previous gradient, s = [0.1, 0.1],
    /// θ₁ = [0.9, −1.9]. Step 2, g = [0.25, 0.5]: the first sign held (s = 0.12), the second
    /// flipped (s = 0.05, no step, p = 0): θ₂ = [0.78, −1.9]. Step 3, g = [1, −1]:
    /// s = [0.144, 0.05] (the flipped weight's p is 0, so its s neither grows nor shrinks),
    /// θ₃ = [0.636, −1.85].
    #[test]
    fn step_sizes_grow_while_the_sign_holds_and_shrink_without_a_step_when_it_flips() {
        let grads = [[0.5, -1.0], [0.25, 0.5], [1.0, -1.0]];
        let steps = trajectory(RpropConfig::new(), &[LR; 3], &grads);
        let expected_theta = [[0.9, -1.9], [0.78, -1.9], [0.636, -1.85]];
        let expected_s = [[0.1, 0.1], [0.12, 0.05], [0.144, 0.05]];
        let expected_prev = [[0.5, -1.0], [0.25, 0.0], [1.0, -1.0]];
        for (i, (theta, state)) in steps.iter().enumerate() {
            assert_eq!(state.step, i + 1);
            assert_close(theta, expected_theta[i]);
            assert_close(&state.step_size.to_data(), expected_s[i]);
            assert_close(&state.prev.to_data(), expected_prev[i]);
        }
    }

    /// s is clamped to [s_min, s_max], the lower bound first as torch's `clamp_`: with
    /// s_max = 0.11, step 2's s = [0.11, 0.05]; with s_min = 0.08, [0.12, 0.08]; with
    /// s_min = 1 > s_max = 0.5, every s is 0.5 from the first step.
    #[test]
    fn step_sizes_are_clamped_as_torch_clamps() {
        let grads = [[0.5, -1.0], [0.25, 0.5]];
        let s = |config: RpropConfig, step: usize| {
            trajectory(config, &[LR; 2], &grads)[step]
                .1
                .step_size
                .to_data()
        };
        assert_close(
            &s(RpropConfig::new().with_step_size_max(0.11), 1),
            [0.11, 0.05],
        );
        assert_close(
            &s(RpropConfig::new().with_step_size_min(0.08), 1),
            [0.12, 0.08],
        );
        let crossed = RpropConfig::new()
            .with_step_size_min(1.0)
            .with_step_size_max(0.5);
        assert_close(&s(crossed, 0), [0.5, 0.5]);
    }

    /// A zero gradient neither moves its weight nor changes its step size, and the next step
    /// treats it as no sign: g = [0, −1] then [0.3, −1] gives θ₁ = [1, −1.9], then s = [0.1, 0.12]
    /// and θ₂ = [0.9, −1.78].
    #[test]
    fn a_zero_gradient_neither_steps_nor_changes_the_step_size() {
        let steps = trajectory(RpropConfig::new(), &[LR; 2], &[[0.0, -1.0], [0.3, -1.0]]);
        assert_close(&steps[0].0, [1.0, -1.9]);
        assert_close(&steps[1].1.step_size.to_data(), [0.1, 0.12]);
        assert_close(&steps[1].0, [0.9, -1.78]);
    }

    /// A NaN gradient as torch 2.15 treats it (its `sign(NaN)` is 0): no step and s unchanged,
    /// then the NaN kept in p counts as no sign. From θ₀ = [1, 2] at lr 0.01 with gradients
    /// [1, 1], [NaN, 1], [1, 1], [1, 1], torch gives θ = [0.99, 1.99], [0.99, 1.978],
    /// [0.98, 1.9636], [0.968, 1.94632]: the first weight's s grows again only at step 4.
    #[test]
    fn a_nan_gradient_takes_no_step_and_leaves_the_step_size_as_torch() {
        let rprop = RpropConfig::new().build().unwrap();
        let mut theta = tensor([1.0, 2.0]);
        let mut state = None;
        let grads = [[1.0, 1.0], [f32::NAN, 1.0], [1.0, 1.0], [1.0, 1.0]];
        let expected = [
            [0.99, 1.99],
            [0.99, 1.978],
            [0.98, 1.9636],
            [0.968, 1.94632],
        ];
        for (g, expected) in grads.iter().zip(expected) {
            (theta, state) = rprop.step(0.01, theta.clone(), tensor(*g), state.take());
            assert_close(&theta.to_data(), expected);
        }
    }

    /// Only the first step's learning rate is read (torch reads `lr` only to fill the initial
    /// step sizes): a learning rate of 5 at step 2 changes nothing.
    #[test]
    fn only_the_first_learning_rate_sets_the_step_sizes() {
        let grads = [[0.5, -1.0], [0.25, 0.5]];
        let constant = trajectory(RpropConfig::new(), &[LR, LR], &grads);
        let changed = trajectory(RpropConfig::new(), &[LR, 5.0], &grads);
        constant[1].0.assert_eq(&changed[1].0, true);
    }

    /// `maximize` climbs: θ₁ = θ₀ + 0.1·sign(g₁) = [1.1, −2.1].
    #[test]
    fn maximize_moves_along_the_gradient() {
        let steps = trajectory(
            RpropConfig::new().with_maximize(true),
            &[LR],
            &[[0.5, -1.0]],
        );
        assert_close(&steps[0].0, [1.1, -2.1]);
    }

}
