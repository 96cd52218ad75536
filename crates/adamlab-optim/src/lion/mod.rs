//! Lion, with lion-pytorch 0.2.5's semantics and defaults.
//!
//! [`Lion::step`](burn::optim::Optimizer::step) is written twice: the tensor-op
//! [reference](Lion::reference_step), and the fused step beside it ([`kernel`]; on Flex, NdArray
//! and CubeCL tensors), one in-place pass over θ, g and m computing the reference's arithmetic
//! in its order. The `fused` keyword picks between them; it is adamlab's (lion-pytorch has
//! none), default true, and the numbers are the same.

pub(crate) mod kernel;

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::hyper::{Interval, Keyword, Kind, Value};
use crate::keywords;
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Lion`], with `lion_pytorch.Lion`'s defaults.
    ///
    /// The learning rate is passed to every [`step`](burn::optim::Optimizer::step), as burn
    /// does; `init_lr` is the one lion-pytorch was constructed with, which only its decoupled
    /// weight decay reads.
    pub struct LionConfig {
        LR => 1e-4;
        Keyword {
            name: "betas",
            kind: Kind::Tuple(&[Kind::Float(Interval::UNIT), Kind::Float(Interval::UNIT)]),
            help: "β₁ mixes momentum and gradient for the update's sign; β₂ is the momentum's decay",
        } => {
            /// Interpolation between the momentum and the gradient for the update's sign, β₁.
            beta1: f64 = 0.9,
            /// Decay rate of the momentum, β₂.
            beta2: f64 = 0.99,
        }
        Keyword {
            kind: Kind::Float(Interval::ANY),
            help: "weight decay λ: θ ← θ·(1 − lr·λ) before each update (not checked by lion-pytorch)",
            ..keywords::WEIGHT_DECAY
        } => {
            /// Weight decay λ, applied to the weights before the update: `θ ← θ·(1 − lr·λ)`.
            weight_decay: f64 = 0.0,
        }
        keywords::DECOUPLED_WEIGHT_DECAY
            .help("divide λ by the initial lr: θ ← θ·(1 − lr·λ/lr₀), independent of lr's scale") => {
            /// Decouple the weight decay from the learning rate: `θ ← θ·(1 − lr·λ/init_lr)`, so
            /// that at the initial learning rate each step shrinks θ by λ itself.
            decoupled_weight_decay: bool = false,
        }
        FUSED_ADAMLAB;
        @other {
            /// The learning rate lion-pytorch was constructed with (its `lr` argument, kept as
            /// `_init_lr`), by which `decoupled_weight_decay` divides λ. Must be > 0, as
            /// lion-pytorch asserts. Default lion-pytorch's default `lr` (a test checks that it
            /// is `LR`'s); the registry sets it to the spec's `lr`.
            init_lr: f64 = 1e-4,
        }
    }
}

/// `lr` for Lion: lion-pytorch asserts `lr > 0` (its decoupled decay divides by it).
pub const LR: Keyword = Keyword {
    kind: Kind::Float(Interval::POSITIVE),
    help: "learning rate (> 0); with decoupled_weight_decay, also the lr the decay is divided by",
    ..keywords::LR
};

/// The registry's `lion`: `lion_pytorch.Lion`.
pub const LION: OptimizerEntry = OptimizerEntry {
    name: "lion",
    summary: "Lion (Chen et al., 2023): the sign of interpolated momentum, one state tensor",
    reference: "lion_pytorch.Lion (lion-pytorch 0.2.5)",
    params: LionConfig::PARAMS,
    build: |args| {
        let lion = LionConfig::new()
            .with_args(args)
            .with_init_lr(args.f64("lr"))
            .build()?;
        Ok(Box::new(lion))
    },
};

/// Lion, EvoLved Sign Momentum (Chen et al., 2023, "Symbolic Discovery of Optimization
/// Algorithms", <https://arxiv.org/abs/2302.06675>), computed as `lion_pytorch.Lion` computes it.
///
/// For each parameter θ with gradient g (m starts at 0):
///
/// ```text
/// θ ← θ·(1 − lr·λ)                 weight decay (λ/lr₀ instead of λ if decoupled_weight_decay)
/// c = β₁·m + (1 − β₁)·g            interpolation
/// θ ← θ − lr·sign(c)               the update: ±lr per element, 0 where c = 0
/// m ← β₂·m + (1 − β₂)·g            momentum
/// ```
///
/// In lion-pytorch's order: decay first, then the sign step, then the momentum. The decay factor
/// `1 − lr·λ` and the coefficients `1 − β` are Python floats (f64), each rounded to f32 once when
/// it multiplies a tensor; the tensor arithmetic is f32. torch's CPU kernel may fuse
/// `β₁·m + (1 − β₁)·g` into one FMA; these are two roundings, so c can differ by an ulp, which
/// changes the sign only when c is within an ulp of 0.
///
/// Deliberate differences from lion-pytorch: no `use_triton` (a kernel choice, same arithmetic);
/// the initial learning rate is a configuration value, `init_lr`, since burn passes the learning
/// rate to every step. There is no `maximize`, as lion-pytorch has none.
#[derive(Clone, Debug)]
pub struct Lion {
    config: LionConfig,
}

