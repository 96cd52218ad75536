//! The fused Lion step against its tensor-op reference ([`Lion::reference_step`]), on every
//! backend compiled in, for every option (β₁, β₂, weight decay, decoupled weight decay) and on
//! the edge cases of [`common`]: random values, zeros (where sign(c) is 0), tiny and huge values
//! (where c overflows to ±∞ or NaN, whose sign is 0), gradients that flip sign, a clone of θ
//! kept alive elsewhere, transposed parameters. The tolerances (bit for bit on flex and
//! ndarray, atol 1e-6 + rtol 1e-5 on wgpu) and their reasons are in [`common`].
//!
//! [`Lion::reference_step`]: adamlab_optim::lion::Lion::reference_step

mod common;

use adamlab_optim::lion::{Lion, LionConfig, LionState};
use burn::tensor::Tensor;
use common::Fusable;

impl Fusable for LionConfig {
    type Optimizer = Lion;

    fn build(&self, fused: bool) -> Lion {
        self.clone().with_fused(fused).build().unwrap()
    }

    fn reference_step(
        lion: &Lion,
        lr: f64,
        theta: Tensor<2>,
        grad: Tensor<2>,
        state: Option<LionState<2>>,
    ) -> (Tensor<2>, Option<LionState<2>>) {
        lion.reference_step(lr, theta, grad, state)
    }

    fn state_tensors(state: &LionState<2>) -> Vec<(&'static str, Tensor<2>)> {
        vec![("exp_avg", state.exp_avg.clone())]
    }
}

/// Every option of Lion, one at a time and together.
fn configs() -> Vec<(&'static str, LionConfig)> {
    vec![
        ("default", LionConfig::new()),
        ("weight-decay", LionConfig::new().with_weight_decay(0.1)),
        (
            "decoupled-weight-decay",
            LionConfig::new()
                .with_weight_decay(1e-3)
                .with_decoupled_weight_decay(true)
                .with_init_lr(3e-3),
        ),
        (
            "betas-0.5-0.5-weight-decay",
            LionConfig::new()
                .with_beta1(0.5)
                .with_beta2(0.5)
                .with_weight_decay(0.5),
        ),
        ("beta1-0", LionConfig::new().with_beta1(0.0)),
    ]
}

#[test]
fn fused_lion_equals_the_reference_step_for_every_option_edge_case_and_layout() {
    common::assert_fused_equals_reference(&configs());
}

#[test]
fn fused_and_reference_lion_steps_resume_each_others_state() {
    common::assert_fused_and_reference_resume_each_other(&configs());
}

#[test]
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn fused_cpu_lion_step_updates_unshared_buffers_in_place_and_copies_shared_ones() {
    common::assert_fused_cpu_step_is_in_place(
        "weight-decay",
        &LionConfig::new().with_weight_decay(0.1),
    );
}

#[test]
fn fused_lion_falls_back_to_the_reference_step_on_f64_and_autodiff_tensors() {
    common::assert_fallback_is_the_reference(
        "weight-decay",
        &LionConfig::new().with_weight_decay(0.1),
    );
}
