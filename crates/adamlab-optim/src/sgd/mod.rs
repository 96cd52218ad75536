//! Stochastic gradient descent with momentum, with torch.optim.SGD's semantics and defaults.
//!
//! ```text
//! g ← −g                                   if maximize
//! g ← g + λ·θ                              if weight_decay λ ≠ 0 (L2)
//! if momentum μ ≠ 0:
//!     b ← g                                at the first step (not (1 − τ)·g)
//!     b ← μ·b + (1 − τ)·g                  afterwards, τ the dampening
//!     g ← g + μ·b                          if nesterov
//!     g ← b                                otherwise
//! θ ← θ − lr·g
//! ```
//!
//! Momentum as Sutskever et al. (2013), *On the importance of initialization and momentum in deep
//! learning*, <http://www.cs.toronto.edu/~hinton/absps/momentum.pdf>, in torch's form (the learning
//! rate multiplies the whole step, not the gradient inside the buffer).
//!
//! Deliberate differences from `torch.optim.SGD`: none in the arithmetic. torch evaluates
//! `a.add(b, alpha=c)` as one fused multiply-add on CPU; burn has no fused op, so `a + c·b`
//! rounds twice. The two agree to f32 rounding, not bit for bit (measured by the replay cases);
//! where `θ − lr·g` cancels to near 0 from large operands, the difference is an ulp of the
//! operands rather than of the result.
//! The learning rate is passed to every step, as burn does, rather than kept in the
//! configuration; a schedule that cycles the momentum (OneCycleLR) sets μ before each step, as
//! torch writes `group["momentum"]`. torch's `foreach` and `differentiable` select
//! implementations of the same arithmetic and have no counterpart here.
//!
//! `fused` (torch's keyword; adamlab's default is true, torch's False) steps with the fused step
//! beside the reference ([`kernel`]; on Flex, NdArray and CubeCL tensors): one pass over θ, g
//! and the momentum buffer, in place, computing [`Sgd::reference_step`]'s arithmetic in its
//! order, so the numbers are the same (bit for bit on the CPU). Anything else (another backend
//! or dtype, autodiff tensors) takes the reference.

