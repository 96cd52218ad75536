//! Adam's fused step as a CubeCL kernel (wgpu, and every other CubeCL runtime): one launch per
//! parameter tensor, each unit updating a vector of elements of θ, m and v (and v_max) in place.
//!
//! The arithmetic is [`adam_element`](super::adam_element)'s, in the same order. On llvmpipe
//! (software Vulkan) the result is the reference's bit for bit. A GPU's shader compiler may
//! contract `a·b + c` into a fused multiply-add inside this one kernel (the reference's separate
//! kernels cannot), and Vulkan allows division and square root a few ulps of error, so there the
//! two are only promised to agree to f32 rounding; the tests allow atol 1e-6 + rtol 1e-5.

use burn::tensor::Tensor;
use cubecl::prelude::*;

use super::{AdamCoefficients, AdamState, WeightDecay};
use crate::fused::cube;

/// One fused Adam step of one parameter tensor; see
/// [`cpu_kernel::step`](super::cpu_kernel::step) for the arguments.
pub fn step<const D: usize>(
    coefficients: &AdamCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: AdamState<D>,
    first_v_max: bool,
) -> (Tensor<D>, Option<AdamState<D>>) {
    let c = *coefficients;
    let theta = cube::take_mut(theta);
    let grad = cube::take(grad);
    let m = cube::take_mut(state.exp_avg);
    let v = cube::take_mut(state.exp_avg_sq);
    let v_max = state.max_exp_avg_sq.map(cube::take_mut);

    let (decay, decay_coefficient) = match c.weight_decay {
        WeightDecay::None => (DECAY_NONE, 0.0),
        WeightDecay::L2(lambda) => (DECAY_L2, lambda),
        WeightDecay::Decoupled(factor) => (DECAY_DECOUPLED, factor),
    };
    let scalars = AdamScalarsLaunch::new(
        decay_coefficient,
        c.one_minus_beta1,
        c.beta2,
        c.one_minus_beta2,
        c.sqrt_bias_correction2,
        c.eps,
        c.step_size,
    );
    let client = theta.client.clone();
    let (cube_count, cube_dim, vector_size) = cube::elementwise(&theta);
    match &v_max {
        None => adam_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            vector_size,
            theta.clone().into_buffer_arg(),
            grad.into_buffer_arg(),
            m.clone().into_buffer_arg(),
            v.clone().into_buffer_arg(),
            scalars,
            c.maximize,
            decay,
        ),
        Some(v_max) => amsgrad_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            vector_size,
            theta.clone().into_buffer_arg(),
            grad.into_buffer_arg(),
            m.clone().into_buffer_arg(),
            v.clone().into_buffer_arg(),
            v_max.clone().into_buffer_arg(),
            scalars,
            c.maximize,
            decay,
            first_v_max,
        ),
    }

    let state = AdamState {
        step: state.step + 1,
        exp_avg: cube::into_tensor(m),
        exp_avg_sq: cube::into_tensor(v),
        max_exp_avg_sq: v_max.map(cube::into_tensor),
    };
    (cube::into_tensor(theta), Some(state))
}

/// [`WeightDecay`] as the kernels' compile-time switch.
const DECAY_NONE: u32 = 0;
const DECAY_L2: u32 = 1;
const DECAY_DECOUPLED: u32 = 2;

/// The runtime scalars of [`AdamCoefficients`].
#[derive(CubeType, CubeLaunch)]
struct AdamScalars {
    /// λ (L2) or `1 − lr·λ` (decoupled); unused without decay.
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    sqrt_bias_correction2: f32,
    eps: f32,
    step_size: f32,
}

/// The gradient after `maximize` and L2 decay, and θ after decoupled decay.
#[cube]
fn decayed<N: Size>(
    theta: Vector<f32, N>,
    grad: Vector<f32, N>,
    s: &AdamScalars,
    #[comptime] maximize: bool,
    #[comptime] decay: u32,
) -> (Vector<f32, N>, Vector<f32, N>) {
    let mut g = grad;
    if comptime![maximize] {
        g = -grad;
    }
    let mut theta = theta;
    if comptime![decay == DECAY_L2] {
        g = g + theta * Vector::new(s.decay);
    } else if comptime![decay == DECAY_DECOUPLED] {
        theta = theta * Vector::new(s.decay);
    }
    (theta, g)
}

/// θ − step_size·m / (√v_used / √(1 − β₂ᵗ) + ε).
#[cube]
fn stepped<N: Size>(
    theta: Vector<f32, N>,
    m: Vector<f32, N>,
    v_used: Vector<f32, N>,
    s: &AdamScalars,
) -> Vector<f32, N> {
    let denom = Vector::sqrt(v_used) / Vector::new(s.sqrt_bias_correction2) + Vector::new(s.eps);
    theta - m * Vector::new(s.step_size) / denom
}

#[cube(launch)]
fn adam_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    m: &mut [Vector<f32, N>],
    v: &mut [Vector<f32, N>],
    s: &AdamScalars,
    #[comptime] maximize: bool,
    #[comptime] decay: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let (theta_i, g) = decayed::<N>(theta[i], grad[i], s, maximize, decay);
    let m_i = m[i] + (g - m[i]) * Vector::new(s.one_minus_beta1);
    let v_i = v[i] * Vector::new(s.beta2) + g * Vector::new(s.one_minus_beta2) * g;
    theta[i] = stepped::<N>(theta_i, m_i, v_i, s);
    m[i] = m_i;
    v[i] = v_i;
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn amsgrad_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    m: &mut [Vector<f32, N>],
    v: &mut [Vector<f32, N>],
    v_max: &mut [Vector<f32, N>],
    s: &AdamScalars,
    #[comptime] maximize: bool,
    #[comptime] decay: u32,
    #[comptime] first_v_max: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let (theta_i, g) = decayed::<N>(theta[i], grad[i], s, maximize, decay);
    let m_i = m[i] + (g - m[i]) * Vector::new(s.one_minus_beta1);
    let v_i = v[i] * Vector::new(s.beta2) + g * Vector::new(s.one_minus_beta2) * g;
    // `max_pair` as the reference computes it: `v_max < v ? v : v_max`.
    let mut v_max_i = v_i;
    if comptime![!first_v_max] {
        let previous = v_max[i];
        v_max_i = select_many(previous.less_than(&v_i), v_i, previous);
    }
    theta[i] = stepped::<N>(theta_i, m_i, v_max_i, s);
    m[i] = m_i;
    v[i] = v_i;
    v_max[i] = v_max_i;
}
