//! Adagrad's fused step on the CPU backends (Flex, NdArray): one pass over θ, g and s, in place,
//! parallel over chunks, each element computed by [`adagrad_element`].
//!
//! As Adam's CPU kernel: the loop is compiled for the machine's best SIMD level through pulp, and
//! lanes round as scalars do, so the result is [`Adagrad::reference_step`]'s bit for bit.
//!
//! [`Adagrad::reference_step`]: super::Adagrad::reference_step

use burn::tensor::Tensor;

use super::{AdagradCoefficients, AdagradState, adagrad_element};
use crate::fused::cpu::{CpuTensor, for_each_chunk, vectorized};

/// One fused Adagrad step of one parameter tensor. `state` already holds s
/// (`initial_accumulator_value` before the first step).
///
/// Only for f32 Flex and NdArray tensors without autodiff: the caller checks with
/// [`kernel_for`](crate::fused::kernel_for).
pub fn step<const D: usize>(
    coefficients: &AdagradCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: AdagradState<D>,
) -> (Tensor<D>, Option<AdagradState<D>>) {
    let c = *coefficients;
    let mut theta = CpuTensor::take(theta);
    let grad = CpuTensor::take(grad);
    let mut s = CpuTensor::take(state.sum);
    let g = grad.read();
    for_each_chunk([theta.write(), s.write()], &g, &|[theta, s], g| {
        adagrad_chunk(c, theta, g, s)
    });
    drop(g);
    let state = AdagradState {
        step: state.step + 1,
        sum: s.into_tensor(),
    };
    (theta.into_tensor(), Some(state))
}

/// Adagrad over one chunk.
fn adagrad_chunk(c: AdagradCoefficients, theta: &mut [f32], grad: &[f32], s: &mut [f32]) {
    // The coefficients are moved into the closure so that the compiler sees them as constants
    // of the loop, takes the branches on them out of it and vectorises what remains.
    vectorized(
        #[inline(always)]
        move || {
            for ((theta, &g), s) in theta.iter_mut().zip(grad).zip(s.iter_mut()) {
                (*theta, *s) = adagrad_element(*theta, g, *s, &c);
            }
        },
    )
}
