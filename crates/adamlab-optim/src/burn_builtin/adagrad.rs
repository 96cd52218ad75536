//! burn's `AdaGrad`.
//!
//! burn 0.22.1's AdaGrad computes torch's Adagrad in exact arithmetic for the options it has
//! (`lr_decay`, `weight_decay`, `eps`): `θ − η_t·g/(√s + ε)` with `η_t = lr/(1 + (t − 1)·lr_decay)`.
//! It has no `initial_accumulator_value` (its sum starts at 0, torch's default) and no
//! `maximize`, so neither is offered here. It evaluates `(g/(√s + ε))·η_t` where torch evaluates
//! `(η_t·g)/(√s + ε)`, which differs by f32 rounding only.

use crate::hyper::param;
use crate::adagrad::AdagradConfig;
use crate::registry::{EvalWeights, OptimizerEntry};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdaGrad, AdaGradConfig};

impl EvalWeights for AdaGrad {}

/// `burn-adagrad`: burn's `AdaGradConfig` with torch's defaults (ε 1e-10 rather than burn's 1e-5).
pub const BURN_ADAGRAD: OptimizerEntry = OptimizerEntry {
    name: "burn-adagrad",
    summary: "burn's built-in AdaGrad, given torch's defaults (eps 1e-10), for comparison",
    reference: "burn::optim::AdaGrad (burn 0.22.1)",
    // lr, lr_decay, weight_decay, eps: Adagrad's.
    params: &[
        param(AdagradConfig::PARAMS, "lr"),
        param(AdagradConfig::PARAMS, "lr_decay"),
        param(AdagradConfig::PARAMS, "weight_decay"),
        param(AdagradConfig::PARAMS, "eps"),
    ],
    build: |args| {
        let weight_decay = args.f64("weight_decay");
        let adagrad = AdaGradConfig::new()
            .with_lr_decay(args.f64("lr_decay"))
            .with_epsilon(args.f64("eps") as f32)
            .with_weight_decay(
                (weight_decay != 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .build();
        Ok(Box::new(adagrad))
    },
};
