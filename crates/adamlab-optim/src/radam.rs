//! RAdam, with torch.optim.RAdam's semantics and defaults.

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::torch_ops;
use crate::hyper::CycledMomentum;
use crate::keywords::{EPS_OR_ZERO, LR};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`RAdam`], with `torch.optim.RAdam`'s defaults.
    pub struct RAdamConfig {
        LR => 0.001;
        BETAS;
        EPS_OR_ZERO.help("added to √v in the adaptive learning rate √(1 − β₂ᵗ)/(√v + eps)") => {
            /// Added to `√v` (not to `√v̂`) in the adaptive learning rate (torch accepts 0).
            eps: f64 = 1e-8,
        }
        WEIGHT_DECAY_L2_OR_DECOUPLED;
        DECOUPLED_WEIGHT_DECAY;
        MAXIMIZE;
    }
}

/// The registry's `radam`: `torch.optim.RAdam`.
pub const RADAM: OptimizerEntry = OptimizerEntry {
    name: "radam",
    summary: "RAdam (Liu et al., 2020): Adam with the variance of its adaptive rate rectified",
    reference: "torch.optim.RAdam (torch 2.15)",
    params: RAdamConfig::PARAMS,
    build: RAdamConfig::build_entry,
};

/// RAdam (Liu et al., 2020, "On the Variance of the Adaptive Learning Rate and Beyond",
/// <https://arxiv.org/abs/1908.03265>), computed as `torch.optim.RAdam` computes it.
///
/// For each parameter θ with gradient g, at step t = 1, 2, …:
///
/// ```text
/// g ← −g                                   if maximize
/// θ ← θ·(1 − lr·λ)                         if decoupled weight decay (RAdamW)
/// g ← g + λ·θ                              otherwise, L2 weight decay
/// m ← β₁·m + (1 − β₁)·g                    first moment
/// v ← β₂·v + (1 − β₂)·g²                   second moment
/// m̂ = m / (1 − β₁ᵗ)
/// ρ∞ = 2/(1 − β₂) − 1                      length of the approximated SMA
/// ρₜ = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ)
/// if ρₜ > 5:                               the variance is tractable: rectify it
///     l = √(1 − β₂ᵗ) / (√v + ε)            adaptive learning rate
///     r = √((ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ))
///     θ ← θ − m̂·lr·l·r
/// else:                                    early steps: SGD with momentum
///     θ ← θ − m̂·lr
/// ```
///
/// As torch does, ε is added to `√v` before the bias correction `√(1 − β₂ᵗ)` multiplies it in
/// (the paper adds it to `√v̂`). The bias corrections, ρₜ and r are f64 (Python floats), and the
/// tensor products run in torch's order: `((m̂·lr)·l)·r`, with `l` as torch's
/// `√(1 − β₂ᵗ) / (√v + ε)` evaluates it, `(√v + ε)⁻¹·√(1 − β₂ᵗ)`.
/// The first moment (torch's `lerp`), the second moment and the L2 decay are each rounded once
/// ([`torch_ops`]'s one-rounding policy, torch's CPU kernels'). torch's CPU
/// `sqrt` is not correctly rounded (an ulp off on about a fifth of f32 inputs, AVX2), so the
/// parameters agree with torch's to an ulp, not bit for bit.
#[derive(Clone, Debug)]
pub struct RAdam {
    config: RAdamConfig,
    /// β₁ set by a schedule at every step (OneCycleLR), when one cycles it.
    cycled_beta1: Option<CycledMomentum>,
}

crate::builds!(RAdamConfig => RAdam { cycled_beta1 });

/// The state RAdam keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct RAdamState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// First moment m (torch's `exp_avg`).
    pub exp_avg: Tensor<D>,
    /// Second moment v (torch's `exp_avg_sq`).
    pub exp_avg_sq: Tensor<D>,
}

/// ρₜ, the length of the approximated simple moving average at step t, with ρ∞; in f64 and in
/// torch's order.
fn sma_lengths(beta2: f64, step: f64) -> (f64, f64) {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let rho_t = rho_inf - 2.0 * step * beta2.powf(step) / (1.0 - beta2.powf(step));
    (rho_inf, rho_t)
}

