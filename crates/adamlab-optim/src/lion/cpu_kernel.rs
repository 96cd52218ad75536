//! Lion's fused step on the CPU backends (Flex, NdArray): one pass over θ, g and m, in place,
//! parallel over chunks, each element computed by [`lion_element`].
//!
//! As Adam's CPU kernel: the loop is compiled for the machine's best SIMD level through pulp, and
//! lanes round as scalars do, so the result is [`Lion::reference_step`]'s bit for bit.
//!
//! [`Lion::reference_step`]: super::Lion::reference_step

use burn::tensor::Tensor;

use super::{LionCoefficients, LionState, lion_element};
use crate::fused::cpu::{CpuTensor, for_each_chunk, vectorized};

/// One fused Lion step of one parameter tensor, with its momentum `m` (zeros before the first
/// step).
///
/// Only for f32 Flex and NdArray tensors without autodiff: the caller checks with
/// [`kernel_for`](crate::fused::kernel_for).
pub fn step<const D: usize>(
    coefficients: &LionCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    m: Tensor<D>,
) -> (Tensor<D>, Option<LionState<D>>) {
    let c = *coefficients;
    let mut theta = CpuTensor::take(theta);
    let grad = CpuTensor::take(grad);
    let mut m = CpuTensor::take(m);
    let g = grad.read();
    for_each_chunk([theta.write(), m.write()], &g, &|[theta, m], g| {
        lion_chunk(c, theta, g, m)
    });
    drop(g);
    let state = LionState {
        exp_avg: m.into_tensor(),
    };
    (theta.into_tensor(), Some(state))
}

/// Lion over one chunk.
fn lion_chunk(c: LionCoefficients, theta: &mut [f32], grad: &[f32], m: &mut [f32]) {
    // The coefficients are moved into the closure so that the compiler sees them as constants
    // of the loop, takes the branches on them out of it and vectorises what remains.
    vectorized(
        #[inline(always)]
        move || {
            for ((theta, &g), m) in theta.iter_mut().zip(grad).zip(m.iter_mut()) {
                (*theta, *m) = lion_element(*theta, g, *m, &c);
            }
        },
    )
}
