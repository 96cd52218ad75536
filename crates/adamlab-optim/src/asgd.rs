//! Averaged stochastic gradient descent (ASGD), with torch.optim.ASGD's semantics and defaults.
//!
//! SGD with a decaying step size η and a running average `ax` of the iterates, which starts
//! averaging after step t₀. For each parameter θ with gradient g, at step t = 1, 2, …:
//!
//! ```text
//! g ← −g                                   if maximize
//! η ← lr, μ ← 1, ax ← 0                    at the first step
//! g ← g + λ_wd·θ                           if weight_decay λ_wd ≠ 0 (L2)
//! θ ← θ·(1 − λ·η)                          decay term
//! θ ← θ − η·g
//! ax ← ax + μ·(θ − ax)                     if μ ≠ 1
//! ax ← θ                                   otherwise
//! η ← lr / (1 + λ·lr·t)^α                  for the next step
//! μ ← 1 / max(1, t − t₀)
//! ```
//!
//! Polyak & Juditsky (1992), *Acceleration of stochastic approximation by averaging*,
//! <https://doi.org/10.1137/0330046>; the step-size schedule is Xu (2011), *Towards optimal one
//! pass large scale learning with averaged stochastic gradient descent*,
//! <https://arxiv.org/abs/1107.2490>.
//!
//! torch keeps η and μ as 0-dim f32 tensors but computes their new values as Python floats
//! (f64): here they are f32 scalars, computed in f64 and rounded to f32 as torch's `copy_` does,
//! and read back into f64 for `1 − λ·η` as torch's `.item()` does. The averaged `ax` is kept but,
//! as in torch, not used for anything: the weights trained are also the weights evaluated.
//!
//! Deliberate differences from `torch.optim.ASGD`: none in the arithmetic. torch evaluates
//! `a.add(b, alpha=c)` as one fused multiply-add on CPU; burn has no fused op, so `a + c·b`
//! rounds twice. The two agree to f32 rounding, not bit for bit (measured by the replay cases);
//! where `θ − η·g` cancels to near 0 from large operands, the difference is an ulp of the
//! operands rather than of the result.
//! As in torch, the first step's learning rate is the first η and each step's learning rate
//! sets the next η. torch's `foreach`, `capturable` and `differentiable` select implementations
//! of the same arithmetic and have no counterpart here.

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::hyper::{Interval, Keyword, Kind};
use crate::keywords::LR;
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Asgd`], with `torch.optim.ASGD`'s defaults.
    pub struct AsgdConfig {
        LR => 0.01;
        Keyword {
            name: "lambd",
            kind: Kind::Float(Interval::NON_NEGATIVE),
            help: "decay term λ: θ ← θ·(1 − λη), and η = lr/(1 + λ·lr·t)^α",
        } => {
            /// Decay term λ: shrinks θ by `1 − λ·η` each step and slows η's decay.
            lambd: f64 = 1e-4,
        }
        Keyword {
            name: "alpha",
            kind: Kind::Float(Interval::NON_NEGATIVE),
            help: "power α of the step size's decay η = lr/(1 + λ·lr·t)^α",
        } => {
            /// Power α of η's decay.
            alpha: f64 = 0.75,
        }
        Keyword {
            name: "t0",
            kind: Kind::Float(Interval::ANY),
            help: "the step after which ax averages the iterates (μ = 1/max(1, t − t₀))",
        } => {
            /// The step t₀ after which `ax` averages the iterates (torch accepts any number).
            t0: f64 = 1e6,
        }
        WEIGHT_DECAY;
        MAXIMIZE;
    }
}

/// The registry's `asgd`: `torch.optim.ASGD`.
pub const ASGD: OptimizerEntry = OptimizerEntry {
    name: "asgd",
    summary: "averaged SGD (Polyak & Juditsky, 1992) with torch.optim.ASGD's decaying step size",
    reference: "torch.optim.ASGD (torch 2.15)",
    params: AsgdConfig::PARAMS,
    build: AsgdConfig::build_entry,
};

/// ASGD, computed as `torch.optim.ASGD` computes it; see the [module](self) for the update rule.
#[derive(Clone, Debug)]
pub struct Asgd {
    config: AsgdConfig,
}

crate::builds!(AsgdConfig => Asgd);

/// The state ASGD keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct AsgdState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// The step size η of the next step, in f32 as torch's 0-dim tensor.
    pub eta: f32,
    /// The averaging weight μ of the next step, in f32 as torch's 0-dim tensor.
    pub mu: f32,
    /// The running average of θ (torch's `ax`).
    pub ax: Tensor<D>,
}

impl Asgd {
    /// One ASGD step for one parameter tensor, with tensor operations; see [`Asgd`] for the
    /// update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AsgdState<D>>,
    ) -> (Tensor<D>, Option<AsgdState<D>>) {
        let AsgdConfig {
            lambd,
            alpha,
            t0,
            weight_decay,
            maximize,
        } = self.config;

        let mut g = if maximize { grad.neg() } else { grad };
        let (t, eta, mu, ax) = match state {
            Some(state) => (state.step + 1, state.eta, state.mu, state.ax),
            None => (1, lr as f32, 1.0, theta.zeros_like()),
        };
        if weight_decay != 0.0 {
            // g ← g + λ_wd·θ, as torch's `grad.add(param, alpha=weight_decay)`.
            g = g.add(theta.clone().mul_scalar(weight_decay));
        }

        // η read back as a Python float, as torch's `eta.item()`.
        let eta = f64::from(eta);
        // θ ← θ·(1 − λ·η): the factor in f64, rounded to f32 by the multiplication.
        let theta = theta.mul_scalar(1.0 - lambd * eta);
        // θ ← θ − η·g, as torch's `param.add_(grad, alpha=−eta)`.
        let theta = theta.sub(g.mul_scalar(eta));

        let ax = if mu != 1.0 {
            // ax ← ax + μ·(θ − ax), as torch's `ax.add_(param.sub(ax).mul_(mu))`.
            ax.clone().add(theta.clone().sub(ax).mul_scalar(mu))
        } else {
            theta.clone()
        };

        // The next η and μ, computed in f64 as Python does and stored in f32 as torch's `copy_`.
        let t_f64 = t as f64;
        let eta = (lr / (1.0 + lambd * lr * t_f64).powf(alpha)) as f32;
        let mu = (1.0 / (t_f64 - t0).max(1.0)) as f32;

        let state = AsgdState {
            step: t,
            eta,
            mu,
            ax,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(Asgd, AsgdState { ax }, unfused);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.1;

    /// θ and the state after each of `grads`, from θ₀ = [1, −2].
    fn trajectory(config: AsgdConfig, grads: &[[f32; 2]]) -> Vec<(TensorData, AsgdState<1>)> {
        let look = |theta: &Tensor<1>, state: Option<&AsgdState<1>>| {
            (theta.to_data(), state.unwrap().clone())
        };
        testing::trajectory(&config.build().unwrap(), LR, grads, look)
    }

    // f32 holds these to ~1e-7; 1e-6 leaves room for the order of operations only.
    fn assert_close(actual: &TensorData, expected: [f32; 2]) {
        actual.assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::absolute(1e-6));
    }

    /// torch's defaults, lr 0.1, g = [0.5, −1]: θ₁ = θ₀·(1 − 1e-4·0.1) − 0.1·g
    /// = [0.94999, −1.89998]; ax = θ₁ (μ = 1); the next η = 0.1/(1 + 1e-5)^0.75, μ stays 1
    /// (t − t₀ is far below 1).
    #[test]
    fn first_step_decays_then_steps_and_schedules_the_next_eta() {
        let steps = trajectory(AsgdConfig::new(), &[[0.5, -1.0]]);
        let (theta, state) = &steps[0];
        assert_close(theta, [0.94999, -1.89998]);
        assert_close(&state.ax.to_data(), [0.94999, -1.89998]);
        assert_eq!(state.step, 1);
        assert_eq!(state.eta, (0.1 / 1.00001f64.powf(0.75)) as f32);
        assert_eq!(state.mu, 1.0);
    }

    /// λ = 0.5, α = 1, t₀ = 0, so that η = 0.1/(1 + 0.05·t) and μ = 1/max(1, t):
    /// step 1, g = [0.5, −1], η = 0.1: θ₁ = 0.95·θ₀ − 0.1·g = [0.9, −1.8], ax = θ₁;
    /// step 2, g = [0.25, 0.5], η = 0.1/1.05: θ₂ = θ₁·(1 − 0.5η) − η·g = [0.8333333, −1.7619048],
    /// ax = θ₂ (μ is still 1);
    /// step 3, g = [1, −1], η = 0.1/1.1: θ₃ = [0.7045455, −1.5909091], μ = 1/2 so
    /// ax = (θ₂ + θ₃)/2 = [0.7689394, −1.6764069]; then η = 0.1/1.15, μ = 1/3.
    #[test]
    fn ax_averages_the_iterates_after_t0() {
        let config = AsgdConfig::new()
            .with_lambd(0.5)
            .with_alpha(1.0)
            .with_t0(0.0);
        let steps = trajectory(config, &[[0.5, -1.0], [0.25, 0.5], [1.0, -1.0]]);
        let thetas = [
            [0.9, -1.8],
            [0.833_333_3, -1.761_904_8],
            [0.704_545_5, -1.590_909_1],
        ];
        let axs = [
            [0.9, -1.8],
            [0.833_333_3, -1.761_904_8],
            [0.768_939_4, -1.676_406_9],
        ];
        let etas = [0.1 / 1.05, 0.1 / 1.1, 0.1 / 1.15];
        let mus = [1.0, 0.5, 1.0 / 3.0];
        for (i, (theta, state)) in steps.iter().enumerate() {
            assert_close(theta, thetas[i]);
            assert_close(&state.ax.to_data(), axs[i]);
            // η and μ: f64 values rounded to f32, exactly as torch stores them.
            assert_eq!(state.eta, etas[i] as f32);
            assert_eq!(state.mu, mus[i] as f32);
        }
    }

    /// λ = 0, weight decay 0.5: g + 0.5·θ₀ = [1, −2], θ₁ = [0.9, −1.8].
    #[test]
    fn weight_decay_adds_lambda_theta_to_the_gradient() {
        let config = AsgdConfig::new().with_lambd(0.0).with_weight_decay(0.5);
        assert_close(&trajectory(config, &[[0.5, -1.0]])[0].0, [0.9, -1.8]);
    }

    /// `maximize` climbs: with λ = 0, θ₁ = θ₀ + 0.1·g = [1.05, −2.1].
    #[test]
    fn maximize_moves_along_the_gradient() {
        let config = AsgdConfig::new().with_lambd(0.0).with_maximize(true);
        assert_close(&trajectory(config, &[[0.5, -1.0]])[0].0, [1.05, -2.1]);
    }

}