impl RAdam {
    /// One RAdam step for one parameter tensor, with tensor operations; see [`RAdam`] for the
    /// update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<RAdamState<D>>,
    ) -> (Tensor<D>, Option<RAdamState<D>>) {
        let RAdamConfig {
            beta1: _,
            beta2,
            eps,
            weight_decay,
            decoupled_weight_decay,
            maximize,
        } = self.config;
        let beta1 = self.beta1();

        let g = if maximize { grad.neg() } else { grad };
        let (theta, g) = torch_ops::weight_decay(theta, g, lr, weight_decay, decoupled_weight_decay);

        let (t, m, v) = match state {
            Some(state) => (state.step + 1, state.exp_avg, state.exp_avg_sq),
            None => (1, g.zeros_like(), g.zeros_like()),
        };
        let step = t as f64;

        // m ← β₁·m + (1 − β₁)·g, as torch's `exp_avg.lerp_(g, 1 − β₁)`.
        let m = torch_ops::lerp_one_rounding(m, g.clone(), 1.0 - beta1);
        // v ← β₂·v + (1 − β₂)·g², as torch's `exp_avg_sq.mul_(β₂).addcmul_(g, g, 1 − β₂)`.
        let v = torch_ops::mul_add_one_rounding(g.clone().mul_scalar(1.0 - beta2), g, v.mul_scalar(beta2));

        // In f64, as Python evaluates them.
        let bias_correction1 = 1.0 - beta1.powf(step);
        let bias_correction2 = 1.0 - beta2.powf(step);
        let m_hat = m.clone().div_scalar(bias_correction1);
        let (rho_inf, rho_t) = sma_lengths(beta2, step);

        let update = if rho_t > 5.0 {
            // l = √(1 − β₂ᵗ)/(√v + ε), as torch's `bias_correction2 ** 0.5 / (√v + ε)`, which
            // Python evaluates as `(√v + ε).reciprocal() * bias_correction2 ** 0.5`.
            let adaptive_lr = v
                .clone()
                .sqrt()
                .add_scalar(eps)
                .recip()
                .mul_scalar(bias_correction2.powf(0.5));
            let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .powf(0.5);
            m_hat.mul_scalar(lr).mul(adaptive_lr).mul_scalar(rect)
        } else {
            m_hat.mul_scalar(lr)
        };
        let theta = theta.sub(update);

        let state = RAdamState {
            step: t,
            exp_avg: m,
            exp_avg_sq: v,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(RAdam, RAdamState { exp_avg, exp_avg_sq }, unfused);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, thetas};
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.1;

    /// θ after each of `grads`, from θ₀ = [1, −2].
    fn trajectory(config: RAdamConfig, grads: &[[f32; 2]]) -> Vec<TensorData> {
        thetas(&config.build().unwrap(), LR, grads)
    }

    /// ρₜ with torch's defaults (β₂ = 0.999): ρ∞ = 1999, and ρₜ first exceeds 5 at t = 6.
    #[test]
    fn rectification_starts_when_rho_t_exceeds_5() {
        let rho = |t: f64| sma_lengths(0.999, t).1;
        // 2/(1 − 0.999) − 1 = 1999 up to the f64 rounding of 1 − 0.999 (Python gets the same).
        assert!((sma_lengths(0.999, 1.0).0 - 1999.0).abs() < 1e-9);
        assert!((rho(1.0) - 1.0).abs() < 1e-9, "{}", rho(1.0));
        assert!(
            rho(5.0) <= 5.0 && rho(6.0) > 5.0,
            "{} {}",
            rho(5.0),
            rho(6.0)
        );
        // β₂ = 0.6 gives ρ∞ = 4: never rectified.
        assert!((sma_lengths(0.6, 1.0).0 - 4.0).abs() < 1e-12);
    }

    /// Hand-computed in f64 (lr 0.1, torch's defaults): the first five steps are SGD with
    /// momentum on m̂. Step 1, g = [0.5, −1]: m̂ = g, θ = θ₀ − 0.1·g = [0.95, −1.9];
    /// step 2, g = [0.25, 0.5]: m = [0.07, −0.04], m̂ = m/0.19, θ = [0.91315789, −1.87894737].
    #[test]
    fn early_steps_are_sgd_with_bias_corrected_momentum() {
        let thetas = trajectory(RAdamConfig::new(), &[[0.5, -1.0], [0.25, 0.5]]);
        testing::assert_near(&thetas[0], [0.95, -1.9]);
        testing::assert_near(&thetas[1], [0.913_157_89, -1.878_947_37]);
    }

    /// With a constant gradient g, m̂ = g and √v̂ = |g| exactly in real arithmetic, so while
    /// ρₜ ≤ 5 every step moves θ by −lr·g (steps 1–5: 5·0.1·[0.5, −1] in all), and after it by
    /// −lr·rₜ·g/(|g| + ε/√(1 − β₂ᵗ)) ≈ −lr·rₜ·sign(g): step 6 by 0.1·r₆ = 0.1·0.02582111,
    /// step 7 by 0.1·r₇.
    #[test]
    fn rectified_steps_scale_by_r_t() {
        let thetas = trajectory(RAdamConfig::new(), &[[0.5, -1.0]; 7]);
        let r = |t: f64| {
            let (rho_inf, rho_t) = sma_lengths(0.999, t);
            ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .sqrt()
        };
        assert!((r(6.0) - 0.025_821_11).abs() < 1e-8);
        let theta5 = [1.0 - 0.25, -2.0 + 0.5];
        let expected =
            |moved: f64| TensorData::from([(theta5[0] - moved) as f32, (theta5[1] + moved) as f32]);
        // 2e-6: seven f32 steps each round θ, m and v; √v̂ = |g| only up to that rounding.
        let tolerance = Tolerance::absolute(2e-6);
        thetas[4].assert_approx_eq::<f32>(&expected(0.0), tolerance);
        thetas[5].assert_approx_eq::<f32>(&expected(0.1 * r(6.0)), tolerance);
        thetas[6].assert_approx_eq::<f32>(&expected(0.1 * (r(6.0) + r(7.0))), tolerance);
    }

    /// L2 decay adds λθ₀ = [0.5, −1] to g = [0.5, −1]: θ₁ = θ₀ − 0.1·[1, −2] = [0.9, −1.8].
    /// Decoupled decay first shrinks θ₀ by (1 − 0.1·0.5), then steps on g: [0.9, −1.8] too; the
    /// second step tells them apart. L2: g₂ + λθ₁ = [0.7, −0.4], m₂ = [0.16, −0.22],
    /// θ₂ = θ₁ − 0.1·m₂/0.19 = [0.81578947, −1.68421053]. Decoupled: θ₁·0.95 = [0.855, −1.71],
    /// m₂ = [0.07, −0.04], θ₂ = [0.81815789, −1.68894737].
    #[test]
    fn weight_decay_is_coupled_or_decoupled_as_torch() {
        let grads = [[0.5, -1.0], [0.25, 0.5]];
        let l2 = trajectory(RAdamConfig::new().with_weight_decay(0.5), &grads);
        testing::assert_near(&l2[0], [0.9, -1.8]);
        testing::assert_near(&l2[1], [0.815_789_46, -1.684_210_54]);
        let decoupled = trajectory(
            RAdamConfig::new()
                .with_weight_decay(0.5)
                .with_decoupled_weight_decay(true),
            &grads,
        );
        testing::assert_near(&decoupled[0], [0.9, -1.8]);
        testing::assert_near(&decoupled[1], [0.818_157_85, -1.688_947_32]);
    }

    /// `maximize` climbs: its first step moves along +g instead of −g.
    #[test]
    fn maximize_moves_along_the_gradient() {
        let thetas = trajectory(RAdamConfig::new().with_maximize(true), &[[0.5, -1.0]]);
        testing::assert_near(&thetas[0], [1.05, -2.1]);
    }
}