mod kernel;

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::RecordState;
use crate::hyper::{ConfigError, Interval, Keyword, Kind, CycledMomentum};
use crate::keywords::{LR, MOMENTUM};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Sgd`], with `torch.optim.SGD`'s defaults.
    pub struct SgdConfig {
        LR => 0.001;
        MOMENTUM.help("momentum factor μ (0: plain SGD, no momentum buffer)") => {
            /// Momentum factor μ (0: plain SGD, no state).
            momentum: f64 = 0.0,
        }
        DAMPENING => {
            /// Dampening τ of the gradient added to the momentum buffer.
            dampening: f64 = 0.0,
        }
        WEIGHT_DECAY;
        NESTEROV => {
            /// Nesterov momentum: step along `g + μ·b` instead of `b`. Requires a momentum and
            /// zero dampening, as torch does.
            nesterov: bool = false,
        }
        MAXIMIZE;
        FUSED;
    }
}

/// `dampening`: torch accepts any number.
pub const DAMPENING: Keyword = Keyword {
    name: "dampening",
    kind: Kind::Float(Interval::ANY),
    help: "dampening τ: the buffer takes (1 − τ)·g after the first step",
};
/// `nesterov`.
pub const NESTEROV: Keyword = Keyword {
    name: "nesterov",
    kind: Kind::Bool,
    help: "Nesterov momentum (needs momentum > 0 and dampening 0)",
};

/// The registry's `sgd`: `torch.optim.SGD`.
pub const SGD: OptimizerEntry = OptimizerEntry {
    name: "sgd",
    summary: "SGD; momentum, dampening, Nesterov and L2 weight decay as options",
    reference: "torch.optim.SGD (torch 2.15)",
    params: SgdConfig::PARAMS,
    build: |args| {
        let sgd = SgdConfig::new()
            .with_args(args)
            .build()?
            .with_cycled_momentum(args.cycled_momentum());
        Ok(Box::new(sgd))
    },
};

/// Nesterov momentum without a momentum or with dampening is an error (torch's own check).
fn nesterov_needs_momentum(config: &SgdConfig) -> Result<(), ConfigError> {
    if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
        return Err(ConfigError::Incompatible(
            "Nesterov momentum requires a momentum and zero dampening".to_string(),
        ));
    }
    Ok(())
}

/// SGD with momentum, computed as `torch.optim.SGD` computes it; see the [module](self) for the
/// update rule.
#[derive(Clone, Debug)]
pub struct Sgd {
    config: SgdConfig,
    /// μ set by a schedule at every step (OneCycleLR), when one cycles it.
    cycled_momentum: Option<CycledMomentum>,
}

crate::builds!(SgdConfig => Sgd { cycled_momentum }, check = nesterov_needs_momentum);

/// The state SGD keeps for one parameter, only when the momentum is not 0. Named as torch's
/// `state` dict names it.
#[derive(RecordState, Clone)]
pub struct SgdState<const D: usize> {
    /// The momentum buffer b (torch's `momentum_buffer`).
    pub momentum_buffer: Tensor<D>,
}

impl Sgd {
    /// This optimizer, taking μ from `momentum` at every step once it is set (OneCycleLR's
    /// momentum cycling; torch writes `group["momentum"]` before each step).
    pub fn with_cycled_momentum(mut self, momentum: Option<CycledMomentum>) -> Self {
        self.cycled_momentum = momentum;
        self
    }

    /// μ for the coming step: the schedule's when one cycles it, else the configuration's.
    fn momentum(&self) -> f64 {
        self.cycled_momentum
            .as_ref()
            .and_then(CycledMomentum::get)
            .unwrap_or(self.config.momentum)
    }

    /// One SGD step for one parameter tensor, written with tensor operations: the readable
    /// reference that the fused kernels must equal. Every backend and dtype runs it; see the
    /// [module](self) for the update rule.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<SgdState<D>>,
    ) -> (Tensor<D>, Option<SgdState<D>>) {
        let SgdConfig {
            momentum: _,
            dampening,
            weight_decay,
            nesterov,
            maximize,
            fused: _,
        } = self.config;
        let momentum = self.momentum();

        let mut g = if maximize { grad.neg() } else { grad };
        if weight_decay != 0.0 {
            // g ← g + λ·θ, as torch's `grad.add(param, alpha=weight_decay)`.
            g = g.add(theta.clone().mul_scalar(weight_decay));
        }

        let mut new_state = None;
        if momentum != 0.0 {
            let b = match state {
                // The first buffer is the gradient itself, as torch's `grad.detach().clone()`.
                None => g.clone(),
                // b ← μ·b + (1 − τ)·g, as torch's `buf.mul_(μ).add_(g, alpha=1 − τ)`; 1 − τ in f64.
                Some(SgdState { momentum_buffer: b }) => b
                    .mul_scalar(momentum)
                    .add(g.clone().mul_scalar(1.0 - dampening)),
            };
            g = if nesterov {
                // g ← g + μ·b, as torch's `grad.add(buf, alpha=μ)`.
                g.add(b.clone().mul_scalar(momentum))
            } else {
                b.clone()
            };
            new_state = Some(SgdState { momentum_buffer: b });
        }

        // θ ← θ − lr·g, as torch's `param.add_(g, alpha=−lr)`.
        let theta = theta.sub(g.mul_scalar(lr));
        (theta, new_state)
    }
}

crate::fused::impl_optimizer!(Sgd, SgdState { momentum_buffer });

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::Optimizer;
    use crate::testing::{self, tensor};
    use burn::tensor::{TensorData, Tolerance};

    const LR: f64 = 0.1;

    /// θ and the momentum buffer (if any) after each of `grads`, from θ₀ = [1, −2].
    fn trajectory(config: SgdConfig, grads: &[[f32; 2]]) -> Vec<(TensorData, Option<TensorData>)> {
        let look = |theta: &Tensor<1>, state: Option<&SgdState<1>>| {
            (theta.to_data(), state.map(|s| s.momentum_buffer.to_data()))
        };
        testing::trajectory(&config.build().unwrap(), LR, grads, look)
    }

    /// θ after each step, against hand-computed values. f32 holds these to ~1e-7; 1e-6 leaves
    /// room for the order of operations only.
    fn assert_thetas(config: SgdConfig, grads: &[[f32; 2]], expected: &[[f32; 2]]) {
        let steps = trajectory(config, grads);
        for ((theta, _), expected) in steps.iter().zip(expected) {
            theta.assert_approx_eq::<f32>(&TensorData::from(*expected), Tolerance::absolute(1e-6));
        }
    }

    const G: [[f32; 2]; 2] = [[0.5, -1.0], [0.25, 0.5]];

    /// Plain SGD: θ₁ = θ₀ − 0.1·[0.5, −1] = [0.95, −1.9];
    /// θ₂ = θ₁ − 0.1·[0.25, 0.5] = [0.925, −1.95].
    /// No momentum, no state, as torch keeps none.
    #[test]
    fn plain_sgd_steps_along_the_gradient_and_keeps_no_state() {
        assert_thetas(SgdConfig::new(), &G, &[[0.95, -1.9], [0.925, -1.95]]);
        assert!(
            trajectory(SgdConfig::new(), &G)
                .iter()
                .all(|(_, b)| b.is_none())
        );
    }

    /// μ = 0.9, τ = 0.5. Step 1: b = g₁ = [0.5, −1] (torch does not dampen the first buffer),
    /// θ₁ = [0.95, −1.9]. Step 2: b = 0.9·[0.5, −1] + 0.5·[0.25, 0.5] = [0.575, −0.65],
    /// θ₂ = [0.8925, −1.835].
    #[test]
    fn the_first_momentum_buffer_is_the_gradient_then_dampening_applies() {
        let config = SgdConfig::new().with_momentum(0.9).with_dampening(0.5);
        assert_thetas(config.clone(), &G, &[[0.95, -1.9], [0.8925, -1.835]]);
        let steps = trajectory(config, &G);
        let buffer = |i: usize| steps[i].1.clone().unwrap();
        testing::assert_near(&buffer(0), [0.5, -1.0]);
        testing::assert_near(&buffer(1), [0.575, -0.65]);
    }

    /// Nesterov, μ = 0.9. Step 1: b = g₁, g = 1.9·g₁ = [0.95, −1.9], θ₁ = [0.905, −1.81].
    /// Step 2: b = 0.9·g₁ + g₂ = [0.7, −0.4], g = g₂ + 0.9·b = [0.88, 0.14], θ₂ = [0.817, −1.824].
    #[test]
    fn nesterov_steps_along_the_gradient_plus_momentum_times_the_buffer() {
        let config = SgdConfig::new().with_momentum(0.9).with_nesterov(true);
        assert_thetas(config, &G, &[[0.905, -1.81], [0.817, -1.824]]);
    }

    /// λ = 0.5: g₁ + λθ₀ = [1, −2], θ₁ = [0.9, −1.8].
    #[test]
    fn weight_decay_adds_lambda_theta_to_the_gradient() {
        assert_thetas(
            SgdConfig::new().with_weight_decay(0.5),
            &G[..1],
            &[[0.9, -1.8]],
        );
    }

    /// `maximize` climbs: θ₁ = θ₀ + 0.1·g₁ = [1.05, −2.1].
    #[test]
    fn maximize_moves_along_the_gradient() {
        assert_thetas(
            SgdConfig::new().with_maximize(true),
            &G[..1],
            &[[1.05, -2.1]],
        );
    }

    /// A schedule that cycles the momentum (OneCycleLR) sets μ for the next step: with μ = 0.9
    /// configured and 0.5 set before step 2, b = 0.5·[0.5, −1] + [0.25, 0.5] = [0.5, 0] and
    /// θ₂ = [0.9, −1.9]. Unset, the configured μ applies (step 1 as plain momentum SGD).
    #[test]
    fn a_cycled_momentum_replaces_the_configured_one_once_set() {
        let cycled = CycledMomentum::default();
        let sgd = SgdConfig::new()
            .with_momentum(0.9)
            .build()
            .unwrap()
            .with_cycled_momentum(Some(cycled.clone()));
        let (theta, state) = sgd.step(LR, tensor([1.0, -2.0]), tensor(G[0]), None);
        cycled.set(0.5);
        let (theta, _) = sgd.step(LR, theta, tensor(G[1]), state);
        testing::assert_near(&theta.to_data(), [0.9, -1.9]);
    }

}
