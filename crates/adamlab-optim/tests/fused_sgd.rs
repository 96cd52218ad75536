//! The fused SGD step against its tensor-op reference ([`Sgd::reference_step`]), on every
//! backend compiled in, for every option (momentum, dampening, nesterov, weight decay,
//! maximize) and on the edge cases of [`common`]: random values, zeros, tiny and huge values,
//! gradients that flip sign, a clone of θ kept alive elsewhere, transposed parameters. The
//! tolerances (bit for bit on flex and ndarray, atol 1e-6 + rtol 1e-5 on wgpu) and their
//! reasons are in [`common`].
//!
//! [`Sgd::reference_step`]: adamlab_optim::sgd::Sgd::reference_step

mod common;

use adamlab_optim::sgd::{Sgd, SgdConfig, SgdState};
use burn::tensor::Tensor;
use common::Fusable;

impl Fusable for SgdConfig {
    type Optimizer = Sgd;

    fn build(&self, fused: bool) -> Sgd {
        self.clone().with_fused(fused).build().unwrap()
    }

    fn reference_step(
        sgd: &Sgd,
        lr: f64,
        theta: Tensor<2>,
        grad: Tensor<2>,
        state: Option<SgdState<2>>,
    ) -> (Tensor<2>, Option<SgdState<2>>) {
        sgd.reference_step(lr, theta, grad, state)
    }

    fn state_tensors(state: &SgdState<2>) -> Vec<(&'static str, Tensor<2>)> {
        vec![("momentum_buffer", state.momentum_buffer.clone())]
    }
}

/// Every option of SGD, one at a time and together.
fn configs() -> Vec<(&'static str, SgdConfig)> {
    let momentum = || SgdConfig::new().with_momentum(0.9);
    vec![
        ("plain", SgdConfig::new()),
        ("weight-decay", SgdConfig::new().with_weight_decay(0.1)),
        ("maximize", SgdConfig::new().with_maximize(true)),
        ("momentum", momentum()),
        ("momentum-dampening", momentum().with_dampening(0.3)),
        ("nesterov", momentum().with_nesterov(true)),
        (
            "nesterov-weight-decay-maximize",
            momentum()
                .with_nesterov(true)
                .with_weight_decay(0.5)
                .with_maximize(true),
        ),
        (
            "momentum-dampening-weight-decay",
            SgdConfig::new()
                .with_momentum(0.5)
                .with_dampening(0.5)
                .with_weight_decay(0.01),
        ),
    ]
}

#[test]
fn fused_sgd_equals_the_reference_step_for_every_option_edge_case_and_layout() {
    common::assert_fused_equals_reference(&configs());
}

#[test]
fn fused_and_reference_sgd_steps_resume_each_others_state() {
    common::assert_fused_and_reference_resume_each_other(&configs());
}

#[test]
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn fused_cpu_sgd_step_updates_unshared_buffers_in_place_and_copies_shared_ones() {
    let nesterov = SgdConfig::new().with_momentum(0.9).with_nesterov(true);
    common::assert_fused_cpu_step_is_in_place("nesterov", &nesterov);
}

#[test]
fn fused_sgd_falls_back_to_the_reference_step_on_f64_and_autodiff_tensors() {
    let config = SgdConfig::new().with_momentum(0.9).with_weight_decay(0.1);
    common::assert_fallback_is_the_reference("momentum-weight-decay", &config);
}
