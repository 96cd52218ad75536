//! ADOPT, with the semantics and defaults of pytorch-optimizer 4.1.0's `ADOPT`.

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::hyper::CycledMomentum;
use crate::keywords::{
    BETAS, EPS_OR_ZERO, FIXED_DECAY, LR, WEIGHT_DECAY, WEIGHT_DECOUPLE,
};
use crate::registry::OptimizerEntry;
use crate::torch_ops;

crate::hyper_config! {
    /// Configuration of [`Adopt`], with pytorch-optimizer 4.1.0's defaults.
    pub struct AdoptConfig {
        LR => 0.001;
        BETAS.help("decay rates of the first moment (of the normalised gradient) and of v") => {
            /// Decay rate of the first moment m of the normalised gradient, β₁.
            beta1: f64 = 0.9,
            /// Decay rate of the second moment v, β₂ (the paper's default 0.9999).
            beta2: f64 = 0.9999,
        }
        WEIGHT_DECAY.help("weight decay λ: L2 (g ← g + λθ) unless weight_decouple") => {
            /// Weight decay λ: L2 unless `weight_decouple`.
            weight_decay: f64 = 0.0,
        }
        WEIGHT_DECOUPLE => {
            /// Decay the weights directly, `θ ← θ·(1 − lr·λ)`, instead of adding `λθ` to g.
            weight_decouple: bool = false,
        }
        FIXED_DECAY => {
            /// With `weight_decouple`, decay by `1 − λ` rather than `1 − lr·λ`.
            fixed_decay: bool = false,
        }
        EPS_OR_ZERO.help("lower bound of the denominator √v") => {
            /// Lower bound of `√v` in the normalisation `g / max(√v, ε)`.
            eps: f64 = 1e-6,
        }
        MAXIMIZE;
    }
}

/// The registry's `adopt`: pytorch-optimizer's `ADOPT`.
pub const ADOPT: OptimizerEntry = OptimizerEntry {
    name: "adopt",
    summary: "ADOPT (Taniguchi et al., 2024): momentum of g normalised by the previous steps' v",
    reference: "pytorch_optimizer.ADOPT (pytorch-optimizer 4.1.0)",
    params: AdoptConfig::PARAMS,
    build: AdoptConfig::build_entry,
};

/// ADOPT (Taniguchi et al., 2024, "ADOPT: Modified Adam Can Converge with Any β₂ with the
/// Optimal Rate", <https://arxiv.org/abs/2411.02853>), computed as pytorch-optimizer 4.1.0's
/// `ADOPT` computes it on its per-parameter path.
///
/// For each parameter θ with gradient g, at step t = 1, 2, …:
///
/// ```text
/// g ← −g                                   if maximize
/// θ ← θ·(1 − lr·λ)                         if weight_decouple (θ·(1 − λ) if also fixed_decay)
/// g ← g + λ·θ                              otherwise (L2)
/// t = 1:  v ← g²                           and nothing else: θ does not move
/// t ≥ 2:  ĝ = clamp(g / max(√v, ε), ±t^¼)  g normalised by the previous v, clipped
///         m ← β₁·m + (1 − β₁)·ĝ
///         θ ← θ − lr·m
///         v ← β₂·v + (1 − β₂)·g²           after the update: v never sees the g it divides
/// ```
///
/// The clip `t^¼` is the reference's default `clip_lambda`, a Python callable that a spec cannot
/// give, so adamlab has no keyword for it. ε bounds √v from below (`clamp_(min=eps)`) rather
/// than being added to it. m follows torch's `lerp`, and m's, θ's, v's and the L2 decay's
/// multiply-adds are rounded once, as torch's CPU kernels round them (see [`torch_ops`]). The
/// reference counts steps per parameter group (`group["step"]`), adamlab per parameter, as every
/// other optimizer here: the same count for parameters stepped together.
#[derive(Clone, Debug)]
pub struct Adopt {
    config: AdoptConfig,
    /// β₁ set by a schedule at every step (OneCycleLR), when one cycles it.
    cycled_beta1: Option<CycledMomentum>,
}

crate::builds!(AdoptConfig => Adopt { cycled_beta1 });

/// The state ADOPT keeps for one parameter, named as the reference's `state` dict.
#[derive(RecordState, Clone)]
pub struct AdoptState<const D: usize> {
    /// Number of steps taken, t (the reference keeps it in the parameter group).
    pub step: usize,
    /// First moment m of the normalised gradient.
    pub exp_avg: Tensor<D>,
    /// Second moment v.
    pub exp_avg_sq: Tensor<D>,
}