crate::builds!(LionConfig => Lion, check = |config: &LionConfig| {
    LR.check(&Value::Number(config.init_lr))
});

/// The state Lion keeps for one parameter. Names follow lion-pytorch's `state` dict.
#[derive(RecordState, Clone)]
pub struct LionState<const D: usize> {
    /// Momentum m (lion-pytorch's `exp_avg`).
    pub exp_avg: Tensor<D>,
}

/// `1 − lr·λ` in f64, with λ divided by the initial learning rate if decoupled, as
/// lion-pytorch's `1. - lr * wd`.
fn decay_factor(config: &LionConfig, lr: f64) -> f64 {
    let lambda = if config.decoupled_weight_decay {
        config.weight_decay / config.init_lr
    } else {
        config.weight_decay
    };
    1.0 - lr * lambda
}

impl Lion {
    /// One Lion step for one parameter tensor, written with tensor operations: the readable
    /// reference that the fused kernels must equal. Every backend and dtype runs it; see
    /// [`Lion`] for the update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<LionState<D>>,
    ) -> (Tensor<D>, Option<LionState<D>>) {
        let (beta1, beta2) = (self.config.beta1, self.config.beta2);
        let g = grad;
        let m = match state {
            Some(state) => state.exp_avg,
            None => g.zeros_like(),
        };

        // θ ← θ·(1 − lr·λ), in f64 as lion-pytorch's `p.data.mul_(1. - lr * wd)`. A factor of
        // exactly 1 (λ = 0) leaves θ unchanged, so it is skipped.
        let decay = decay_factor(&self.config, lr);
        let theta = if decay == 1.0 {
            theta
        } else {
            theta.mul_scalar(decay)
        };

        // c = β₁·m + (1 − β₁)·g, as `exp_avg.clone().mul_(β₁).add(g, alpha=1 − β₁)`.
        let c = m
            .clone()
            .mul_scalar(beta1)
            .add(g.clone().mul_scalar(1.0 - beta1));
        // θ ← θ − lr·sign(c), as `p.add_(c.sgn_(), alpha=−lr)` (exact: lr·(±1 or 0)).
        let theta = theta.sub(c.sign().mul_scalar(lr));
        // m ← β₂·m + (1 − β₂)·g, as `exp_avg.mul_(β₂).add_(g, alpha=1 − β₂)`.
        let m = m.mul_scalar(beta2).add(g.mul_scalar(1.0 - beta2));

        (theta, Some(LionState { exp_avg: m }))
    }
}

