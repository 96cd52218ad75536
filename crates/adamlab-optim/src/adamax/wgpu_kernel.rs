//! Adamax's fused step as a CubeCL kernel (wgpu, and every other CubeCL runtime): one launch per
//! parameter tensor, each unit updating a vector of θ, m and u in place.
//!
//! The arithmetic is [`adamax_element`](super::adamax_element)'s, in the same order, the single
//! roundings through f64 included where the device computes in f64 (as the reference rounds
//! there); see Adam's [`wgpu_kernel`](crate::adam::wgpu_kernel) for how closely a GPU follows it.

use burn::tensor::Tensor;
use cubecl::prelude::*;

use super::{AdamaxCoefficients, AdamaxState, Lerp};
use crate::fused::cube;

/// One fused Adamax step of one parameter tensor; see
/// [`cpu_kernel::step`](super::cpu_kernel::step) for the arguments.
pub fn step<const D: usize>(
    coefficients: &AdamaxCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: AdamaxState<D>,
) -> (Tensor<D>, Option<AdamaxState<D>>) {
    let c = *coefficients;
    let theta = cube::take_mut(theta);
    let grad = cube::take(grad);
    let m = cube::take_mut(state.exp_avg);
    let u = cube::take_mut(state.exp_inf);
    let (lerp_from_end, lerp_weight) = match c.lerp {
        Lerp::FromStart(w) => (false, w),
        Lerp::FromEnd(neg_one_minus_w) => (true, neg_one_minus_w),
    };
    let client = theta.client.clone();
    let (cube_count, cube_dim, vector_size) = cube::elementwise(&theta);
    adamax_kernel::launch(
        &client,
        cube_count,
        cube_dim,
        vector_size,
        theta.clone().into_buffer_arg(),
        grad.into_buffer_arg(),
        m.clone().into_buffer_arg(),
        u.clone().into_buffer_arg(),
        AdamaxScalarsLaunch::new(
            c.weight_decay.unwrap_or(0.0),
            lerp_weight,
            c.beta2,
            c.eps,
            c.neg_step_size,
        ),
        AdamaxOptions {
            maximize: c.maximize,
            weight_decay: c.weight_decay.is_some(),
            lerp_from_end,
            single_rounding: c.single_rounding,
        },
    );
    let state = AdamaxState {
        step: state.step + 1,
        exp_avg: cube::into_tensor(m),
        exp_inf: cube::into_tensor(u),
    };
    (cube::into_tensor(theta), Some(state))
}

/// The runtime scalars of [`AdamaxCoefficients`].
#[derive(CubeType, CubeLaunch)]
struct AdamaxScalars {
    /// λ; unused without weight decay.
    weight_decay: f32,
    /// w or `−(1 − w)`, as [`Lerp`] holds it.
    lerp_weight: f32,
    beta2: f32,
    eps: f32,
    neg_step_size: f32,
}

/// The switches of [`AdamaxCoefficients`], compiled into the kernel.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct AdamaxOptions {
    maximize: bool,
    weight_decay: bool,
    /// [`Lerp::FromEnd`] rather than [`Lerp::FromStart`].
    lerp_from_end: bool,
    single_rounding: bool,
}

/// `a·b + c`, rounded once through f64 if `single_rounding`, else twice in f32.
#[cube]
fn mul_add<N: Size>(
    a: Vector<f32, N>,
    b: f32,
    c: Vector<f32, N>,
    #[comptime] single_rounding: bool,
) -> Vector<f32, N> {
    if comptime![single_rounding] {
        let b = Vector::<f32, N>::new(b);
        let sum = Vector::<f64, N>::cast_from(a) * Vector::<f64, N>::cast_from(b)
            + Vector::<f64, N>::cast_from(c);
        Vector::<f32, N>::cast_from(sum)
    } else {
        a * Vector::new(b) + c
    }
}

#[cube(launch)]
fn adamax_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    m: &mut [Vector<f32, N>],
    u: &mut [Vector<f32, N>],
    s: &AdamaxScalars,
    #[comptime] options: AdamaxOptions,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let theta_i = theta[i];
    let mut g = grad[i];
    if comptime![options.maximize] {
        g = -g;
    }
    if comptime![options.weight_decay] {
        g = mul_add::<N>(theta_i, s.weight_decay, g, options.single_rounding);
    }
    let m_before = m[i];
    let diff = g - m_before;
    let mut start = m_before;
    if comptime![options.lerp_from_end] {
        start = g;
    }
    let m_i = mul_add::<N>(diff, s.lerp_weight, start, options.single_rounding);
    // `max_pair` as the reference computes it: `β₂·u < |g| + ε ? |g| + ε : β₂·u`.
    let decayed = u[i] * Vector::new(s.beta2);
    let norm = Vector::abs(g) + Vector::new(s.eps);
    let u_i = select_many(decayed.less_than(&norm), norm, decayed);
    theta[i] = theta_i + m_i * Vector::new(s.neg_step_size) / u_i;
    m[i] = m_i;
    u[i] = u_i;
}
