//! AdaBelief, with the semantics and defaults of its authors' `adabelief-pytorch` 0.2.1.
//!
//! [`AdaBelief::step`](burn::optim::Optimizer::step) is written twice: the tensor-op
//! [reference](AdaBelief::reference_step), and the fused step beside it ([`kernel`]; on Flex,
//! NdArray and CubeCL tensors), one in-place pass over θ, g, m, s (and s_max). The `fused`
//! keyword picks between them; it is adamlab's (the reference has none), default true, and the
//! numbers are the same.

mod kernel;

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::adam::AMSGRAD;
use crate::hyper::{CycledMomentum, Interval, Keyword, Kind};
use crate::keywords::{
    BETAS, EPS_OR_ZERO, FIXED_DECAY, LR, WEIGHT_DECAY, WEIGHT_DECOUPLE,
};
use crate::registry::OptimizerEntry;
use crate::torch_ops;

crate::hyper_config! {
    /// Configuration of [`AdaBelief`], with adabelief-pytorch 0.2.1's defaults (its 0.0.5 had
    /// eps 1e-8 and neither decoupled decay nor rectification).
    pub struct AdaBeliefConfig {
        LR => 0.001;
        BETAS.help("decay rates of m and of the belief s, the moving average of (g − m)²") => {
            /// Decay rate of the first moment m, β₁.
            beta1: f64 = 0.9,
            /// Decay rate of the belief s, β₂; it also sets ρ∞ = 2/(1 − β₂) − 1 for `rectify`.
            beta2: f64 = 0.999,
        }
        EPS_OR_ZERO.help("added to s at every step (so s keeps it) and again to √s") => {
            /// ε: added to s in place at every step, so the state accumulates it, and again to
            /// the square root. The authors recommend 1e-8 where SGD beats Adam (CNNs on images).
            eps: f64 = 1e-16,
        }
        Keyword {
            kind: Kind::Float(Interval::ANY),
            help: "weight decay λ, decoupled unless weight_decouple=false (any value, unchecked)",
            ..WEIGHT_DECAY
        } => {
            /// Weight decay λ: `θ ← θ·(1 − lr·λ)` (or `θ·(1 − λ)`), L2 without `weight_decouple`.
            weight_decay: f64 = 0.0,
        }
        AMSGRAD.help("keep the running maximum of s; unrectified steps divide by it") => {
            /// Keep s_max, the running maximum of s, and divide by it where `rectify` is off.
            amsgrad: bool = false,
        }
        WEIGHT_DECOUPLE => {
            /// Decay the weights directly instead of adding `λθ` to the gradient.
            weight_decouple: bool = true,
        }
        FIXED_DECAY => {
            /// With `weight_decouple`, decay by `1 − λ` rather than `1 − lr·λ`.
            fixed_decay: bool = false,
        }
        Keyword { name: "rectify", kind: Kind::Bool,
                  help: "rectify the adaptive step as RAdam does (where ρₜ ≥ 5)" } => {
            /// Rectify the step's variance as RAdam does.
            rectify: bool = true,
        }
        Keyword { name: "degenerated_to_sgd", kind: Kind::Bool,
                  help: "with rectify, a momentum step where ρₜ < 5 (else none)" } => {
            /// With `rectify`, take a momentum step while ρₜ < 5 instead of leaving θ alone.
            degenerated_to_sgd: bool = true,
        }
        FUSED_ADAMLAB;
    }
}

/// The registry's `adabelief`: the authors' `adabelief_pytorch.AdaBelief`.
pub const ADABELIEF: OptimizerEntry = OptimizerEntry {
    name: "adabelief",
    summary: "AdaBelief (Zhuang et al., 2020): Adam dividing by the spread of g around m",
    reference: "adabelief_pytorch.AdaBelief (adabelief-pytorch 0.2.1)",
    params: AdaBeliefConfig::PARAMS,
    build: AdaBeliefConfig::build_entry,
};

