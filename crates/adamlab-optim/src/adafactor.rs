//! Adafactor, with torch.optim.Adafactor's semantics and defaults.

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::torch_ops::lerp_two_roundings;
use crate::hyper::{Interval, Keyword, Kind};
use crate::keywords::{LR, WEIGHT_DECAY};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Adafactor`], with `torch.optim.Adafactor`'s defaults (torch ≥ 2.5).
    ///
    /// Adafactor uses the learning rate twice, as torch does: as the cap of the relative step
    /// size, `ρₜ = min(lr, 1/√t)`, and as the coefficient of the decoupled weight decay. Its torch
    /// default is 1e-2, the paper's cap.
    pub struct AdafactorConfig {
        LR => 0.01;
        Keyword {
            name: "beta2_decay",
            kind: Kind::Float(Interval::new(f64::NEG_INFINITY, false, 0.0, true)),
            help: "exponent τ of the second-moment decay: the new squared gradient is weighted t^τ",
        } => {
            /// Exponent τ ≤ 0 of the second-moment decay: the new squared gradient is weighted
            /// `t^τ`, so β̂₂ₜ = 1 − t^τ (the paper's default).
            beta2_decay: f64 = "-0.8",
        }
        Keyword {
            name: "eps",
            kind: Kind::Tuple(&[
                Kind::Optional(&Kind::Float(Interval::NON_NEGATIVE)),
                Kind::Float(Interval::NON_NEGATIVE),
            ]),
            help: "(ε₁, ε₂): ε₁ floors the variance estimate (None: the dtype's machine epsilon), ε₂ floors RMS(θ)",
        } => {
            /// ε₁, the floor of the variance estimate (the factored estimate's denominator is at
            /// least ε₁, and the estimate itself at least ε₁²). `None` takes the machine epsilon
            /// of the parameter's dtype, as torch's `eps=(None, …)` does (2⁻²³ for f32).
            eps1: Option<f64> = "None",
            /// ε₂, the floor of the parameter's RMS in the step size.
            eps2: f64 = 1e-3,
        }
        Keyword {
            name: "d",
            kind: Kind::Float(Interval::new(1.0, true, f64::INFINITY, false)),
            help: "clipping threshold: the update is scaled down until its RMS is at most d",
        } => {
            /// Clipping threshold d ≥ 1: the update is divided by `max(1, RMS(U)/d)`.
            d: f64 = 1.0,
        }
        WEIGHT_DECAY.help("decoupled weight decay λ: θ ← θ·(1 − lr·λ)") => {
            /// Decoupled weight decay λ: `θ ← θ·(1 − lr·λ)`.
            weight_decay: f64 = 0.0,
        }
        MAXIMIZE;
    }
}

/// The registry's `adafactor`: `torch.optim.Adafactor`.
pub const ADAFACTOR: OptimizerEntry = OptimizerEntry {
    name: "adafactor",
    summary: "Adafactor (Shazeer & Stern, 2018) as torch has it: factored second moments, relative step, update clipping",
    reference: "torch.optim.Adafactor (torch 2.15)",
    params: AdafactorConfig::PARAMS,
    build: AdafactorConfig::build_entry,
};

/// Adafactor (Shazeer & Stern, 2018, <https://arxiv.org/abs/1804.04235>), computed as
/// `torch.optim.Adafactor` computes it (its single-tensor path), so that the same gradients give
/// the same parameters to f32 rounding.
///
/// For each parameter θ with gradient G, at step t = 1, 2, …:
///
/// ```text
/// G ← −G                                        if maximize
/// β̂ = t^τ                                       weight of the new squared gradient (1 − β̂₂ₜ)
/// ρ = min(lr, 1/√t)                             relative step size
/// α = max(ε₂, RMS(θ))·ρ                         step size, from θ before the decay
/// θ ← θ·(1 − lr·λ)                              decoupled weight decay
/// if θ has rank ≥ 2, over its last two dimensions (n rows, m columns):
///     R ← lerp(R, mean_cols(G²), β̂)             row factor, [.., n, 1]
///     C ← lerp(C, mean_rows(G²), β̂)             column factor, [.., 1, m]
///     V̂ = R·C / max(mean(R), ε₁)
/// else:
///     V ← lerp(V, G², β̂);  V̂ = V
/// U = G / √max(V̂, ε₁²)
/// θ ← θ − α · U / max(1, RMS(U)/d)              update clipping
/// ```
///
/// As in torch, and unlike the paper: `lr` caps ρ (the paper uses 0.01) and scales the weight
/// decay; ε₁ floors the variance estimate instead of being added to G²; the factors hold means,
/// not sums. The norms behind RMS(θ) and RMS(U) are computed in f32 and read back, and the
/// scalars α, ρ, β̂ and the clipping divisor in f64, as torch computes them in Python; torch's
/// `lerp` is followed branch for branch (`a + w·(b − a)` for w < 0.5, `b − (b − a)·(1 − w)`
/// otherwise). torch's CPU kernels fuse some of these into FMAs, so the two agree to rounding,
/// not bit for bit.
///
/// Contrary to burn's built-in `Adafactor` (see `burn_builtin::adafactor`), ε₁ floors V̂ rather
/// than being added to G² (burn's ε₁ defaults to 1e-30), and there is no switch to turn the
/// relative step or the parameter scaling off: torch has none.
#[derive(Clone, Debug)]
pub struct Adafactor {
    config: AdafactorConfig,
}

