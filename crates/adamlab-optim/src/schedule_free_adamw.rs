//! Schedule-Free AdamW, with schedulefree 1.4.1's semantics and defaults.

use burn::optim::{LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::RecordState;
use crate::torch_ops::lerp_two_roundings;
use crate::hyper::{Interval, Keyword, Kind, check_learning_rate};
use crate::keywords::{EPS, LR, WEIGHT_DECAY};
use crate::registry::{EvalWeights, OptimizerEntry};

crate::hyper_config! {
    /// Configuration of [`ScheduleFreeAdamW`], with `schedulefree.AdamWScheduleFree`'s defaults.
    /// schedulefree itself checks none of them; the ranges are those in which its arithmetic is
    /// defined (see [`ScheduleFreeAdamW`]).
    ///
    /// The learning rate is passed to every [`step`](Optimizer::step), as burn does (schedulefree's
    /// `lr`, default 0.0025). It needs no schedule: `warmup_steps` is the only one it takes.
    pub struct ScheduleFreeAdamWConfig {
        LR => 0.0025;
        Keyword {
            name: "betas",
            kind: Kind::Tuple(&[
                Kind::Float(Interval::new(0.0, false, 1.0, false)),
                Kind::Float(Interval::UNIT_OPEN_RIGHT),
            ]),
            help: "β₁ interpolates between the average x and z for the gradient point y; β₂ decays v",
        } => {
            /// Interpolation between the averaged point x and the gradient point z, β₁, in (0, 1)
            /// since the evaluation point divides by it.
            beta1: f64 = 0.9,
            /// Decay rate of the second-moment estimate, β₂.
            beta2: f64 = 0.999,
        }
        EPS => {
            /// Added to the bias-corrected `√v̂`, outside the square root.
            eps: f64 = 1e-8,
        }
        WEIGHT_DECAY.help("weight decay λ, taken at y and added to the normalised gradient: ĝ + λ·y") => {
            /// Weight decay λ, added to the normalised gradient at y: `ĝ + λ·y`.
            weight_decay: f64 = 0.0,
        }
        Keyword {
            name: "warmup_steps",
            kind: Kind::Int {
                min: 0,
                max: i64::MAX,
            },
            help: "steps of linear learning-rate warmup (the only schedule it takes)",
        } => {
            /// Steps of linear learning-rate warmup: the step k (from 0) uses
            /// `lr·(k + 1)/warmup_steps` while `k < warmup_steps`.
            warmup_steps: usize = 0,
        }
        Keyword {
            name: "r",
            kind: Kind::Float(Interval::NON_NEGATIVE),
            help: "polynomial weighting: step k weighs (k + 1)^r in the average",
        } => {
            /// Polynomial weighting of the average: step k weighs `(k + 1)^r`.
            r: f64 = 0.0,
        }
        Keyword {
            name: "weight_lr_power",
            kind: Kind::Float(Interval::NON_NEGATIVE),
            help: "each step weighs lr_max^p in the average, so warmup steps count less",
        } => {
            /// The average weighs each step by `lr_maxᵖ`, p = `weight_lr_power`, so that warmup
            /// steps count less.
            weight_lr_power: f64 = 2.0,
        }
    }
}

/// The registry's `schedule-free-adamw`: `schedulefree.AdamWScheduleFree`.
pub const SCHEDULE_FREE_ADAMW: OptimizerEntry = OptimizerEntry {
    name: "schedule-free-adamw",
    summary: "Schedule-Free AdamW (Defazio et al., 2024): no schedule; evaluate at the average x",
    reference: "schedulefree.AdamWScheduleFree (schedulefree 1.4.1)",
    params: ScheduleFreeAdamWConfig::PARAMS,
    build: ScheduleFreeAdamWConfig::build_entry,
};

/// Schedule-Free AdamW (Defazio et al., 2024, "The Road Less Scheduled",
/// <https://arxiv.org/abs/2405.15682>), computed as `schedulefree.AdamWScheduleFree`'s
/// single-tensor (`foreach=False`) step computes it.
///
/// Three sequences: z takes the gradient steps, x is a weighted average of the z's (the point to
/// evaluate), and the gradient is taken at y = (1 − β₁)·z + β₁·x. The parameters hold y, as the
/// reference's train mode does, and z is the state; x is not stored but derived,
/// `x = y + (1 − 1/β₁)·(z − y)` ([`EvalWeights::eval_param`], the reference's `eval()`). At step
/// k = 0, 1, …, with z₀ = y₀ and v₀ = 0:
///
/// ```text
/// lr_k = lr·(k + 1)/warmup_steps if k < warmup_steps, else lr      (f64)
/// lr_max ← max(lr_max, lr_k)
/// w = (k + 1)^r · lr_max^weight_lr_power
/// weight_sum ← weight_sum + w
/// c = w / weight_sum (0 if weight_sum = 0)
/// v ← β₂·v + (1 − β₂)·g²
/// ĝ = g / (√(v / (1 − β₂^(k+1))) + ε)
/// ĝ ← ĝ + λ·y                               weight decay at y
/// y ← y + c·(z − y)                         lerp towards z
/// y ← y + lr_k·(β₁·(1 − c) − 1)·ĝ
/// z ← z − lr_k·ĝ
/// ```
///
/// Scalars (`lr_k`, `lr_max`, the weights, `c`, the bias correction and the step coefficients)
/// are Python floats in the reference, so f64 here, each rounded to f32 once where it meets a
/// tensor. Tensors are f32, in the reference's order; `lerp` takes torch's two forms,
/// `y + c·(z − y)` for |c| < 0.5 and `z − (z − y)·(1 − c)` otherwise, with c rounded to f32 first.
/// torch's CPU kernels may fuse a multiply and an add into one FMA where these are two roundings.
///
/// Deliberate differences from schedulefree:
/// - `k`, `lr_max` and `weight_sum` belong to a parameter group in the reference; here each
///   parameter keeps its own copy. They are equal when every parameter of the group gets a
///   gradient at every step (burn skips parameters without one; the reference skips their update
///   but still advances the group's k).
/// - No `train()`/`eval()` switch: the parameters always hold y, and `adamlab_optim::eval_weights`
///   gives x. A checkpoint therefore holds y and z (the reference advises saving in eval mode,
///   which holds x).
/// - The reference checks no argument. adamlab requires β₁ in (0, 1) (its `eval()` divides by
///   β₁), β₂ in [0, 1), ε > 0, λ ≥ 0, r ≥ 0 and `weight_lr_power` ≥ 0 (a negative power of
///   lr_max = 0 is Python's ZeroDivisionError).
/// - `foreach` is not offered: it selects a kernel, not a different arithmetic.
#[derive(Clone, Debug)]
pub struct ScheduleFreeAdamW {
    config: ScheduleFreeAdamWConfig,
}

crate::builds!(ScheduleFreeAdamWConfig => ScheduleFreeAdamW);

/// The state Schedule-Free AdamW keeps for one parameter: the reference's per-parameter `z` and
/// `exp_avg_sq`, and scalar copies of its per-group `k`, `lr_max` and `weight_sum`.
#[derive(RecordState, Clone)]
pub struct ScheduleFreeAdamWState<const D: usize> {
    /// The gradient sequence z (the reference's `z`).
    pub z: Tensor<D>,
    /// Second moment v (the reference's `exp_avg_sq`).
    pub exp_avg_sq: Tensor<D>,
    /// Number of steps taken (the reference's group `k`).
    pub k: usize,
    /// Largest warmed-up learning rate so far (the group's `lr_max`).
    pub lr_max: f64,
    /// Sum of the average's weights so far (the group's `weight_sum`).
    pub weight_sum: f64,
}

impl EvalWeights for ScheduleFreeAdamW {
    const HAS_EVAL_WEIGHTS: bool = true;

    /// The average x, from y and z as the reference's `eval()` computes it:
    /// `y.lerp(z, 1 − 1/β₁)`.
    fn eval_param<const D: usize>(&self, param: Tensor<D>, state: &Self::State<D>) -> Tensor<D> {
        lerp_two_roundings(param, state.z.clone(), 1.0 - 1.0 / self.config.beta1)
    }
}

impl Optimizer for ScheduleFreeAdamW {
    type State<const D: usize> = ScheduleFreeAdamWState<D>;

    /// One step for one parameter tensor; see [`ScheduleFreeAdamW`] for the update rule.
    ///
    /// # Panics
    /// If `lr` is negative or not finite: burn's optimizer interface cannot return an error, so
    /// callers that take the learning rate from a user check it first with
    /// [`check_learning_rate`].
    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        y: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if let Err(err) = check_learning_rate(lr) {
            panic!("{err}");
        }
        let ScheduleFreeAdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
            warmup_steps,
            r,
            weight_lr_power,
        } = self.config;
        let g = grad;
        let (k, lr_max, weight_sum, z, v) = match state {
            Some(s) => (s.k, s.lr_max, s.weight_sum, s.z, s.exp_avg_sq),
            None => (0, -1.0, 0.0, y.clone(), g.zeros_like()),
        };

        // The group's scalars, in f64 as Python computes them.
        let t = (k + 1) as f64;
        let sched = if k < warmup_steps {
            t / warmup_steps as f64
        } else {
            1.0
        };
        let bias_correction2 = 1.0 - beta2.powf(t);
        let lr = lr * sched;
        let lr_max = lr.max(lr_max);
        let weight = t.powf(r) * lr_max.powf(weight_lr_power);
        let weight_sum = weight_sum + weight;
        let ckp1 = if weight_sum == 0.0 {
            0.0
        } else {
            weight / weight_sum
        };

        // v ← β₂·v + (1 − β₂)·g², as `exp_avg_sq.mul_(β₂).addcmul_(g, g, value=1 − β₂)`.
        let v = v
            .mul_scalar(beta2)
            .add(g.clone().mul_scalar(1.0 - beta2).mul(g.clone()));
        // √v̂ + ε, as `exp_avg_sq.div(bias_correction2).sqrt_().add_(eps)`.
        let denom = v
            .clone()
            .div_scalar(bias_correction2)
            .sqrt()
            .add_scalar(eps);
        // ĝ = g / (√v̂ + ε), plus λ·y at the current y.
        let mut g_hat = g.div(denom);
        if weight_decay != 0.0 {
            g_hat = g_hat.add(y.clone().mul_scalar(weight_decay));
        }
        // y moves to the next (1 − β₁)·z + β₁·x without forming x: a lerp towards z, then a step.
        let y = lerp_two_roundings(y, z.clone(), ckp1);
        let y = y.add(g_hat.clone().mul_scalar(lr * (beta1 * (1.0 - ckp1) - 1.0)));
        // z ← z − lr·ĝ.
        let z = z.sub(g_hat.mul_scalar(lr));

        let state = ScheduleFreeAdamWState {
            z,
            exp_avg_sq: v,
            k: k + 1,
            lr_max,
            weight_sum,
        };
        (y, Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        ScheduleFreeAdamWState {
            z: state.z.to_device(device),
            exp_avg_sq: state.exp_avg_sq.to_device(device),
            ..state
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, device};
    use crate::registry::{AnyOptimizer, eval_weights};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.1;

    /// The group scalars are f64 sums of a few products: equal to 1e-15 relative.
    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 1e-15 * expected.abs(),
            "{actual} vs {expected}"
        );
    }

    /// y and the state after each of `grads`, from y₀ = [1, −2].
    fn trajectory(
        config: ScheduleFreeAdamWConfig,
        grads: &[[f32; 2]],
    ) -> Vec<(TensorData, ScheduleFreeAdamWState<1>)> {
        let look = |y: &Tensor<1>, state: Option<&ScheduleFreeAdamWState<1>>| {
            (y.to_data(), state.unwrap().clone())
        };
        testing::trajectory(&config.build().unwrap(), LR, grads, look)
    }

    /// Hand-computed in f64 (lr 0.1, defaults):
    /// step 1 (k = 0), g = [0.5, −1]: w = 0.1² = 0.01, c = 1; v̂ = g², ĝ = g/(|g| + 1e-8) ≈ [1, −1];
    /// y lerps to z₀ = y₀, then y += 0.1·(0.9·0 − 1)·ĝ = [0.9, −1.9]; z = y₀ − 0.1·ĝ = [0.9, −1.9].
    /// step 2 (k = 1), g = [0.25, 0.5]: c = 0.01/0.02 = 0.5; v = [3.1225e-4, 1.249e-3],
    /// v̂ = v/0.001999 = [0.156203, 0.624812], ĝ = [0.632563, 0.632563] (to 1e-8);
    /// y = [0.9, −1.9] (y and z are equal) + 0.1·(0.45 − 1)·ĝ = [0.865209, −1.934791];
    /// z = [0.9, −1.9] − 0.1·ĝ = [0.836744, −1.963256].
    #[test]
    fn first_two_steps_match_hand_computed_values() {
        let steps = trajectory(ScheduleFreeAdamWConfig::new(), &[[0.5, -1.0], [0.25, 0.5]]);
        // f32 holds these to ~1e-7; 1e-6 leaves room for the order of operations and the six
        // digits written above.
        let (y1, s1) = &steps[0];
        testing::assert_near(&y1, [0.9, -1.9]);
        testing::assert_near(&s1.z.to_data(), [0.9, -1.9]);
        assert_eq!((s1.k, s1.lr_max), (1, LR));
        assert_close(s1.weight_sum, LR * LR);
        let (y2, s2) = &steps[1];
        testing::assert_near(&y2, [0.865_209, -1.934_791]);
        testing::assert_near(&s2.z.to_data(), [0.836_744, -1.963_256]);
        s2.exp_avg_sq.to_data().assert_approx_eq::<f32>(
            &TensorData::from([3.1225e-4f32, 1.249e-3]),
            Tolerance::absolute(1e-9),
        );
        assert_eq!(s2.k, 2);
    }

    /// With warmup over 4 steps the first step uses lr/4, and its y moves a quarter as far.
    #[test]
    fn warmup_scales_the_first_steps() {
        let steps = trajectory(
            ScheduleFreeAdamWConfig::new().with_warmup_steps(4),
            &[[0.5, -1.0]],
        );
        let (y1, s1) = &steps[0];
        testing::assert_near(&y1, [0.975, -1.975]);
        assert_eq!(s1.lr_max, LR / 4.0);
    }

    /// Weight decay adds λ·y₀ to ĝ: with λ = 0.5 the first step's ĝ is [1, −1] + [0.5, −1] =
    /// [1.5, −2], so y = y₀ − 0.1·ĝ = [0.85, −1.8].
    #[test]
    fn weight_decay_is_added_to_the_normalised_gradient_at_y() {
        let steps = trajectory(
            ScheduleFreeAdamWConfig::new().with_weight_decay(0.5),
            &[[0.5, -1.0]],
        );
        testing::assert_near(&steps[0].0, [0.85, -1.8]);
    }

    /// r and weight_lr_power change the average's weights: with r = 1 the second step weighs 2
    /// against the first's 1 (c = 2/3 rather than 1/2); with warmup and weight_lr_power = 0 every
    /// step weighs 1 although the first ones use a smaller lr.
    #[test]
    fn r_and_weight_lr_power_set_the_weights_of_the_average() {
        let grads = [[0.5, -1.0], [0.25, 0.5]];
        let r1 = trajectory(ScheduleFreeAdamWConfig::new().with_r(1.0), &grads);
        assert_close(r1[1].1.weight_sum, LR * LR * 3.0);
        let flat = trajectory(
            ScheduleFreeAdamWConfig::new()
                .with_warmup_steps(2)
                .with_weight_lr_power(0.0),
            &grads,
        );
        assert_close(flat[1].1.weight_sum, 2.0);
        let powered = trajectory(ScheduleFreeAdamWConfig::new().with_warmup_steps(2), &grads);
        assert_close(powered[1].1.weight_sum, 0.05 * 0.05 + LR * LR);
        assert_ne!(
            r1[1].0,
            trajectory(ScheduleFreeAdamWConfig::new(), &grads)[1].0
        );
    }

    /// x = y + (1 − 1/β₁)·(z − y); with β₁ = 0.5 the weight is −1, torch's second lerp form.
    #[test]
    fn eval_param_is_the_average_x() {
        for beta1 in [0.9, 0.5] {
            let config = ScheduleFreeAdamWConfig::new().with_beta1(beta1);
            let optimizer = config.build().unwrap();
            let steps = trajectory(config, &[[0.5, -1.0], [0.25, 0.5]]);
            let (y, state) = steps[1].clone();
            let x = optimizer.eval_param(Tensor::from_data(y.clone(), &device()), &state);
            let [y, z] = [y, state.z.to_data()].map(|d| d.as_slice::<f32>().unwrap().to_vec());
            let w = 1.0 - 1.0 / beta1;
            let expected: Vec<f32> = y
                .iter()
                .zip(&z)
                .map(|(y, z)| (*y as f64 + w * (*z as f64 - *y as f64)) as f32)
                .collect();
            x.to_data().assert_approx_eq::<f32>(
                &TensorData::new(expected, [2]),
                Tolerance::absolute(1e-6),
            );
        }
    }

    /// `eval_weights` maps a trained Linear to x, parameter by parameter, from the module
    /// optimizer's record: compared with x computed from a bare optimizer fed the same gradients.
    #[test]
    fn eval_weights_of_a_linear_model_are_the_average_x() {
        let device = device().autodiff();
        let config = ScheduleFreeAdamWConfig::new();
        let lab: Box<dyn AnyOptimizer> = Box::new(config.build().unwrap());
        let bare = config.build().unwrap();
        let mut model: Linear = LinearConfig::new(3, 2).init(&device);
        let mut weight = model.weight.val().inner();
        let mut state = None;
        let input = Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]], &device);
        let mut optimizer = lab.module_optimizer();
        for scale in [1.0, -0.5, 2.0] {
            let loss = model
                .forward(input.clone())
                .mul_scalar(scale)
                .powf_scalar(2.0)
                .sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let weight_grad = grads.get::<2>(model.weight.id).unwrap();
            (weight, state) = bare.step(LR, weight, weight_grad, state.take());
            model = optimizer.step(LR, model, grads);
        }
        let state = state.unwrap();
        let x = bare.eval_param(weight.clone(), &state);
        let evaluated = eval_weights(lab.as_ref(), &optimizer, model.clone());
        let tolerance = Tolerance::absolute(1e-7);
        // The trained weights are y, and the evaluated ones x, which differs from y.
        model
            .weight
            .val()
            .to_data()
            .assert_approx_eq::<f32>(&weight.to_data(), tolerance);
        evaluated
            .weight
            .val()
            .to_data()
            .assert_approx_eq::<f32>(&x.to_data(), tolerance);
        assert_ne!(x.to_data(), weight.to_data());
        assert_ne!(
            evaluated.bias.as_ref().unwrap().val().to_data(),
            model.bias.as_ref().unwrap().val().to_data()
        );
    }

}
