//! The fused Adamax step against its tensor-op reference ([`Adamax::reference_step`]), on every
//! backend compiled in, for every option (β₁ and its two lerp forms, β₂, ε, weight decay,
//! maximize) and on the edge cases of [`common`]: random values, zeros (u = 0 and 0/0 with
//! ε = 0), tiny and huge values (where the single rounding of torch's multiply-adds matters),
//! gradients that flip sign, a clone of θ kept alive elsewhere, transposed parameters. The
//! tolerances (bit for bit on flex and ndarray, atol 1e-6 + rtol 1e-5 on wgpu) and their reasons
//! are in [`common`].
//!
//! [`Adamax::reference_step`]: adamlab_optim::adamax::Adamax::reference_step

mod common;

use adamlab_optim::adamax::{Adamax, AdamaxConfig, AdamaxState};
use burn::tensor::Tensor;
use common::Fusable;

impl Fusable for AdamaxConfig {
    type Optimizer = Adamax;

    fn build(&self, fused: bool) -> Adamax {
        self.clone().with_fused(fused).build().unwrap()
    }

    fn reference_step(
        adamax: &Adamax,
        lr: f64,
        theta: Tensor<2>,
        grad: Tensor<2>,
        state: Option<AdamaxState<2>>,
    ) -> (Tensor<2>, Option<AdamaxState<2>>) {
        adamax.reference_step(lr, theta, grad, state)
    }

    fn state_tensors(state: &AdamaxState<2>) -> Vec<(&'static str, Tensor<2>)> {
        vec![
            ("exp_avg", state.exp_avg.clone()),
            ("exp_inf", state.exp_inf.clone()),
        ]
    }

    fn step_count(state: &AdamaxState<2>) -> Option<usize> {
        Some(state.step)
    }
}

/// Every option of Adamax, one at a time and together; β₁ 0.3 and 0.5 for torch's other lerp
/// form (weight 1 − β₁ ≥ 0.5), ε = 0.
fn configs() -> Vec<(&'static str, AdamaxConfig)> {
    vec![
        ("default", AdamaxConfig::new()),
        (
            "weight-decay-maximize",
            AdamaxConfig::new()
                .with_weight_decay(0.1)
                .with_maximize(true),
        ),
        ("beta1-0.3", AdamaxConfig::new().with_beta1(0.3)),
        ("eps-0", AdamaxConfig::new().with_eps(0.0)),
        (
            "all",
            AdamaxConfig::new()
                .with_beta1(0.5)
                .with_beta2(0.9)
                .with_eps(1e-3)
                .with_weight_decay(0.5)
                .with_maximize(true),
        ),
    ]
}

#[test]
fn fused_adamax_equals_the_reference_step_for_every_option_edge_case_and_layout() {
    common::assert_fused_equals_reference(&configs());
}

#[test]
fn fused_and_reference_adamax_steps_resume_each_others_state() {
    common::assert_fused_and_reference_resume_each_other(&configs());
}

#[test]
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn fused_cpu_adamax_step_updates_unshared_buffers_in_place_and_copies_shared_ones() {
    common::assert_fused_cpu_step_is_in_place(
        "weight-decay",
        &AdamaxConfig::new().with_weight_decay(0.1),
    );
}

#[test]
fn fused_adamax_falls_back_to_the_reference_step_on_f64_and_autodiff_tensors() {
    common::assert_fallback_is_the_reference(
        "weight-decay",
        &AdamaxConfig::new().with_weight_decay(0.1),
    );
}