crate::builds!(AdafactorConfig => Adafactor);

/// The state Adafactor keeps for one parameter. Names follow torch.optim's `state` dict.
#[derive(RecordState, Clone)]
pub struct AdafactorState<const D: usize> {
    /// Number of steps taken, t.
    pub step: usize,
    /// Row factor R, `[.., n, 1]`, for parameters of rank ≥ 2 (torch's `row_var`).
    pub row_var: Option<Tensor<D>>,
    /// Column factor C, `[.., 1, m]`, for parameters of rank ≥ 2 (torch's `col_var`).
    pub col_var: Option<Tensor<D>>,
    /// Second moment V, for parameters of rank < 2 (torch's `variance`).
    pub variance: Option<Tensor<D>>,
}

impl Adafactor {
    /// One Adafactor step for one parameter tensor, with tensor operations; see [`Adafactor`]
    /// for the update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdafactorState<D>>,
    ) -> (Tensor<D>, Option<AdafactorState<D>>) {
        let AdafactorConfig {
            beta2_decay,
            eps1,
            eps2,
            d,
            weight_decay,
            maximize,
        } = self.config;
        let eps1 = eps1.unwrap_or_else(|| machine_epsilon(&theta));

        let g = if maximize { grad.neg() } else { grad };
        let factored = D > 1;
        // torch's `_init_group`: zeros, R as [.., n, 1] and C as [.., 1, m] when factored.
        let state = state.unwrap_or_else(|| {
            let zeros_reduced = |dim: usize| {
                let mut dims = g.dims();
                dims[dim] = 1;
                Tensor::zeros(dims, &g.device())
            };
            AdafactorState {
                step: 0,
                row_var: factored.then(|| zeros_reduced(D - 1)),
                col_var: factored.then(|| zeros_reduced(D - 2)),
                variance: (!factored).then(|| g.zeros_like()),
            }
        });
        let t = state.step + 1;
        let t_f = t as f64;

        // In f64, as Python evaluates torch's scalars.
        let new_weight = t_f.powf(beta2_decay);
        let rho = lr.min(1.0 / t_f.powf(0.5));
        let alpha = eps2.max(rms(&theta)) * rho;

        let theta = if weight_decay != 0.0 {
            theta.mul_scalar(1.0 - lr * weight_decay)
        } else {
            theta
        };

        let (var_estimate, row_var, col_var, variance) =
            match (state.row_var, state.col_var, state.variance) {
                (Some(row_var), Some(col_var), _) => {
                    let dims = g.dims();
                    // mean of G² along each row and each column, as torch's ‖G‖²/n along a dimension.
                    let row_mean = g
                        .clone()
                        .square()
                        .sum_dim(D - 1)
                        .sqrt()
                        .square()
                        .div_scalar(dims[D - 1] as f64);
                    let col_mean = g
                        .clone()
                        .square()
                        .sum_dim(D - 2)
                        .sqrt()
                        .square()
                        .div_scalar(dims[D - 2] as f64);
                    let row_var = lerp_two_roundings(row_var, row_mean, new_weight);
                    let col_var = lerp_two_roundings(col_var, col_mean, new_weight);
                    // V̂ = R·C / max(mean(R), ε₁): the outer product of the factors, [.., n, m].
                    let var_estimate = row_var
                        .clone()
                        .matmul(col_var.clone())
                        .div(row_var.clone().mean_dim(D - 2).clamp_min(eps1));
                    (var_estimate, Some(row_var), Some(col_var), None)
                }
                (_, _, variance) => {
                    let variance = variance.unwrap_or_else(|| g.zeros_like());
                    let variance = lerp_two_roundings(variance, g.clone().mul(g.clone()), new_weight);
                    (variance.clone(), None, None, Some(variance))
                }
            };

        // U = G / √max(V̂, ε₁²), as torch's `V̂.clamp_(min=ε₁²).rsqrt_().mul_(G)`.
        let update = var_estimate.clamp_min(eps1 * eps1).sqrt().recip().mul(g);
        let clip = (rms(&update) / d).max(1.0);
        let theta = theta.add(update.mul_scalar(-alpha / clip));

        let state = AdafactorState {
            step: t,
            row_var,
            col_var,
            variance,
        };
        (theta, Some(state))
    }
}

