//! The fused Adam step against its tensor-op reference ([`Adam::reference_step`]), on every
//! backend compiled in, for every option and on edge cases: random values, zeros, tiny and huge
//! values, gradients that flip sign, AMSGrad's maximum, `maximize`, a clone of θ kept alive
//! elsewhere, and transposed (non-contiguous) parameters. The tolerances (bit for bit on flex
//! and ndarray, atol 1e-6 + rtol 1e-5 on wgpu) and their reasons are in [`common`].
//!
//! [`Adam::reference_step`]: adamlab_optim::Adam::reference_step

mod common;

use adamlab_optim::{Adam, AdamConfig, AdamState};
use burn::tensor::Tensor;
use common::Fusable;

impl Fusable for AdamConfig {
    type Optimizer = Adam;

    fn build(&self, fused: bool) -> Adam {
        self.clone().with_fused(fused).build().unwrap()
    }

    fn reference_step(
        adam: &Adam,
        lr: f64,
        theta: Tensor<2>,
        grad: Tensor<2>,
        state: Option<AdamState<2>>,
    ) -> (Tensor<2>, Option<AdamState<2>>) {
        adam.reference_step(lr, theta, grad, state)
    }

    fn state_tensors(state: &AdamState<2>) -> Vec<(&'static str, Tensor<2>)> {
        let mut tensors = vec![
            ("exp_avg", state.exp_avg.clone()),
            ("exp_avg_sq", state.exp_avg_sq.clone()),
        ];
        if let Some(v_max) = &state.max_exp_avg_sq {
            tensors.push(("max_exp_avg_sq", v_max.clone()));
        }
        tensors
    }

    fn step_count(state: &AdamState<2>) -> Option<usize> {
        Some(state.step)
    }
}

/// Every option of Adam and AdamW, one configuration each and all at once.
fn configs() -> Vec<(&'static str, AdamConfig)> {
    vec![
        ("default", AdamConfig::new()),
        ("l2-weight-decay", AdamConfig::new().with_weight_decay(0.1)),
        ("adamw", AdamConfig::adamw().with_weight_decay(0.1)),
        ("amsgrad", AdamConfig::new().with_amsgrad(true)),
        ("maximize", AdamConfig::new().with_maximize(true)),
        (
            "amsgrad-adamw-maximize",
            AdamConfig::adamw().with_amsgrad(true).with_maximize(true),
        ),
        (
            "amsgrad-l2",
            AdamConfig::new().with_amsgrad(true).with_weight_decay(0.5),
        ),
        (
            "betas-0-0.5-eps-1e-3",
            AdamConfig::new()
                .with_beta1(0.0)
                .with_beta2(0.5)
                .with_eps(1e-3),
        ),
    ]
}

#[test]
fn fused_adam_equals_the_reference_step_for_every_option_edge_case_and_layout() {
    common::assert_fused_equals_reference(&configs());
}

#[test]
fn fused_and_reference_adam_steps_resume_each_others_state() {
    common::assert_fused_and_reference_resume_each_other(&configs());
}

/// AMSGrad, so that all four of θ, m, v and v_max are checked.
#[test]
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn fused_cpu_adam_step_updates_unshared_buffers_in_place_and_copies_shared_ones() {
    common::assert_fused_cpu_step_is_in_place("amsgrad", &AdamConfig::new().with_amsgrad(true));
}

#[test]
fn fused_adam_falls_back_to_the_reference_step_on_f64_and_autodiff_tensors() {
    common::assert_fallback_is_the_reference("amsgrad", &AdamConfig::new().with_amsgrad(true));
}