/// AdaBelief (Zhuang et al., 2020, "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
/// Observed Gradients", <https://arxiv.org/abs/2010.07468>), computed as the authors'
/// `adabelief_pytorch.AdaBelief` 0.2.1 computes it.
///
/// For each parameter θ with gradient g, at step t = 1, 2, …:
///
/// ```text
/// θ ← θ·(1 − lr·λ)                 if weight_decouple (θ·(1 − λ) if also fixed_decay)
/// g ← g + λ·θ                      otherwise (L2)
/// m ← β₁·m + (1 − β₁)·g            first moment
/// s ← β₂·s + (1 − β₂)·(g − m)² + ε the belief: the spread of g around its prediction m
/// s_max ← max(s_max, s)            if amsgrad
/// not rectify:      θ ← θ − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε), v = s_max or s
/// rectify, ρₜ ≥ 5:  θ ← θ − lr·r/(1 − β₁ᵗ) · m / (√s + ε)
///     ρ∞ = 2/(1 − β₂) − 1,  ρₜ = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ),
///     r = √((1 − β₂ᵗ)·(ρₜ − 4)/(ρ∞ − 4)·(ρₜ − 2)/ρₜ·ρ∞/(ρ∞ − 2))
/// rectify, ρₜ < 5:  θ ← θ − lr/(1 − β₁ᵗ) · m  if degenerated_to_sgd, else θ is left alone
/// ```
///
/// As the authors' code does, beyond the paper: ε is added to s in place, so s keeps it (where
/// g and m stay 0, s grows to ε/(1 − β₂)) and the denominator adds ε inside the square root and
/// again outside; a rectified step divides by √s even with `amsgrad` (which then changes only
/// the state); the test is ρₜ ≥ 5 (torch's RAdam: > 5). The step sizes are f64 in the authors'
/// order, and the multiply-adds of m, s, the L2 decay and the momentum step are rounded once, as
/// torch's CPU kernels round them (see [`torch_ops`]). The reference has no `maximize`, and
/// caches ρₜ and the step size per step in a buffer that parameter groups constructed with the
/// default betas share; adamlab computes them from each group's own β's.
#[derive(Clone, Debug)]
pub struct AdaBelief {
    config: AdaBeliefConfig,
    /// β₁ set by a schedule at every step (OneCycleLR), when one cycles it.
    cycled_beta1: Option<CycledMomentum>,
}

crate::builds!(AdaBeliefConfig => AdaBelief { cycled_beta1 });

/// The state AdaBelief keeps for one parameter, named as the reference's `state` dict.
#[derive(RecordState, Clone)]
pub struct AdaBeliefState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// First moment m.
    pub exp_avg: Tensor<D>,
    /// The belief s, ε included.
    pub exp_avg_var: Tensor<D>,
    /// Running maximum of s, with `amsgrad`.
    pub max_exp_avg_var: Option<Tensor<D>>,
}

/// How step t moves θ, with the step size as the reference hands it to its tensor op.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Update {
    /// Not rectified: `θ + step·m / (√v/√(1 − β₂ᵗ) + ε)`, with `−lr/(1 − β₁ᵗ)` and `√(1 − β₂ᵗ)`.
    Adam { step: f64, sqrt_bias_correction2: f64 },
    /// ρₜ ≥ 5: `θ + step·m / (√s + ε)`, with `−lr·r/(1 − β₁ᵗ)`.
    Rectified { step: f64 },
    /// ρₜ < 5 with `degenerated_to_sgd`: `θ + step·m`, with `−lr/(1 − β₁ᵗ)`.
    Momentum { step: f64 },
    /// ρₜ < 5 without: θ unchanged.
    Skip,
}

impl AdaBelief {
    /// The update of step `t` at learning rate `lr`, in f64 as Python computes it.
    fn update(&self, lr: f64, t: usize) -> Update {
        let (beta1, beta2, t) = (self.beta1(), self.config.beta2, t as f64);
        let bias_correction1 = 1.0 - beta1.powf(t);
        if !self.config.rectify {
            let sqrt_bias_correction2 = (1.0 - beta2.powf(t)).sqrt();
            return Update::Adam { step: -(lr / bias_correction1), sqrt_bias_correction2 };
        }
        // The authors' N_sma_max, N_sma and step size, in their order.
        let beta2_t = beta2.powf(t);
        let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * beta2_t / (1.0 - beta2_t);
        if rho_t >= 5.0 {
            let r = (1.0 - beta2_t) * (rho_t - 4.0) / (rho_inf - 4.0) * (rho_t - 2.0) / rho_t
                * rho_inf / (rho_inf - 2.0);
            Update::Rectified { step: -(r.sqrt() / bias_correction1) * lr }
        } else if self.config.degenerated_to_sgd {
            Update::Momentum { step: -(1.0 / bias_correction1) * lr }
        } else {
            Update::Skip
        }
    }

