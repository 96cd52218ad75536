//! burn's `Adafactor`.
//!
//! burn 0.22.1's Adafactor is the paper's variant: ε₁ (default 1e-30) is added to G² before the
//! second moments are taken, where torch floors the variance estimate with ε₁ (default the
//! dtype's machine epsilon) instead. Everything else — relative step `min(lr, 1/√t)`, parameter
//! scale `max(ε₂, RMS(θ))`, update clipping at RMS d, decay `1 − t^τ`, decoupled weight decay
//! `1 − lr·λ`, factors over the last two dimensions — is torch's, so the two agree wherever
//! neither ε₁ matters (gradients well above 1e-15 and a mean row factor above torch's ε₁).

use crate::hyper::param;
use crate::adafactor::AdafactorConfig as TorchAdafactorConfig;
use crate::hyper::{ConfigError, HyperParam, Interval, Kind};
use crate::registry::{EvalWeights, OptimizerEntry};
use burn::optim::{Adafactor, AdafactorConfig};

impl EvalWeights for Adafactor {}

/// `beta2_decay`: burn requires τ < 0 (torch allows 0).
pub const BETA2_DECAY: HyperParam = HyperParam {
    kind: Kind::Float(Interval::new(f64::NEG_INFINITY, false, 0.0, false)),
    ..param(TorchAdafactorConfig::PARAMS, "beta2_decay")
};
/// `eps`: (ε₁, ε₂) with burn's meaning and defaults.
pub const EPS: HyperParam = HyperParam {
    name: "eps",
    kind: Kind::Tuple(&[
        Kind::Float(Interval::POSITIVE),
        Kind::Float(Interval::POSITIVE),
    ]),
    default: "(1e-30, 1e-3)",
    help: "(ε₁, ε₂), burn's: ε₁ is added to G² (the paper's), ε₂ floors RMS(θ)",
};
/// `d`: burn's clipping threshold only needs to be positive (torch requires ≥ 1).
pub const D: HyperParam = HyperParam {
    kind: Kind::Float(Interval::POSITIVE),
    ..param(TorchAdafactorConfig::PARAMS, "d")
};

/// `burn-adafactor`: burn's `AdafactorConfig`, with torch's keywords.
pub const BURN_ADAFACTOR: OptimizerEntry = OptimizerEntry {
    name: "burn-adafactor",
    summary: "burn's built-in Adafactor: the paper's ε₁ = 1e-30 added to G² where torch floors V̂",
    reference: "burn::optim::Adafactor (burn 0.22.1)",
    params: &[
        param(TorchAdafactorConfig::PARAMS, "lr"),
        BETA2_DECAY,
        EPS,
        D,
        param(TorchAdafactorConfig::PARAMS, "weight_decay"),
    ],
    build: |args| {
        let (eps1, eps2) = args.pair("eps");
        let adafactor = AdafactorConfig::new()
            .with_decay_rate(args.f64("beta2_decay"))
            .with_epsilon_1(positive_f32(&EPS, eps1)?)
            .with_epsilon_2(positive_f32(&EPS, eps2)?)
            .with_clip_threshold(positive_f32(&D, args.f64("d"))?)
            .with_weight_decay(args.f64("weight_decay") as f32)
            .build();
        Ok(Box::new(adafactor))
    },
};

/// `value` as the f32 burn keeps, which must still be positive and finite (burn's `build` panics
/// otherwise): 1e-50 is a valid f64 but 0 in f32.
fn positive_f32(param: &HyperParam, value: f64) -> Result<f32, ConfigError> {
    let narrowed = value as f32;
    if narrowed.is_finite() && narrowed > 0.0 {
        Ok(narrowed)
    } else {
        Err(ConfigError::OutOfRange {
            name: param.name,
            value: format!("{value:?}"),
            expected: "positive and finite in f32, as burn keeps it".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::OptimizerSpec;

    #[test]
    fn values_burn_would_panic_on_are_errors() {
        for spec in [
            "burn-adafactor(eps=(1e-50, 1e-3))",
            "burn-adafactor(d=1e40)",
            "burn-adafactor(beta2_decay=0)",
        ] {
            let message = OptimizerSpec::parse(spec).unwrap_err().to_string();
            assert!(
                message.starts_with("burn-adafactor: invalid"),
                "{spec}: {message}"
            );
        }
        assert!(
            OptimizerSpec::parse("burn-adafactor(eps=(1e-20, 1e-2), d=0.5, weight_decay=0.1)")
                .is_ok()
        );
    }
}
