//! Adamax's fused step on the CPU backends (Flex, NdArray): one pass over θ, g, m and u, in
//! place, parallel over chunks, each element computed by [`adamax_element`].
//!
//! As Adam's CPU kernel: the loop is compiled for the machine's best SIMD level through pulp, and
//! lanes round as scalars do (the single roundings through f64 too), so the result is
//! [`Adamax::reference_step`]'s bit for bit.
//!
//! [`Adamax::reference_step`]: super::Adamax::reference_step

use burn::tensor::Tensor;

use super::{AdamaxCoefficients, AdamaxState, adamax_element};
use crate::fused::cpu::{CpuTensor, for_each_chunk, vectorized};

/// One fused Adamax step of one parameter tensor. `state` already holds m and u (zeros before
/// the first step).
///
/// Only for f32 Flex and NdArray tensors without autodiff: the caller checks with
/// [`kernel_for`](crate::fused::kernel_for).
pub fn step<const D: usize>(
    coefficients: &AdamaxCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: AdamaxState<D>,
) -> (Tensor<D>, Option<AdamaxState<D>>) {
    let c = *coefficients;
    let mut theta = CpuTensor::take(theta);
    let grad = CpuTensor::take(grad);
    let mut m = CpuTensor::take(state.exp_avg);
    let mut u = CpuTensor::take(state.exp_inf);
    let g = grad.read();
    for_each_chunk(
        [theta.write(), m.write(), u.write()],
        &g,
        &|[theta, m, u], g| adamax_chunk(c, theta, g, m, u),
    );
    drop(g);
    let state = AdamaxState {
        step: state.step + 1,
        exp_avg: m.into_tensor(),
        exp_inf: u.into_tensor(),
    };
    (theta.into_tensor(), Some(state))
}

/// Adamax over one chunk.
fn adamax_chunk(
    c: AdamaxCoefficients,
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    u: &mut [f32],
) {
    // The coefficients are moved into the closure so that the compiler sees them as constants
    // of the loop, takes the branches on them out of it and vectorises what remains.
    vectorized(
        #[inline(always)]
        move || {
            let elements = theta
                .iter_mut()
                .zip(grad)
                .zip(m.iter_mut())
                .zip(u.iter_mut());
            for (((theta, &g), m), u) in elements {
                (*theta, *m, *u) = adamax_element(*theta, g, *m, *u, &c);
            }
        },
    )
}
