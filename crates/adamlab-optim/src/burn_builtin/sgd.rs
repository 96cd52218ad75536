//! burn's `Sgd`, with its momentum and weight decay.
//!
//! burn's `MomentumConfig` defaults to momentum 0.9 and dampening 0.1; this entry takes torch's
//! defaults (0 and 0) under torch's names, and gives burn no momentum at all when the momentum is
//! 0, as torch keeps no buffer then (burn's `Momentum` with μ = 0 would still dampen the gradient
//! from the second step on). burn has no `maximize`, so none is offered; burn accepts Nesterov
//! with dampening, which torch refuses, so this entry accepts it too.

use crate::hyper::param;
use crate::hyper::{ConfigError, HyperParam};
use crate::registry::{EvalWeights, OptimizerEntry};
use crate::sgd::SgdConfig as TorchSgdConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Sgd, SgdConfig};

impl EvalWeights for Sgd {}

/// `nesterov` as burn takes it: with dampening too, which torch refuses.
const BURN_NESTEROV: HyperParam = HyperParam {
    help: "Nesterov momentum (needs momentum > 0; burn, unlike torch, allows dampening)",
    ..param(TorchSgdConfig::PARAMS, "nesterov")
};

/// `burn-sgd`: burn's `SgdConfig` with torch's defaults (no momentum, no dampening).
pub const BURN_SGD: OptimizerEntry = OptimizerEntry {
    name: "burn-sgd",
    summary: "burn's built-in SGD (momentum, L2 decay), given torch's defaults, for comparison",
    reference: "burn::optim::Sgd (burn 0.22.1)",
    // lr, momentum, dampening, weight_decay: SGD's.
    params: &[
        param(TorchSgdConfig::PARAMS, "lr"),
        param(TorchSgdConfig::PARAMS, "momentum"),
        param(TorchSgdConfig::PARAMS, "dampening"),
        param(TorchSgdConfig::PARAMS, "weight_decay"),
        BURN_NESTEROV,
    ],
    build: |args| {
        let momentum = args.f64("momentum");
        let nesterov = args.bool("nesterov");
        if nesterov && momentum == 0.0 {
            // Without a momentum burn gets no `MomentumConfig`, so there is no Nesterov to apply.
            return Err(ConfigError::Incompatible(
                "Nesterov momentum requires a momentum".to_string(),
            ));
        }
        let weight_decay = args.f64("weight_decay");
        let sgd = SgdConfig::new()
            .with_momentum((momentum != 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(args.f64("dampening"))
                    .with_nesterov(nesterov)
            }))
            .with_weight_decay(
                (weight_decay != 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .build();
        Ok(Box::new(sgd))
    },
};
