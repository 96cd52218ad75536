//! RMSprop's fused step as a CubeCL kernel (wgpu, and every other CubeCL runtime): one launch
//! per parameter tensor, each unit updating a vector of θ, v and the buffers the options use (ḡ
//! when centered, b with momentum) in place. Each combination of buffers has its own kernel.
//!
//! The arithmetic is [`rmsprop_element`](super::rmsprop_element)'s, in the same order; see Adam's
//! [`wgpu_kernel`](crate::adam::wgpu_kernel) for how closely a GPU follows it.

use burn::tensor::Tensor;
use cubecl::prelude::*;

use super::{Lerp, RmsPropCoefficients, RmsPropState};
use crate::fused::cube;

/// One fused RMSprop step of one parameter tensor; see
/// [`cpu_kernel::step`](super::cpu_kernel::step) for the arguments.
pub fn step<const D: usize>(
    coefficients: &RmsPropCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: RmsPropState<D>,
) -> (Tensor<D>, Option<RmsPropState<D>>) {
    let c = *coefficients;
    let theta = cube::take_mut(theta);
    let grad = cube::take(grad);
    let v = cube::take_mut(state.square_avg);
    let g_avg = state.grad_avg.map(cube::take_mut);
    let b = state.momentum_buffer.map(cube::take_mut);

    let (lerp_from_end, lerp_weight) = match c.lerp {
        Lerp::FromStart(w) => (false, w),
        Lerp::FromEnd(one_minus_w) => (true, one_minus_w),
    };
    let scalars = RmsPropScalarsLaunch::new(
        c.weight_decay.unwrap_or(0.0),
        c.alpha,
        c.one_minus_alpha,
        lerp_weight,
        c.eps,
        c.momentum,
        c.lr,
    );
    let options = RmsPropOptions {
        maximize: c.maximize,
        weight_decay: c.weight_decay.is_some(),
        lerp_from_end,
    };
    let client = theta.client.clone();
    let (cube_count, cube_dim, vector_size) = cube::elementwise(&theta);
    match (&g_avg, &b) {
        (None, None) => rmsprop_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            vector_size,
            theta.clone().into_buffer_arg(),
            grad.into_buffer_arg(),
            v.clone().into_buffer_arg(),
            scalars,
            options,
        ),
        (Some(g_avg), None) => centered_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            vector_size,
            theta.clone().into_buffer_arg(),
            grad.into_buffer_arg(),
            v.clone().into_buffer_arg(),
            g_avg.clone().into_buffer_arg(),
            scalars,
            options,
        ),
        (None, Some(b)) => momentum_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            vector_size,
            theta.clone().into_buffer_arg(),
            grad.into_buffer_arg(),
            v.clone().into_buffer_arg(),
            b.clone().into_buffer_arg(),
            scalars,
            options,
        ),
        (Some(g_avg), Some(b)) => centered_momentum_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            vector_size,
            theta.clone().into_buffer_arg(),
            grad.into_buffer_arg(),
            v.clone().into_buffer_arg(),
            g_avg.clone().into_buffer_arg(),
            b.clone().into_buffer_arg(),
            scalars,
            options,
        ),
    }

    let state = RmsPropState {
        step: state.step + 1,
        square_avg: cube::into_tensor(v),
        momentum_buffer: b.map(cube::into_tensor),
        grad_avg: g_avg.map(cube::into_tensor),
    };
    (cube::into_tensor(theta), Some(state))
}

/// The runtime scalars of [`RmsPropCoefficients`].
#[derive(CubeType, CubeLaunch)]
struct RmsPropScalars {
    /// λ; unused without weight decay.
    weight_decay: f32,
    alpha: f32,
    one_minus_alpha: f32,
    /// w or `1 − w`, as [`Lerp`] holds it; unused when not centered.
    lerp_weight: f32,
    eps: f32,
    /// μ; unused without momentum.
    momentum: f32,
    lr: f32,
}

/// The switches of [`RmsPropCoefficients`], compiled into the kernel.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct RmsPropOptions {
    maximize: bool,
    weight_decay: bool,
    /// [`Lerp::FromEnd`] rather than [`Lerp::FromStart`].
    lerp_from_end: bool,
}