crate::fused::impl_optimizer!(Adafactor, AdafactorState { row_var, col_var, variance }, unfused);

/// RMS(x) = ‖x‖₂/√numel, as torch's `x.norm(2).item() / (x.numel() ** 0.5)`: the norm in the
/// tensor's precision, read back, the division in f64.
fn rms<const D: usize>(x: &Tensor<D>) -> f64 {
    let numel = x.shape().num_elements() as f64;
    let norm: f64 = x.clone().square().sum().sqrt().into_scalar();
    norm / numel.powf(0.5)
}

/// `torch.finfo(θ.dtype).eps`, torch's ε₁ when `eps=(None, …)`.
fn machine_epsilon<const D: usize>(theta: &Tensor<D>) -> f64 {
    theta
        .dtype()
        .finfo()
        .map_or(f64::from(f32::EPSILON), |info| info.epsilon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::Optimizer;
    use crate::testing::{device, tensor as vector, thetas};
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.01;

    /// θ after each of `grads`, from θ₀ = [1, −2].
    fn trajectory(config: AdafactorConfig, grads: &[[f32; 2]]) -> Vec<TensorData> {
        thetas(&config.build().unwrap(), LR, grads)
    }

    // f32 holds these to ~1e-7; 1e-6 leaves room for the order of operations only.
    fn tolerance() -> Tolerance<f32> {
        Tolerance::absolute(1e-6)
    }

    /// Hand-computed in f64 (lr 0.01, torch's defaults), unfactored (rank 1):
    /// step 1, g = [0.5, −1]: β̂ = 1, V = g², U = sign(g), RMS(U) = 1, α = RMS(θ₀)·0.01 =
    /// √2.5·0.01 = 0.0158113883, θ = [0.9841886117, −1.9841886117];
    /// step 2, g = [0.25, 0.5]: β̂ = 2^−0.8 = 0.5743491775, V = [0.1423095292, 0.5692381169],
    /// U = [0.6627092275, 0.6627092275] (RMS < 1, no clipping), ρ = 0.01,
    /// θ = [0.9738096123, −1.9945676111]. torch gives the same to f32 rounding.
    #[test]
    fn first_two_unfactored_steps_match_hand_computed_values() {
        let thetas = trajectory(AdafactorConfig::new(), &[[0.5, -1.0], [0.25, 0.5]]);
        thetas[0].assert_approx_eq::<f32>(
            &TensorData::from([0.984_188_6f32, -1.984_188_6]),
            tolerance(),
        );
        thetas[1].assert_approx_eq::<f32>(
            &TensorData::from([0.973_809_6f32, -1.994_567_6]),
            tolerance(),
        );
    }

    /// Factored (rank 2), θ₀ = G = [[1, 2], [3, 4]]: R = row means of G² = [2.5, 12.5],
    /// C = column means = [5, 10], V̂ = R·C/mean(R) = R·C/7.5, U = G/√V̂ =
    /// [[0.7745967, 1.0954451], [1.0392305, 0.9797959]] (RMS 0.98, no clipping),
    /// α = √7.5·0.01, θ = θ₀ − α·U = [[0.9787868, 1.97], [2.9715395, 3.9731672]].
    #[test]
    fn first_factored_step_keeps_row_and_column_means() {
        let adafactor = AdafactorConfig::new().build().unwrap();
        let theta = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device());
        let (theta, state) = adafactor.step(LR, theta.clone(), theta, None);
        let state = state.unwrap();
        theta.to_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.978_786_8f32, 1.97], [2.971_539_5, 3.973_167_2]]),
            tolerance(),
        );
        let row_var = state.row_var.unwrap().to_data();
        let col_var = state.col_var.unwrap().to_data();
        row_var.assert_approx_eq::<f32>(&TensorData::from([[2.5f32], [12.5]]), tolerance());
        col_var.assert_approx_eq::<f32>(&TensorData::from([[5.0f32, 10.0]]), tolerance());
        assert!(state.variance.is_none());
        assert_eq!(state.step, 1);
    }

    /// Rank 4 factors its last two dimensions for each leading index: R is [2, 3, 4, 1], C is
    /// [2, 3, 1, 5]; rank 1 keeps a full V instead.
    #[test]
    fn higher_ranks_factor_their_last_two_dimensions() {
        let adafactor = AdafactorConfig::new().build().unwrap();
        let theta = Tensor::<4>::ones([2, 3, 4, 5], &device());
        let (_, state) = adafactor.step(LR, theta.clone(), theta.mul_scalar(0.5), None);
        let state = state.unwrap();
        assert_eq!(state.row_var.unwrap().dims(), [2, 3, 4, 1]);
        assert_eq!(state.col_var.unwrap().dims(), [2, 3, 1, 5]);
        let (_, state) = adafactor.step(LR, vector([1.0, 2.0]), vector([1.0, 2.0]), None);
        let state = state.unwrap();
        assert_eq!(state.variance.unwrap().dims(), [2]);
        assert!(state.row_var.is_none() && state.col_var.is_none());
    }

    /// A gradient that grows from 0.1 to 10 makes U's RMS 1.3195 at step 2: with d = 1 the
    /// update is clipped back to RMS 1, with d = 2 it is not. Values from torch.optim.Adafactor.
    #[test]
    fn the_clipping_threshold_bounds_the_update_rms() {
        let grads = [[0.1, 0.1], [10.0, 10.0]];
        let clipped = trajectory(AdafactorConfig::new(), &grads);
        clipped[1].assert_approx_eq::<f32>(
            &TensorData::from([0.968_326_5f32, -2.031_673_4]),
            tolerance(),
        );
        let unclipped = trajectory(AdafactorConfig::new().with_d(2.0), &grads);
        unclipped[1].assert_approx_eq::<f32>(
            &TensorData::from([0.963_259_2f32, -2.036_740_8]),
            tolerance(),
        );
    }

    /// Weight decay shrinks θ₀ by (1 − lr·λ) before the step, whose size α still comes from the
    /// undecayed θ₀: λ = 2 gives θ = 0.98·[1, −2] − 0.0158113883·[1, −1].
    #[test]
    fn weight_decay_is_decoupled_and_scaled_by_lr() {
        let thetas = trajectory(
            AdafactorConfig::new().with_weight_decay(2.0),
            &[[0.5, -1.0]],
        );
        thetas[0].assert_approx_eq::<f32>(
            &TensorData::from([0.964_188_6f32, -1.944_188_6]),
            tolerance(),
        );
    }

    /// `maximize` climbs: the first step moves along +sign(g).
    #[test]
    fn maximize_moves_along_the_gradient() {
        let thetas = trajectory(AdafactorConfig::new().with_maximize(true), &[[0.5, -1.0]]);
        thetas[0].assert_approx_eq::<f32>(
            &TensorData::from([1.015_811_4f32, -2.015_811_4]),
            tolerance(),
        );
    }

    /// ε₁ floors V̂: gradients of 1e-10 have V = 1e-20 < ε₁² = 2⁻⁴⁶ by default, so U = g/ε₁ =
    /// 8.4e-4 and the step is tiny; with ε₁ = 1e-12 the floor is below V and U = sign(g).
    /// ε₂ floors RMS(θ): from θ₀ = 0 the step is ε₂·ρ = 1e-3·0.01.
    #[test]
    fn the_epsilons_floor_the_variance_and_the_parameter_scale() {
        let tiny = [[1e-10, -1e-10]];
        let floored = trajectory(AdafactorConfig::new(), &tiny);
        let step = 0.0158113883 * 1e-10 / f64::from(f32::EPSILON);
        floored[0].assert_approx_eq::<f32>(
            &TensorData::from([(1.0 - step) as f32, (-2.0 + step) as f32]),
            tolerance(),
        );
        let unfloored = trajectory(AdafactorConfig::new().with_eps1(Some(1e-12)), &tiny);
        unfloored[0].assert_approx_eq::<f32>(
            &TensorData::from([0.984_188_6f32, -1.984_188_6]),
            tolerance(),
        );

        let adafactor = AdafactorConfig::new().build().unwrap();
        let (theta, _) = adafactor.step(LR, vector([0.0, 0.0]), vector([1.0, -1.0]), None);
        theta.to_data().assert_approx_eq::<f32>(
            &TensorData::from([-1e-5f32, 1e-5]),
            Tolerance::absolute(1e-9),
        );
    }

    /// τ sets the weight of the new squared gradient at step 2: 2^τ. With τ = 0 the second moment
    /// is the last G² alone, so U = sign(g) again and the step is α exactly.
    #[test]
    fn beta2_decay_sets_how_fast_the_second_moment_forgets() {
        let grads = [[0.5, -1.0], [0.25, 0.5]];
        let forgetful = trajectory(AdafactorConfig::new().with_beta2_decay(0.0), &grads);
        let alpha2 = (0.984_188_6f64.powi(2) + 1.984_188_6f64.powi(2)).sqrt() / 2f64.sqrt() * 0.01;
        forgetful[1].assert_approx_eq::<f32>(
            &TensorData::from([
                (0.984_188_6 - alpha2) as f32,
                (-1.984_188_6 - alpha2) as f32,
            ]),
            tolerance(),
        );
        let default = trajectory(AdafactorConfig::new(), &grads);
        assert_ne!(default[1], forgetful[1]);
    }

    #[test]
    fn the_registry_entry_takes_torch_keywords() {
        let spec =
            crate::OptimizerSpec::parse("adafactor(eps=(1e-30, 1e-3), d=2, beta2_decay=-0.5)")
                .unwrap();
        assert_eq!(
            spec.canonical(),
            "adafactor(lr=0.01, beta2_decay=-0.5, eps=(1e-30, 0.001), d=2.0, weight_decay=0.0, maximize=false)"
        );
        let message = crate::OptimizerSpec::parse("adafactor(eps=(None, -1))")
            .unwrap_err()
            .to_string();
        assert!(message.contains("invalid eps"), "{message}");
    }

}
