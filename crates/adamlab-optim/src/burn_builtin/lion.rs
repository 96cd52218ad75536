//! burn's `Lion`.

use crate::hyper::param;
use crate::keywords;
use crate::lion::LionConfig as TorchLionConfig;
use crate::registry::{EvalWeights, OptimizerEntry};
use burn::optim::{Lion, LionConfig};

impl EvalWeights for Lion {}

/// `burn-lion`: burn's `LionConfig`, whose defaults are lion-pytorch's (β = (0.9, 0.99), λ = 0).
///
/// burn's weight decay is lion-pytorch's default one, `θ ← θ·(1 − lr·λ)`; lion-pytorch's
/// `decoupled_weight_decay` has no burn counterpart and is not offered. burn keeps β₁, β₂ and λ
/// as f32, so its `1 − β` are computed in f32 (lion-pytorch: in f64, then rounded).
pub const BURN_LION: OptimizerEntry = OptimizerEntry {
    name: "burn-lion",
    summary: "burn's built-in Lion, for comparison (no decoupled_weight_decay)",
    reference: "burn::optim::Lion (burn 0.22.1)",
    params: &[
        keywords::LR.with_default(param(TorchLionConfig::PARAMS, "lr").default),
        param(TorchLionConfig::PARAMS, "betas"),
        param(TorchLionConfig::PARAMS, "weight_decay"),
    ],
    build: |args| {
        let (beta1, beta2) = args.pair("betas");
        let lion = LionConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_weight_decay(args.f64("weight_decay") as f32)
            .build();
        Ok(Box::new(lion))
    },
};
