//! burn's `RmsProp`.
//!
//! burn 0.22.1's RmsProp computes torch's RMSprop in exact arithmetic for the options it has
//! (`alpha`, `eps`, `weight_decay`, `momentum`, `centered`), but its defaults differ: momentum
//! 0.9 (torch: 0) and ε 1e-5 (torch: 1e-8). This entry gives it torch's. It has no `maximize`,
//! so that is not offered. Its arithmetic differs from torch's in rounding only: it forms
//! `1 − α` in f32 from an f32 α (torch rounds the f64 `1 − α` to f32: for α = 0.99 the two are
//! 0.0099999905 and 0.01), and it updates the centered average as `α·ḡ + (1 − α)·g` rather than
//! torch's `lerp`.

use crate::registry::{EvalWeights, OptimizerEntry};
use crate::rmsprop::RmsPropConfig as TorchRmsPropConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{RmsProp, RmsPropConfig};

impl EvalWeights for RmsProp {}

/// `burn-rmsprop`: burn's `RmsPropConfig` with torch's defaults (momentum 0, ε 1e-8).
pub const BURN_RMSPROP: OptimizerEntry = OptimizerEntry {
    name: "burn-rmsprop",
    summary: "burn's built-in RmsProp, given torch's defaults (momentum 0, eps 1e-8), for comparison",
    reference: "burn::optim::RmsProp (burn 0.22.1)",
    // RMSprop's keywords but maximize and fused.
    params: TorchRmsPropConfig::PARAMS.split_at(6).0,
    build: |args| {
        let weight_decay = args.f64("weight_decay");
        let rmsprop = RmsPropConfig::new()
            .with_alpha(args.f64("alpha") as f32)
            .with_epsilon(args.f64("eps") as f32)
            .with_momentum(args.f64("momentum") as f32)
            .with_centered(args.bool("centered"))
            .with_weight_decay(
                (weight_decay != 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .build();
        Ok(Box::new(rmsprop))
    },
};