crate::fused::impl_optimizer!(Lion, LionState { exp_avg });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use burn::tensor::TensorData;

    const LR: f64 = 0.1;

    /// θ and m after each of `grads` at learning rate `lr`, from θ₀ = [1, −2].
    fn trajectory(
        config: LionConfig,
        lr: f64,
        grads: &[[f32; 2]],
    ) -> Vec<(TensorData, TensorData)> {
        let look = |theta: &Tensor<1>, state: Option<&LionState<1>>| {
            (theta.to_data(), state.unwrap().exp_avg.to_data())
        };
        testing::trajectory(&config.build().unwrap(), lr, grads, look)
    }

    /// Hand-computed (lr 0.1, β = (0.9, 0.99)):
    /// step 1, g = [0.5, −1]: c = 0.1·g, θ = θ₀ − 0.1·[1, −1] = [0.9, −1.9], m = 0.01·g =
    /// [0.005, −0.01];
    /// step 2, g = [−0.25, 0.05]: c = 0.9·m + 0.1·g = [−0.0205, −0.004] (the momentum outvotes the
    /// second gradient's sign), θ = [0.9, −1.9] + 0.1 = [1.0, −1.8], m = 0.99·m + 0.01·g =
    /// [0.00245, −0.0094].
    #[test]
    fn first_two_steps_match_hand_computed_values() {
        let steps = trajectory(LionConfig::new(), LR, &[[0.5, -1.0], [-0.25, 0.05]]);
        testing::assert_near(&steps[0].0, [0.9, -1.9]);
        testing::assert_near(&steps[0].1, [0.005, -0.01]);
        testing::assert_near(&steps[1].0, [1.0, -1.8]);
        testing::assert_near(&steps[1].1, [0.00245, -0.0094]);
    }

    /// A zero gradient on a zero momentum has sign 0: the parameter stays where it is.
    #[test]
    fn a_zero_interpolation_leaves_the_parameter_unchanged() {
        let steps = trajectory(LionConfig::new(), LR, &[[0.0, -1.0]]);
        steps[0]
            .0
            .assert_eq(&TensorData::from([1.0f32, -1.9]), true);
    }

    /// λ = 0.5 at lr 0.1: θ₀·(1 − 0.05) = [0.95, −1.9], then −0.1·sign(g) gives [0.85, −1.8].
    /// Decoupled, with lr₀ = 0.1: λ/lr₀ = 5, θ₀·(1 − 0.1·5) = [0.5, −1], then [0.4, −0.9]; at
    /// half the initial lr the factor is 1 − 0.05·5 = 0.75: [0.75, −1.5], then [0.7, −1.45].
    #[test]
    fn weight_decay_and_decoupled_weight_decay_scale_as_lion_pytorch() {
        let g = [[0.5, -1.0]];
        let coupled = trajectory(LionConfig::new().with_weight_decay(0.5), LR, &g);
        testing::assert_near(&coupled[0].0, [0.85, -1.8]);
        let decoupled = LionConfig::new()
            .with_weight_decay(0.5)
            .with_decoupled_weight_decay(true)
            .with_init_lr(LR);
        let at_init_lr = trajectory(decoupled.clone(), LR, &g);
        testing::assert_near(&at_init_lr[0].0, [0.4, -0.9]);
        let at_half_lr = trajectory(decoupled, LR / 2.0, &g);
        testing::assert_near(&at_half_lr[0].0, [0.7, -1.45]);
    }

    /// β₁ = 0 is signSGD: the second step follows the new gradient's sign alone (compare the
    /// hand-computed test, where β₁ = 0.9 lets the momentum outvote it).
    #[test]
    fn beta1_zero_follows_the_gradient_sign() {
        let steps = trajectory(
            LionConfig::new().with_beta1(0.0),
            LR,
            &[[0.5, -1.0], [-0.25, 0.05]],
        );
        testing::assert_near(&steps[1].0, [1.0, -2.0]);
    }

}