impl Adopt {
    /// One ADOPT step for one parameter tensor, with tensor operations; see [`Adopt`].
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdoptState<D>>,
    ) -> (Tensor<D>, Option<AdoptState<D>>) {
        let AdoptConfig { beta2, weight_decay, eps, maximize, .. } = self.config;
        let beta1 = self.beta1();
        let (mut theta, mut g) = (theta, if maximize { grad.neg() } else { grad });
        if weight_decay != 0.0 && self.config.weight_decouple {
            let scale = if self.config.fixed_decay { 1.0 } else { lr };
            theta = theta.mul_scalar(1.0 - weight_decay * scale);
        } else if weight_decay != 0.0 {
            // As `g.add_(θ, alpha=λ)`: one rounding.
            g = torch_ops::mul_add_scalar_one_rounding(theta.clone(), weight_decay as f32, g);
        }
        let Some(AdoptState { step, exp_avg: m, exp_avg_sq: v }) = state else {
            // v ← g², as `v.addcmul_(g, g)` on zeros.
            let (exp_avg, exp_avg_sq) = (g.zeros_like(), g.clone().mul(g));
            return (theta, Some(AdoptState { step: 1, exp_avg, exp_avg_sq }));
        };
        let t = step + 1;

        // ĝ = clamp(g / max(√v, ε), −t^¼, t^¼), with t^¼ as Python's `math.pow(t, 0.25)`.
        let clip = (t as f64).powf(0.25);
        let normalised = g.clone().div(v.clone().sqrt().clamp_min(eps)).clamp(-clip, clip);
        // m ← β₁·m + (1 − β₁)·ĝ, as `m.lerp_(ĝ, 1 − β₁)`.
        let m = torch_ops::lerp_one_rounding(m, normalised, 1.0 - beta1);
        // θ ← θ − lr·m, as `θ.add_(m, alpha=−lr)`.
        let theta = torch_ops::mul_add_scalar_one_rounding(m.clone(), -lr as f32, theta);
        // v ← β₂·v + (1 − β₂)·g², as `v.mul_(β₂).addcmul_(g, g, value=1 − β₂)`.
        let v = v.mul_scalar(beta2);
        let v = torch_ops::mul_add_one_rounding(g.clone().mul_scalar(1.0 - beta2), g, v);
        (theta, Some(AdoptState { step: t, exp_avg: m, exp_avg_sq: v }))
    }
}

crate::fused::impl_optimizer!(Adopt, AdoptState { exp_avg, exp_avg_sq }, unfused);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use burn::optim::Optimizer;
    use burn::tensor::Device;
    use burn::tensor::{TensorData, Tolerance};

    /// θ after each of `grads` (lr 0.1, from θ₀ = [1, −2]), and the last state.
    fn run(grads: &[[f32; 2]]) -> (Vec<TensorData>, AdoptState<1>) {
        let (adopt, device) = (AdoptConfig::new().build().unwrap(), Device::flex());
        let mut theta = Tensor::<1>::from_floats([1.0, -2.0], &device);
        let (mut thetas, mut state) = (Vec::new(), None);
        for g in grads {
            (theta, state) = adopt.step(0.1, theta, Tensor::from_floats(*g, &device), state);
            thetas.push(theta.to_data());
        }
        (thetas, state.unwrap())
    }

    /// g₁ = [0.5, −1] only sets v = g₁²; g₂ = [0.25, 0.5] is normalised by |g₁|: ĝ = [0.5, 0.5]
    /// (below the clip 2^¼), m = 0.1·ĝ, θ = θ₀ − 0.1·m = [0.995, −2.005]; then
    /// v = 0.9999·g₁² + 0.0001·g₂² = [0.24998125, 0.999925].
    #[test]
    fn the_first_step_only_sets_v_and_the_second_divides_by_it() {
        let (thetas, state) = run(&[[0.5, -1.0], [0.25, 0.5]]);
        testing::assert_near(&thetas[0], [1.0, -2.0]);
        testing::assert_near(&thetas[1], [0.995, -2.005]);
        let v = state.exp_avg_sq.to_data();
        testing::assert_near(&v, [0.249_981_25, 0.999_925]);
    }

    /// g₂ = [5, 0] after g₁ = [0.5, −1]: ĝ = 10 is clipped to 2^¼ = 1.18920712, so
    /// θ = 1 − 0.1·0.1·1.18920712 = 0.98810793; the second element's ĝ = 0 leaves it at −2.
    #[test]
    fn the_normalised_gradient_is_clipped_at_t_to_the_quarter() {
        let (thetas, _) = run(&[[0.5, -1.0], [5.0, 0.0]]);
        let expected = TensorData::from([0.988_107_93f32, -2.0]);
        thetas[1].assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
    }
}
