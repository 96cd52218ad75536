//! Adagrad's fused step as a CubeCL kernel (wgpu, and every other CubeCL runtime): one launch
//! per parameter tensor, each unit updating a vector of θ and s in place.
//!
//! The arithmetic is [`adagrad_element`](super::adagrad_element)'s, in the same order; see Adam's
//! [`wgpu_kernel`](crate::adam::wgpu_kernel) for how closely a GPU follows it.

use burn::tensor::Tensor;
use cubecl::prelude::*;

use super::{AdagradCoefficients, AdagradState};
use crate::fused::cube;

/// One fused Adagrad step of one parameter tensor; see
/// [`cpu_kernel::step`](super::cpu_kernel::step) for the arguments.
pub fn step<const D: usize>(
    coefficients: &AdagradCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: AdagradState<D>,
) -> (Tensor<D>, Option<AdagradState<D>>) {
    let c = *coefficients;
    let theta = cube::take_mut(theta);
    let grad = cube::take(grad);
    let s = cube::take_mut(state.sum);
    let client = theta.client.clone();
    let (cube_count, cube_dim, vector_size) = cube::elementwise(&theta);
    adagrad_kernel::launch(
        &client,
        cube_count,
        cube_dim,
        vector_size,
        theta.clone().into_buffer_arg(),
        grad.into_buffer_arg(),
        s.clone().into_buffer_arg(),
        AdagradScalarsLaunch::new(c.weight_decay.unwrap_or(0.0), c.clr, c.eps),
        c.maximize,
        c.weight_decay.is_some(),
    );
    let state = AdagradState {
        step: state.step + 1,
        sum: cube::into_tensor(s),
    };
    (cube::into_tensor(theta), Some(state))
}

/// The runtime scalars of [`AdagradCoefficients`].
#[derive(CubeType, CubeLaunch)]
struct AdagradScalars {
    /// λ; unused without weight decay.
    weight_decay: f32,
    clr: f32,
    eps: f32,
}

#[cube(launch)]
fn adagrad_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    s: &mut [Vector<f32, N>],
    scalars: &AdagradScalars,
    #[comptime] maximize: bool,
    #[comptime] weight_decay: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let theta_i = theta[i];
    let mut g = grad[i];
    if comptime![maximize] {
        g = -g;
    }
    if comptime![weight_decay] {
        g = g + theta_i * Vector::new(scalars.weight_decay);
    }
    let s_i = s[i] + g * g;
    let std = Vector::sqrt(s_i) + Vector::new(scalars.eps);
    theta[i] = theta_i - g * Vector::new(scalars.clr) / std;
    s[i] = s_i;
}
