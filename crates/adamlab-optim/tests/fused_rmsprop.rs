//! The fused RMSprop step against its tensor-op reference ([`RmsProp::reference_step`]), on
//! every backend compiled in, for every option (α, ε, weight decay, momentum, centered, maximize)
//! and each of its four state layouts (v alone, with ḡ, with b, with both), on the edge cases of
//! [`common`]: random values, zeros (√v + ε = ε, and 0/0 with ε = 0), tiny and huge values (g²
//! underflows and overflows, v − ḡ² goes to ∞ − ∞), gradients that flip sign, a clone of θ kept
//! alive elsewhere, transposed parameters. The tolerances (bit for bit on flex and ndarray, atol
//! 1e-6 + rtol 1e-5 on wgpu) and their reasons are in [`common`].
//!
//! [`RmsProp::reference_step`]: adamlab_optim::rmsprop::RmsProp::reference_step

mod common;

use adamlab_optim::rmsprop::{RmsProp, RmsPropConfig, RmsPropState};
use burn::tensor::Tensor;
use common::Fusable;

impl Fusable for RmsPropConfig {
    type Optimizer = RmsProp;

    fn build(&self, fused: bool) -> RmsProp {
        self.clone().with_fused(fused).build().unwrap()
    }

    fn reference_step(
        rmsprop: &RmsProp,
        lr: f64,
        theta: Tensor<2>,
        grad: Tensor<2>,
        state: Option<RmsPropState<2>>,
    ) -> (Tensor<2>, Option<RmsPropState<2>>) {
        rmsprop.reference_step(lr, theta, grad, state)
    }

    fn state_tensors(state: &RmsPropState<2>) -> Vec<(&'static str, Tensor<2>)> {
        let mut tensors = vec![("square_avg", state.square_avg.clone())];
        if let Some(b) = &state.momentum_buffer {
            tensors.push(("momentum_buffer", b.clone()));
        }
        if let Some(g_avg) = &state.grad_avg {
            tensors.push(("grad_avg", g_avg.clone()));
        }
        tensors
    }

    fn step_count(state: &RmsPropState<2>) -> Option<usize> {
        Some(state.step)
    }
}

/// Every option of RMSprop, one at a time and together, in each of the four state layouts;
/// centered with α 0.3 and 0.5 (torch's lerp weight 1 − α ≥ 0.5 takes its other form), ε = 0.
fn configs() -> Vec<(&'static str, RmsPropConfig)> {
    let centered = || RmsPropConfig::new().with_centered(true);
    vec![
        ("default", RmsPropConfig::new()),
        (
            "alpha-weight-decay-maximize-eps-0",
            RmsPropConfig::new()
                .with_alpha(0.9)
                .with_weight_decay(0.1)
                .with_maximize(true)
                .with_eps(0.0),
        ),
        ("centered", centered()),
        ("centered-alpha-0.3", centered().with_alpha(0.3)),
        ("momentum", RmsPropConfig::new().with_momentum(0.9)),
        (
            "centered-momentum-alpha-0.5-weight-decay-maximize",
            centered()
                .with_alpha(0.5)
                .with_momentum(0.5)
                .with_weight_decay(0.5)
                .with_eps(1e-3)
                .with_maximize(true),
        ),
    ]
}

#[test]
fn fused_rmsprop_equals_the_reference_step_for_every_option_edge_case_and_layout() {
    common::assert_fused_equals_reference(&configs());
}

#[test]
fn fused_and_reference_rmsprop_steps_resume_each_others_state() {
    common::assert_fused_and_reference_resume_each_other(&configs());
}

#[test]
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn fused_cpu_rmsprop_step_updates_unshared_buffers_in_place_and_copies_shared_ones() {
    let config = RmsPropConfig::new().with_centered(true).with_momentum(0.9);
    common::assert_fused_cpu_step_is_in_place("centered-momentum", &config);
}

#[test]
fn fused_rmsprop_falls_back_to_the_reference_step_on_f64_and_autodiff_tensors() {
    let config = RmsPropConfig::new()
        .with_centered(true)
        .with_momentum(0.9)
        .with_weight_decay(0.1);
    common::assert_fallback_is_the_reference("centered-momentum-weight-decay", &config);
}
