//! burn's `Adam` and `AdamW`.

use crate::hyper::param;
use crate::adam::{ADAMW, AdamConfig as TorchAdamConfig};
use crate::registry::{EvalWeights, OptimizerEntry};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamW, AdamWConfig};

impl EvalWeights for Adam {}
impl EvalWeights for AdamW {}

/// `burn-adam`: burn's `AdamConfig` with torch's defaults (ε 1e-8).
pub const BURN_ADAM: OptimizerEntry = OptimizerEntry {
    name: "burn-adam",
    summary: "burn's built-in Adam, given torch's defaults (eps 1e-8), for comparison",
    reference: "burn::optim::Adam (burn 0.22.1)",
    // lr, betas, eps, weight_decay, amsgrad: Adam's.
    params: &[
        param(TorchAdamConfig::PARAMS, "lr"),
        param(TorchAdamConfig::PARAMS, "betas"),
        param(TorchAdamConfig::PARAMS, "eps"),
        param(TorchAdamConfig::PARAMS, "weight_decay"),
        param(TorchAdamConfig::PARAMS, "amsgrad"),
    ],
    build: |args| {
        let (beta1, beta2) = args.pair("betas");
        let weight_decay = args.f64("weight_decay");
        let adam = AdamConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(args.f64("eps") as f32)
            .with_amsgrad(args.bool("amsgrad"))
            .with_weight_decay((weight_decay != 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)))
            .build();
        Ok(Box::new(adam))
    },
};

/// `burn-adamw`: burn's `AdamWConfig` with torch's defaults (ε 1e-8, weight decay 1e-2).
pub const BURN_ADAMW: OptimizerEntry = OptimizerEntry {
    name: "burn-adamw",
    summary: "burn's built-in AdamW, given torch's defaults (eps 1e-8, weight_decay 1e-2)",
    reference: "burn::optim::AdamW (burn 0.22.1)",
    // lr, betas, eps, weight_decay, amsgrad: AdamW's.
    params: &[
        ADAMW.params[0],
        ADAMW.params[1],
        ADAMW.params[2],
        ADAMW.params[3],
        ADAMW.params[4],
    ],
    build: |args| {
        let (beta1, beta2) = args.pair("betas");
        let adamw = AdamWConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(args.f64("eps") as f32)
            .with_amsgrad(args.bool("amsgrad"))
            .with_weight_decay(args.f64("weight_decay") as f32)
            .build();
        Ok(Box::new(adamw))
    },
};