    /// One AdaBelief step for one parameter tensor, written with tensor operations: the
    /// readable reference that the fused kernels must equal. See [`AdaBelief`].
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdaBeliefState<D>>,
    ) -> (Tensor<D>, Option<AdaBeliefState<D>>) {
        let AdaBeliefConfig { beta2, eps, weight_decay, amsgrad, .. } = self.config;
        let beta1 = self.beta1();
        let (mut theta, mut g) = (theta, grad);
        if weight_decay != 0.0 && self.config.weight_decouple {
            theta = theta.mul_scalar(decay_factor(&self.config, lr));
        } else if weight_decay != 0.0 {
            // As the reference's `g.add_(θ, alpha=λ)`: one rounding.
            g = torch_ops::mul_add_scalar_one_rounding(theta.clone(), weight_decay as f32, g);
        }
        let (t, m, s, s_max) = match state {
            Some(s) => (s.step + 1, s.exp_avg, s.exp_avg_var, s.max_exp_avg_var),
            None => (1, g.zeros_like(), g.zeros_like(), None),
        };

        // m ← β₁·m + (1 − β₁)·g, as `m.mul_(β₁).add_(g, alpha=1 − β₁)`.
        let m = m.mul_scalar(beta1);
        let m = torch_ops::mul_add_scalar_one_rounding(g.clone(), (1.0 - beta1) as f32, m);
        // s ← β₂·s + (1 − β₂)·(g − m)² + ε, as `s.mul_(β₂).addcmul_(r, r, value=1 − β₂)` and the
        // denominator's `s.add_(ε)`, which writes into s.
        let r = g.sub(m.clone());
        let s = s.mul_scalar(beta2);
        let s = torch_ops::mul_add_one_rounding(r.clone().mul_scalar(1.0 - beta2), r, s);
        let s = s.add_scalar(eps);
        // The reference starts s_max at zeros: max(0, s) = s.
        let s_max = amsgrad.then(|| s_max.unwrap_or_else(|| s.zeros_like()).max_pair(s.clone()));

        // θ + step·m / denominator, as `θ.addcdiv_(m, denom, value=step)`.
        let theta = match self.update(lr, t) {
            Update::Adam { step, sqrt_bias_correction2 } => {
                let v = s_max.as_ref().unwrap_or(&s).clone();
                let denom = v.sqrt().div_scalar(sqrt_bias_correction2).add_scalar(eps);
                theta.add(m.clone().mul_scalar(step).div(denom))
            }
            Update::Rectified { step } => {
                let denom = s.clone().sqrt().add_scalar(eps);
                theta.add(m.clone().mul_scalar(step).div(denom))
            }
            // As `θ.add_(m, alpha=step)`: one rounding.
            Update::Momentum { step } => {
                torch_ops::mul_add_scalar_one_rounding(m.clone(), step as f32, theta)
            }
            Update::Skip => theta,
        };
        let state = AdaBeliefState { step: t, exp_avg: m, exp_avg_var: s, max_exp_avg_var: s_max };
        (theta, Some(state))
    }
}

/// The decoupled decay's factor, `1 − lr·λ` (or `1 − λ` with `fixed_decay`), in f64.
fn decay_factor(config: &AdaBeliefConfig, lr: f64) -> f64 {
    1.0 - if config.fixed_decay { config.weight_decay } else { lr * config.weight_decay }
}

crate::fused::impl_optimizer!(AdaBelief, AdaBeliefState { exp_avg, exp_avg_var, max_exp_avg_var });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use burn::optim::Optimizer;
    use burn::tensor::Device;
    use burn::tensor::{TensorData, Tolerance};

    fn step(config: AdaBeliefConfig, grads: &[[f32; 2]]) -> (TensorData, AdaBeliefState<1>) {
        let (adabelief, device) = (config.build().unwrap(), Device::flex());
        let mut theta = Tensor::<1>::from_floats([1.0, -2.0], &device);
        let mut state = None;
        for g in grads {
            (theta, state) = adabelief.step(0.1, theta, Tensor::from_floats(*g, &device), state);
        }
        (theta.to_data(), state.unwrap())
    }

    /// Step 1, g = [0.5, −1], lr 0.1: m = 0.1·g, s = 0.001·(0.9·g)² + ε = [2.025e-4, 8.1e-4].
    /// Rectified (ρ₁ = 1 < 5), a momentum step: θ = θ₀ − 0.1/0.1·m = [0.95, −1.9]. Not rectified:
    /// √s/√0.001 = 0.9·|g|, so θ = θ₀ − (0.1/0.1)·m/(0.9·|g|) = θ₀ ∓ 0.1/0.9.
    #[test]
    fn the_first_step_is_a_momentum_step_or_adams_with_the_belief() {
        let tolerance = Tolerance::absolute(1e-6);
        let (theta, state) = step(AdaBeliefConfig::new(), &[[0.5, -1.0]]);
        testing::assert_near(&theta, [0.95, -1.9]);
        let s = state.exp_avg_var.to_data();
        let expected = TensorData::from([2.025e-4f32, 8.1e-4]);
        s.assert_approx_eq::<f32>(&expected, Tolerance::relative(1e-6));
        let (theta, _) = step(AdaBeliefConfig::new().with_rectify(false), &[[0.5, -1.0]]);
        let expected = TensorData::from([1.0 - 0.1 / 0.9f32, -2.0 + 0.1 / 0.9]);
        theta.assert_approx_eq::<f32>(&expected, tolerance);
    }

    /// Three zero gradients keep m = 0 and leave s = ε·(1 + β₂ + β₂²) = 2.997001e-16: ε stays in s.
    #[test]
    fn epsilon_accumulates_in_the_belief() {
        let (_, state) = step(AdaBeliefConfig::new(), &[[0.0, 0.0]; 3]);
        let s = state.exp_avg_var.to_data();
        let expected = TensorData::from([2.997_001e-16f32; 2]);
        s.assert_approx_eq::<f32>(&expected, Tolerance::relative(1e-6));
    }
}
