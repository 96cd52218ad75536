//! Lion's fused step as a CubeCL kernel (wgpu, and every other CubeCL runtime): one launch per
//! parameter tensor, each unit updating a vector of θ and m in place.
//!
//! The arithmetic is [`lion_element`](super::lion_element)'s, in the same order; see Adam's
//! [`wgpu_kernel`](crate::adam::wgpu_kernel) for how closely a GPU follows it.

use burn::tensor::Tensor;
use cubecl::prelude::*;

use super::{LionCoefficients, LionState};
use crate::fused::cube;

/// One fused Lion step of one parameter tensor, with its momentum `m` (zeros before the first
/// step).
pub fn step<const D: usize>(
    coefficients: &LionCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    m: Tensor<D>,
) -> (Tensor<D>, Option<LionState<D>>) {
    let c = *coefficients;
    let theta = cube::take_mut(theta);
    let grad = cube::take(grad);
    let m = cube::take_mut(m);
    let client = theta.client.clone();
    let (cube_count, cube_dim, vector_size) = cube::elementwise(&theta);
    lion_kernel::launch(
        &client,
        cube_count,
        cube_dim,
        vector_size,
        theta.clone().into_buffer_arg(),
        grad.into_buffer_arg(),
        m.clone().into_buffer_arg(),
        LionScalarsLaunch::new(
            c.decay.unwrap_or(1.0),
            c.beta1,
            c.one_minus_beta1,
            c.beta2,
            c.one_minus_beta2,
            c.lr,
        ),
        c.decay.is_some(),
    );
    let state = LionState {
        exp_avg: cube::into_tensor(m),
    };
    (cube::into_tensor(theta), Some(state))
}

/// The runtime scalars of [`LionCoefficients`].
#[derive(CubeType, CubeLaunch)]
struct LionScalars {
    /// `1 − lr·λ`; unused without decay.
    decay: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    lr: f32,
}

#[cube(launch)]
fn lion_kernel<N: Size>(
    theta: &mut [Vector<f32, N>],
    grad: &[Vector<f32, N>],
    m: &mut [Vector<f32, N>],
    s: &LionScalars,
    #[comptime] decay: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= theta.len() {
        terminate!();
    }
    let g = grad[i];
    let m_i = m[i];
    let mut theta_i = theta[i];
    if comptime![decay] {
        theta_i = theta_i * Vector::new(s.decay);
    }
    let c = m_i * Vector::new(s.beta1) + g * Vector::new(s.one_minus_beta1);
    // sign(c) as burn's backends compute it: ±1, and 0 for ±0 and NaN.
    let zero = Vector::new(0.0f32);
    let sign = select_many(
        c.greater_than(&zero),
        Vector::new(1.0f32),
        select_many(c.less_than(&zero), Vector::new(-1.0f32), zero),
    );
    theta[i] = theta_i - sign * Vector::new(s.lr);
    m[i] = m_i * Vector::new(s.beta2) + g * Vector::new(s.one_minus_beta2);
}
