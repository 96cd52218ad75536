//! The fused Adagrad step against its tensor-op reference ([`Adagrad::reference_step`]), on
//! every backend compiled in, for every option (lr_decay, weight decay, the initial accumulator,
//! ε, maximize) and on the edge cases of [`common`]: random values, zeros (√s + ε = ε), tiny and
//! huge values (g² underflows and overflows), gradients that flip sign, a clone of θ kept alive
//! elsewhere, transposed parameters. The tolerances (bit for bit on flex and ndarray, atol 1e-6
//! + rtol 1e-5 on wgpu) and their reasons are in [`common`].
//!
//! [`Adagrad::reference_step`]: adamlab_optim::adagrad::Adagrad::reference_step

mod common;

use adamlab_optim::adagrad::{Adagrad, AdagradConfig, AdagradState};
use burn::tensor::Tensor;
use common::Fusable;

impl Fusable for AdagradConfig {
    type Optimizer = Adagrad;

    fn build(&self, fused: bool) -> Adagrad {
        self.clone().with_fused(fused).build().unwrap()
    }

    fn reference_step(
        adagrad: &Adagrad,
        lr: f64,
        theta: Tensor<2>,
        grad: Tensor<2>,
        state: Option<AdagradState<2>>,
    ) -> (Tensor<2>, Option<AdagradState<2>>) {
        adagrad.reference_step(lr, theta, grad, state)
    }

    fn state_tensors(state: &AdagradState<2>) -> Vec<(&'static str, Tensor<2>)> {
        vec![("sum", state.sum.clone())]
    }

    fn step_count(state: &AdagradState<2>) -> Option<usize> {
        Some(state.step)
    }
}

/// Every option of Adagrad, one at a time and together.
fn configs() -> Vec<(&'static str, AdagradConfig)> {
    vec![
        ("default", AdagradConfig::new()),
        ("lr-decay", AdagradConfig::new().with_lr_decay(0.5)),
        ("weight-decay", AdagradConfig::new().with_weight_decay(0.1)),
        (
            "initial-accumulator-eps",
            AdagradConfig::new()
                .with_initial_accumulator_value(0.1)
                .with_eps(1e-3),
        ),
        ("eps-0", AdagradConfig::new().with_eps(0.0)),
        (
            "all",
            AdagradConfig::new()
                .with_lr_decay(0.01)
                .with_weight_decay(0.5)
                .with_initial_accumulator_value(1.0)
                .with_maximize(true),
        ),
    ]
}

#[test]
fn fused_adagrad_equals_the_reference_step_for_every_option_edge_case_and_layout() {
    common::assert_fused_equals_reference(&configs());
}

#[test]
fn fused_and_reference_adagrad_steps_resume_each_others_state() {
    common::assert_fused_and_reference_resume_each_other(&configs());
}

#[test]
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn fused_cpu_adagrad_step_updates_unshared_buffers_in_place_and_copies_shared_ones() {
    common::assert_fused_cpu_step_is_in_place(
        "weight-decay",
        &AdagradConfig::new().with_weight_decay(0.1),
    );
}

#[test]
fn fused_adagrad_falls_back_to_the_reference_step_on_f64_and_autodiff_tensors() {
    common::assert_fallback_is_the_reference(
        "weight-decay",
        &AdagradConfig::new().with_weight_decay(0.1),
    );
}
