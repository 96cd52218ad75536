//! Adadelta, with torch.optim.Adadelta's semantics and defaults.
//!
//! Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012,
//! <https://arxiv.org/abs/1212.5701> (Algorithm 1).
//!
//! For each parameter θ with gradient g, at step t = 1, 2, … (torch's order):
//!
//! ```text
//! g ← −g                                   if maximize
//! g ← g + λ·θ                              if weight_decay λ ≠ 0 (L2)
//! v ← ρ·v + (1 − ρ)·g²                     running average of g² (torch's `square_avg`)
//! Δ = √(u + ε) / √(v + ε) · g              the update, RMS[Δθ]/RMS[g]·g
//! u ← ρ·u + (1 − ρ)·Δ²                     running average of Δ² (torch's `acc_delta`)
//! θ ← θ − lr·Δ
//! ```
//!
//! The paper has no learning rate (lr = 1, torch's default) and no weight decay; both are
//! torch's. Deliberate differences from torch.optim.Adadelta: real tensors only, and no
//! `foreach`, `capturable` or `differentiable` (implementation switches that do not change the
//! arithmetic of the single-tensor path this file follows). Values that are infinite are
//! refused, where torch only refuses negative ones.

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::hyper::{Interval, Keyword, Kind};
use crate::keywords::{EPS_OR_ZERO, LR};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Adadelta`], with `torch.optim.Adadelta`'s defaults.
    ///
    /// torch's default learning rate, 1.0, is the paper's method.
    pub struct AdadeltaConfig {
        LR => 1.0;
        Keyword {
            name: "rho",
            kind: Kind::Float(Interval::UNIT),
            help: "decay rate of the running averages of g² and of the squared updates",
        } => {
            /// Decay rate ρ of the running averages of g² and Δ².
            rho: f64 = 0.9,
        }
        EPS_OR_ZERO.help("added inside both square roots √(u + ε) and √(v + ε)") => {
            /// Added inside both square roots.
            eps: f64 = 1e-6,
        }
        WEIGHT_DECAY;
        MAXIMIZE;
    }
}

/// The registry's `adadelta`: `torch.optim.Adadelta`.
pub const ADADELTA: OptimizerEntry = OptimizerEntry {
    name: "adadelta",
    summary: "Adadelta (Zeiler, 2012): steps scaled by RMS of past updates over RMS of gradients",
    reference: "torch.optim.Adadelta (torch 2.15)",
    params: AdadeltaConfig::PARAMS,
    build: AdadeltaConfig::build_entry,
};

/// Adadelta, computed as `torch.optim.Adadelta` computes it; see the [module
/// documentation](self) for the update rule.
///
/// `1 − ρ` is formed in f64 (a Python float in torch) and rounded to f32 once, where it meets
/// the tensors; Δ is evaluated in torch's order, `(√(u + ε) / √(v + ε))·g`.
#[derive(Clone, Debug)]
pub struct Adadelta {
    config: AdadeltaConfig,
}

crate::builds!(AdadeltaConfig => Adadelta);

impl Adadelta {
    /// One Adadelta step for one parameter tensor, with tensor operations.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdadeltaState<D>>,
    ) -> (Tensor<D>, Option<AdadeltaState<D>>) {
        let AdadeltaConfig {
            rho,
            eps,
            weight_decay,
            maximize,
        } = self.config;

        let (t, v, u) = match state {
            Some(state) => (state.step + 1, state.square_avg, state.acc_delta),
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };

        let mut g = if maximize { grad.neg() } else { grad };
        if weight_decay != 0.0 {
            // g ← g + λ·θ, as torch's `grad.add(param, alpha=λ)`.
            g = g.add(theta.clone().mul_scalar(weight_decay));
        }

        // v ← ρ·v + (1 − ρ)·g², as torch's `square_avg.mul_(ρ).addcmul_(g, g, value=1 − ρ)`.
        let v = v
            .mul_scalar(rho)
            .add(g.clone().mul_scalar(1.0 - rho).mul(g.clone()));
        // RMS[g] = √(v + ε).
        let std = v.clone().add_scalar(eps).sqrt();
        // Δ = RMS[Δθ]/RMS[g]·g, as torch's `acc_delta.add(ε).sqrt_().div_(std).mul_(g)`.
        let delta = u.clone().add_scalar(eps).sqrt().div(std).mul(g);
        // u ← ρ·u + (1 − ρ)·Δ².
        let u = u
            .mul_scalar(rho)
            .add(delta.clone().mul_scalar(1.0 - rho).mul(delta.clone()));
        // θ ← θ − lr·Δ, as torch's `param.add_(Δ, alpha=−lr)`.
        let theta = theta.sub(delta.mul_scalar(lr));

        let state = AdadeltaState {
            step: t,
            square_avg: v,
            acc_delta: u,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(Adadelta, AdadeltaState { square_avg, acc_delta }, unfused);

/// The state Adadelta keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct AdadeltaState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// Running average of g², v (torch's `square_avg`; the paper's E\[g²\]).
    pub square_avg: Tensor<D>,
    /// Running average of the squared updates, u (torch's `acc_delta`; the paper's E\[Δx²\]).
    pub acc_delta: Tensor<D>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use burn::tensor::{TensorData, Tolerance};

    const GRADS: [[f32; 2]; 2] = [[0.5, -1.0], [0.25, 0.5]];

    /// θ, v and u after one step.
    struct Step {
        theta: TensorData,
        square_avg: TensorData,
        acc_delta: TensorData,
    }

    /// θ, v and u after each of `grads` at learning rate `lr`, from θ₀ = [1, −2].
    fn trajectory(config: AdadeltaConfig, lr: f64, grads: &[[f32; 2]]) -> Vec<Step> {
        let look = |theta: &Tensor<1>, state: Option<&AdadeltaState<1>>| {
            let s = state.unwrap();
            Step {
                theta: theta.to_data(),
                square_avg: s.square_avg.to_data(),
                acc_delta: s.acc_delta.to_data(),
            }
        };
        testing::trajectory(&config.build().unwrap(), lr, grads, look)
    }

    /// θ ~ 1 in f32 holds ~1e-7; 1e-6 leaves room for the order of operations only.
    fn assert_theta(actual: &TensorData, expected: [f32; 2]) {
        actual.assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::absolute(1e-6));
    }

    /// State values span 1e-6 to 0.1: compared relative to their size, 1e-5 (a few f32 roundings).
    fn assert_state(actual: &TensorData, expected: [f32; 2]) {
        actual.assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::relative(1e-5));
    }

    /// Hand-computed in f64 with the paper's formulas (lr 1, ρ 0.9, ε 1e-6):
    /// step 1, g = [0.5, −1]: v = [0.025, 0.1], Δ = √1e-6/√(v + 1e-6)·g = [3.16221442e-3,
    /// −3.16226185e-3], u = 0.1·Δ² = [9.9996000e-7, 9.9999000e-7], θ = [0.996837786, −1.996837738];
    /// step 2, g = [0.25, 0.5]: v = [0.02875, 0.115], Δ = [2.08508703e-3, 2.08512986e-3],
    /// u = [1.33472279e-6, 1.33476765e-6], θ = [0.994752699, −1.998922868].
    #[test]
    fn first_two_steps_match_hand_computed_values() {
        let steps = trajectory(AdadeltaConfig::new(), 1.0, &GRADS);
        assert_theta(&steps[0].theta, [0.996_837_8, -1.996_837_7]);
        assert_state(&steps[0].square_avg, [0.025, 0.1]);
        assert_state(&steps[0].acc_delta, [9.999_6e-7, 9.999_9e-7]);
        assert_theta(&steps[1].theta, [0.994_752_7, -1.998_922_9]);
        assert_state(&steps[1].square_avg, [0.028_75, 0.115]);
        assert_state(&steps[1].acc_delta, [1.334_722_8e-6, 1.334_767_7e-6]);
    }

    /// ρ 0.5: step 1 v = [0.125, 0.5], Δ = [1.41420791e-3, −1.41421215e-3];
    /// step 2 θ = [0.997431100, −1.999740486].
    #[test]
    fn rho_sets_the_averaging() {
        let steps = trajectory(AdadeltaConfig::new().with_rho(0.5), 1.0, &GRADS);
        assert_theta(&steps[0].theta, [0.998_585_8, -1.998_585_8]);
        assert_state(&steps[0].square_avg, [0.125, 0.5]);
        assert_theta(&steps[1].theta, [0.997_431_1, -1.999_740_5]);
    }

    /// ε 1e-2 enters both roots: step 1 Δ = √0.01/√(v + 0.01)·g = [0.267261242, −0.301511345],
    /// step 2 θ = [0.566456559, −1.893890340].
    #[test]
    fn eps_enters_both_square_roots() {
        let steps = trajectory(AdadeltaConfig::new().with_eps(1e-2), 1.0, &GRADS);
        assert_theta(&steps[0].theta, [0.732_738_76, -1.698_488_7]);
        assert_state(&steps[0].acc_delta, [7.142_857e-3, 9.090_909e-3]);
        assert_theta(&steps[1].theta, [0.566_456_56, -1.893_890_3]);
    }

    /// λ 0.5: g₁ + λθ₀ = [1, −2], g₂ + λθ₁ = [0.748418893, −0.498418869];
    /// θ₂ = [0.994067856, −1.995701493].
    #[test]
    fn weight_decay_is_added_to_the_gradient() {
        let steps = trajectory(AdadeltaConfig::new().with_weight_decay(0.5), 1.0, &GRADS);
        assert_state(&steps[0].square_avg, [0.1, 0.4]);
        assert_theta(&steps[0].theta, [0.996_837_74, -1.996_837_7]);
        assert_state(&steps[1].square_avg, [0.146_013_08, 0.384_842_14]);
        assert_theta(&steps[1].theta, [0.994_067_86, -1.995_701_5]);
    }

    /// lr scales Δ and nothing else: lr 0.5 halves the first step, and the state matches lr 1's.
    #[test]
    fn lr_scales_the_update_only() {
        let full = trajectory(AdadeltaConfig::new(), 1.0, &GRADS);
        let half = trajectory(AdadeltaConfig::new(), 0.5, &GRADS);
        assert_theta(&half[0].theta, [0.998_418_9, -1.998_418_9]);
        assert_theta(&half[1].theta, [0.997_376_35, -1.999_461_4]);
        half[1].acc_delta.assert_eq(&full[1].acc_delta, true);
    }

    /// `maximize` climbs: its first step moves along +g instead of −g.
    #[test]
    fn maximize_moves_along_the_gradient() {
        let steps = trajectory(AdadeltaConfig::new().with_maximize(true), 1.0, &GRADS[..1]);
        assert_theta(&steps[0].theta, [1.003_162_2, -2.003_162_3]);
    }

}
