//! burn's `Muon`, for the 2-D parameters, with burn's `AdamW` for the others.
//!
//! burn 0.22.1's Muon panics on any parameter that is not 2-D, so the entry pairs it with burn's
//! AdamW, as adamlab's `muon` pairs torch's Muon with AdamW. Where it differs from torch's Muon:
//! the Newton–Schulz iteration runs in f32 (torch: bfloat16); the momentum is SGD's with
//! dampening 0, `v ← μ·v + g`, first `v = g` (torch: `B ← B + (1 − μ)(g − B)` from 0, that is
//! (1 − μ)·v, a scale the normalisation removes unless ‖U‖ < ε); `adjust_lr_fn` reads `dims[0]`
//! and `dims[1]` as A and B, which on burn's `[fan_in, fan_out]` Linear weight are torch's B and
//! A; there is no `spectral_unclamped`. burn's AdamW adds ε before its bias correction.

use crate::hyper::param;
use crate::hyper::{HyperParam, Kind, Value};
use crate::muon::MuonConfig as TorchMuonConfig;
use crate::registry::{EvalWeights, OptimizerEntry};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamW, AdamWConfig, AdamWState, AdjustLrFn, LearningRate, Muon, MuonConfig, MuonState,
    Optimizer, RecordState, StateSink, StateSource, join_path,
};
use burn::tensor::{Device, Tensor};

/// `adjust_lr_fn`: burn has `original` (the default, `None`) and `match_rms_adamw`.
pub const ADJUST_LR_FN: HyperParam = HyperParam {
    kind: Kind::Optional(&Kind::Choice(&["original", "match_rms_adamw"])),
    help: "lr scaling by dims[0] = A, dims[1] = B: original √max(1, A/B) (None), match_rms_adamw 0.2√max(A, B)",
    ..param(TorchMuonConfig::PARAMS, "adjust_lr_fn")
};

