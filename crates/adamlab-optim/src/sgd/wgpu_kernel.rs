//! SGD's fused step as a CubeCL kernel (wgpu, and every other CubeCL runtime): one launch per
//! parameter tensor, each unit updating a vector of θ (and of the momentum buffer) in place.
//!
//! The arithmetic is [`sgd_element`](super::sgd_element)'s, in the same order; see Adam's
//! [`wgpu_kernel`](crate::adam::wgpu_kernel) for how closely a GPU follows it.

use burn::tensor::Tensor;
use cubecl::prelude::*;

use super::{SgdCoefficients, SgdState};
use crate::fused::cube;

/// One fused SGD step of one parameter tensor; see [`cpu_kernel::step`](super::cpu_kernel::step)
/// for the arguments.
pub fn step<const D: usize>(
    coefficients: &SgdCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    buffer: Option<(Tensor<D>, bool)>,
) -> (Tensor<D>, Option<SgdState<D>>) {
    let c = *coefficients;
    let theta = cube::take_mut(theta);
    let grad = cube::take(grad);
    let client = theta.client.clone();
    let (cube_count, cube_dim, vector_size) = cube::elementwise(&theta);
    let momentum = c.momentum.unwrap_or(super::SgdMomentum {
        momentum: 0.0,
        one_minus_dampening: 0.0,
        nesterov: false,
    });
    let scalars = SgdScalarsLaunch::new(
        c.weight_decay.unwrap_or(0.0),
        momentum.momentum,
        momentum.one_minus_dampening,
        c.lr,
    );
    let options = SgdOptions {
        maximize: c.maximize,
        weight_decay: c.weight_decay.is_some(),
        nesterov: momentum.nesterov,
    };
    let state = match buffer {
        None => {
            sgd_kernel::launch(
                &client,
                cube_count,
                cube_dim,
                vector_size,
                theta.clone().into_buffer_arg(),
                grad.into_buffer_arg(),
                scalars,
                options,
            );
            None
        }
        Some((buffer, first)) => {
            let buffer = cube::take_mut(buffer);
            momentum_kernel::launch(
                &client,
                cube_count,
                cube_dim,
                vector_size,
                theta.clone().into_buffer_arg(),
                grad.into_buffer_arg(),
                buffer.clone().into_buffer_arg(),
                scalars,
                options,
                first,
            );
            Some(SgdState {
                momentum_buffer: cube::into_tensor(buffer),
            })
        }
    };
    (cube::into_tensor(theta), state)
}

/// The runtime scalars of [`SgdCoefficients`].
#[derive(CubeType, CubeLaunch)]
struct SgdScalars {
    /// λ; unused without weight decay.
    weight_decay: f32,
    /// μ; unused without momentum.
    momentum: f32,
    one_minus_dampening: f32,
    lr: f32,
}

/// The switches of [`SgdCoefficients`], compiled into the kernel.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct SgdOptions {
    maximize: bool,
    weight_decay: bool,
    nesterov: bool,
}

/// The gradient after `maximize` and L2 decay.
#[cube]
fn decayed<N: Size>(
    theta: Vector<f32, N>,
    grad: Vector<f32, N>,
    s: &SgdScalars,
    #[comptime] options: SgdOptions,
) -> Vector<f32, N> {
    let mut g = grad;
    if comptime![options.maximize] {
        g = -grad;
    }
    if comptime![options.weight_decay] {
        g = g + theta * Vector::new(s.weight_decay);
    }
    g
}

#[cube(launch)]
fn sgd_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    s: &SgdScalars,
    #[comptime] options: SgdOptions,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let g = decayed::<N>(theta[i], grad[i], s, options);
    theta[i] = theta[i] - g * Vector::new(s.lr);
}

#[cube(launch)]
fn momentum_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    buffer: &mut [Vector<f32, N>],
    s: &SgdScalars,
    #[comptime] options: SgdOptions,
    #[comptime] first: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let mut g = decayed::<N>(theta[i], grad[i], s, options);
    let mut b = g;
    if comptime![!first] {
        b = buffer[i] * Vector::new(s.momentum) + g * Vector::new(s.one_minus_dampening);
    }
    if comptime![options.nesterov] {
        g = g + b * Vector::new(s.momentum);
    } else {
        g = b;
    }
    buffer[i] = b;
    theta[i] = theta[i] - g * Vector::new(s.lr);
}