/// The gradient after `maximize` and L2 decay.
#[cube]
fn decayed<N: Size>(
    theta: Vector<f32, N>,
    grad: Vector<f32, N>,
    s: &RmsPropScalars,
    #[comptime] options: RmsPropOptions,
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

/// v ← α·v + (1 − α)·g·g.
#[cube]
fn square_averaged<N: Size>(
    v: Vector<f32, N>,
    g: Vector<f32, N>,
    s: &RmsPropScalars,
) -> Vector<f32, N> {
    v * Vector::new(s.alpha) + g * Vector::new(s.one_minus_alpha) * g
}

/// ḡ ← torch's `ḡ.lerp_(g, 1 − α)`, in the form [`Lerp`] says.
#[cube]
fn grad_averaged<N: Size>(
    g_avg: Vector<f32, N>,
    g: Vector<f32, N>,
    s: &RmsPropScalars,
    #[comptime] options: RmsPropOptions,
) -> Vector<f32, N> {
    let diff = g - g_avg;
    if comptime![options.lerp_from_end] {
        g - diff * Vector::new(s.lerp_weight)
    } else {
        g_avg + diff * Vector::new(s.lerp_weight)
    }
}

#[cube(launch)]
fn rmsprop_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    v: &mut [Vector<f32, N>],
    s: &RmsPropScalars,
    #[comptime] options: RmsPropOptions,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let theta_i = theta[i];
    let g = decayed::<N>(theta_i, grad[i], s, options);
    let v_i = square_averaged::<N>(v[i], g, s);
    let d = Vector::sqrt(v_i) + Vector::new(s.eps);
    theta[i] = theta_i - g * Vector::new(s.lr) / d;
    v[i] = v_i;
}

#[cube(launch)]
fn centered_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    v: &mut [Vector<f32, N>],
    g_avg: &mut [Vector<f32, N>],
    s: &RmsPropScalars,
    #[comptime] options: RmsPropOptions,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let theta_i = theta[i];
    let g = decayed::<N>(theta_i, grad[i], s, options);
    let v_i = square_averaged::<N>(v[i], g, s);
    let g_avg_i = grad_averaged::<N>(g_avg[i], g, s, options);
    let d = Vector::sqrt(v_i - g_avg_i * g_avg_i) + Vector::new(s.eps);
    theta[i] = theta_i - g * Vector::new(s.lr) / d;
    v[i] = v_i;
    g_avg[i] = g_avg_i;
}

#[cube(launch)]
fn momentum_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    v: &mut [Vector<f32, N>],
    b: &mut [Vector<f32, N>],
    s: &RmsPropScalars,
    #[comptime] options: RmsPropOptions,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let theta_i = theta[i];
    let g = decayed::<N>(theta_i, grad[i], s, options);
    let v_i = square_averaged::<N>(v[i], g, s);
    let d = Vector::sqrt(v_i) + Vector::new(s.eps);
    let b_i = b[i] * Vector::new(s.momentum) + g / d;
    theta[i] = theta_i - b_i * Vector::new(s.lr);
    v[i] = v_i;
    b[i] = b_i;
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn centered_momentum_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    v: &mut [Vector<f32, N>],
    g_avg: &mut [Vector<f32, N>],
    b: &mut [Vector<f32, N>],
    s: &RmsPropScalars,
    #[comptime] options: RmsPropOptions,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let theta_i = theta[i];
    let g = decayed::<N>(theta_i, grad[i], s, options);
    let v_i = square_averaged::<N>(v[i], g, s);
    let g_avg_i = grad_averaged::<N>(g_avg[i], g, s, options);
    let d = Vector::sqrt(v_i - g_avg_i * g_avg_i) + Vector::new(s.eps);
    let b_i = b[i] * Vector::new(s.momentum) + g / d;
    theta[i] = theta_i - b_i * Vector::new(s.lr);
    v[i] = v_i;
    g_avg[i] = g_avg_i;
    b[i] = b_i;
}