/// `burn-muon`: burn's `MuonConfig` on 2-D parameters and `AdamWConfig` on the others, with
/// torch's keywords and defaults.
pub const BURN_MUON: OptimizerEntry = OptimizerEntry {
    name: "burn-muon",
    summary: "burn's built-in Muon (f32 Newton–Schulz) on 2-D weights, burn's AdamW on the others",
    reference: "burn::optim::Muon + burn::optim::AdamW (burn 0.22.1)",
    // torch's Muon's keywords, adjust_lr_fn without spectral_unclamped.
    params: &[
        param(TorchMuonConfig::PARAMS, "lr"),
        param(TorchMuonConfig::PARAMS, "weight_decay"),
        param(TorchMuonConfig::PARAMS, "momentum"),
        param(TorchMuonConfig::PARAMS, "nesterov"),
        param(TorchMuonConfig::PARAMS, "ns_coefficients"),
        param(TorchMuonConfig::PARAMS, "eps"),
        param(TorchMuonConfig::PARAMS, "ns_steps"),
        ADJUST_LR_FN,
        param(TorchMuonConfig::PARAMS, "adamw_betas"),
        param(TorchMuonConfig::PARAMS, "adamw_eps"),
        param(TorchMuonConfig::PARAMS, "adamw_weight_decay"),
    ],
    build: |args| {
        let [a, b, c] = args.floats("ns_coefficients")[..] else {
            unreachable!("ns_coefficients is checked to be a triple")
        };
        let adjust_lr_fn = match &args.values()["adjust_lr_fn"] {
            Value::Name(name) if name == "match_rms_adamw" => AdjustLrFn::MatchRmsAdamW,
            _ => AdjustLrFn::Original,
        };
        let weight_decay = args.f64("weight_decay");
        let muon = MuonConfig::new()
            .with_weight_decay(
                (weight_decay != 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .with_momentum(MomentumConfig {
                momentum: args.f64("momentum"),
                dampening: 0.0,
                nesterov: args.bool("nesterov"),
            })
            .with_ns_coefficients((a as f32, b as f32, c as f32))
            .with_epsilon(args.f64("eps") as f32)
            .with_ns_steps(args.usize("ns_steps"))
            .with_adjust_lr_fn(adjust_lr_fn)
            .build();
        let (beta1, beta2) = args.pair("adamw_betas");
        let adamw = AdamWConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(args.f64("adamw_eps") as f32)
            .with_weight_decay(args.f64("adamw_weight_decay") as f32)
            .build();
        Ok(Box::new(MuonWithAdamW { muon, adamw }))
    },
};

/// burn's [`Muon`] on the 2-D parameters, burn's [`AdamW`] on every other one.
#[derive(Clone)]
pub struct MuonWithAdamW {
    muon: Muon,
    adamw: AdamW,
}

/// The state of one parameter: burn's Muon state if it is 2-D, burn's AdamW state otherwise,
/// recorded under `muon.` or `adamw.`.
#[derive(Clone)]
pub struct MuonWithAdamWState<const D: usize> {
    /// burn's Muon state (its momentum), for a 2-D parameter.
    pub muon: Option<MuonState<D>>,
    /// burn's AdamW state, for the others.
    pub adamw: Option<AdamWState<D>>,
}

impl<const D: usize> RecordState for MuonWithAdamWState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(muon) = &self.muon {
            muon.state_flatten(&join_path(prefix, "muon"), out);
        }
        if let Some(adamw) = &self.adamw {
            adamw.state_flatten(&join_path(prefix, "adamw"), out);
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let (muon, adamw) = (join_path(prefix, "muon"), join_path(prefix, "adamw"));
        let muon = match src.has_under(&muon) {
            true => Some(MuonState::state_unflatten(&muon, src, device)?),
            false => None,
        };
        let adamw = match src.has_under(&adamw) {
            true => Some(AdamWState::state_unflatten(&adamw, src, device)?),
            false => None,
        };
        Some(Self { muon, adamw })
    }
}

impl EvalWeights for MuonWithAdamW {}

impl Optimizer for MuonWithAdamW {
    type State<const D: usize> = MuonWithAdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if D == 2 {
            let (tensor, muon) = self.muon.step(lr, tensor, grad, state.and_then(|s| s.muon));
            (tensor, Some(MuonWithAdamWState { muon, adamw: None }))
        } else {
            let (tensor, adamw) = self
                .adamw
                .step(lr, tensor, grad, state.and_then(|s| s.adamw));
            (tensor, Some(MuonWithAdamWState { muon: None, adamw }))
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        MuonWithAdamWState {
            muon: state.muon.map(|s| Muon::to_device(s, device)),
            adamw: state.adamw.map(|s| AdamW::to_device(s, device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::OptimizerSpec;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor};

    /// A Linear layer (2-D weight, 1-D bias) trains: burn's Muon alone would panic on the bias.
    #[test]
    fn a_linear_layer_with_a_bias_steps_and_resumes() {
        let device = Device::flex().autodiff();
        let lab = OptimizerSpec::parse("burn-muon(adjust_lr_fn=match_rms_adamw)")
            .unwrap()
            .build()
            .unwrap();
        let mut model: Linear = LinearConfig::new(3, 2).init(&device);
        let input = Tensor::<2>::ones([4, 3], &device);
        let grads = |model: &Linear| {
            GradientsParams::from_grads(model.forward(input.clone()).sum().backward(), model)
        };
        let mut optimizer = lab.module_optimizer();
        let before = model.bias.as_ref().unwrap().val().to_data();
        model = optimizer.step(1e-2, model.clone(), grads(&model));
        assert_ne!(model.bias.as_ref().unwrap().val().to_data(), before);
        let bytes = optimizer.into_bytes().unwrap();
        let mut restored = lab.module_optimizer().from_bytes(bytes).unwrap();
        let expected = optimizer.step(1e-2, model.clone(), grads(&model));
        let actual = restored.step(1e-2, model.clone(), grads(&model));
        expected
            .weight
            .val()
            .to_data()
            .assert_eq(&actual.weight.val().to_data(), true);
    }
}
