//! SGD's fused step on the CPU backends (Flex, NdArray): one pass over θ, g and the momentum
//! buffer, in place, parallel over chunks, each element computed by [`sgd_element`].
//!
//! As Adam's CPU kernel: the loop is compiled for the machine's best SIMD level through pulp, and
//! lanes round as scalars do, so the result is [`Sgd::reference_step`]'s bit for bit.
//!
//! [`Sgd::reference_step`]: super::Sgd::reference_step

use burn::tensor::Tensor;

use super::{SgdCoefficients, SgdState, sgd_element};
use crate::fused::cpu::{CpuTensor, for_each_chunk, vectorized};

/// One fused SGD step of one parameter tensor. `buffer` is the momentum buffer and whether it
/// starts at this step (zeros, overwritten by the gradient), or `None` without momentum.
///
/// Only for f32 Flex and NdArray tensors without autodiff: the caller checks with
/// [`kernel_for`](crate::fused::kernel_for).
pub fn step<const D: usize>(
    coefficients: &SgdCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    buffer: Option<(Tensor<D>, bool)>,
) -> (Tensor<D>, Option<SgdState<D>>) {
    let c = *coefficients;
    let mut theta = CpuTensor::take(theta);
    let grad = CpuTensor::take(grad);
    let g = grad.read();
    let state = match buffer {
        None => {
            for_each_chunk([theta.write()], &g, &|[theta], g| sgd_chunk(c, theta, g));
            None
        }
        Some((buffer, first)) => {
            let mut buffer = CpuTensor::take(buffer);
            for_each_chunk([theta.write(), buffer.write()], &g, &|[theta, b], g| {
                momentum_chunk(c, first, theta, g, b)
            });
            Some(SgdState {
                momentum_buffer: buffer.into_tensor(),
            })
        }
    };
    drop(g);
    (theta.into_tensor(), state)
}

/// SGD over one chunk, without momentum.
fn sgd_chunk(c: SgdCoefficients, theta: &mut [f32], grad: &[f32]) {
    // The coefficients are moved into the closure so that the compiler sees them as constants
    // of the loop, takes the branches on them out of it and vectorises what remains.
    vectorized(
        #[inline(always)]
        move || {
            for (theta, &g) in theta.iter_mut().zip(grad) {
                *theta = sgd_element(*theta, g, None, &c).theta;
            }
        },
    )
}

/// SGD over one chunk, with the momentum buffer `b` (starting at this step if `first`).
fn momentum_chunk(
    c: SgdCoefficients,
    first: bool,
    theta: &mut [f32],
    grad: &[f32],
    buffer: &mut [f32],
) {
    vectorized(
        #[inline(always)]
        move || {
            for ((theta, &g), b) in theta.iter_mut().zip(grad).zip(buffer.iter_mut()) {
                let next = sgd_element(*theta, g, (!first).then_some(*b), &c);
                *theta = next.theta;
                *b = next.momentum_buffer.unwrap_or(g);
            }
        },
    )
}
