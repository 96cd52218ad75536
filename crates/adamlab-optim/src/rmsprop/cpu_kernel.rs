//! RMSprop's fused step on the CPU backends (Flex, NdArray): one pass over θ, g, v and the
//! buffers the options use (ḡ when centered, b with momentum), in place, parallel over chunks,
//! each element computed by [`rmsprop_element`].
//!
//! As Adam's CPU kernel: the loop is compiled for the machine's best SIMD level through pulp, and
//! lanes round as scalars do, so the result is [`RmsProp::reference_step`]'s bit for bit. Each
//! combination of buffers has its own loop, so that none branches per element.
//!
//! [`RmsProp::reference_step`]: super::RmsProp::reference_step

use burn::tensor::Tensor;

use super::{RmsPropCoefficients, RmsPropState, rmsprop_element};
use crate::fused::cpu::{CpuTensor, for_each_chunk, vectorized};

/// One fused RMSprop step of one parameter tensor. `state` already holds v and exactly the
/// buffers this step keeps (zeros where they start at this step).
///
/// Only for f32 Flex and NdArray tensors without autodiff: the caller checks with
/// [`kernel_for`](crate::fused::kernel_for).
pub fn step<const D: usize>(
    coefficients: &RmsPropCoefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: RmsPropState<D>,
) -> (Tensor<D>, Option<RmsPropState<D>>) {
    let c = *coefficients;
    let mut theta = CpuTensor::take(theta);
    let grad = CpuTensor::take(grad);
    let mut v = CpuTensor::take(state.square_avg);
    let mut g_avg = state.grad_avg.map(CpuTensor::take);
    let mut b = state.momentum_buffer.map(CpuTensor::take);

    let g = grad.read();
    match (&mut g_avg, &mut b) {
        (None, None) => for_each_chunk([theta.write(), v.write()], &g, &|[theta, v], g| {
            plain_chunk(c, theta, g, v)
        }),
        (Some(g_avg), None) => for_each_chunk(
            [theta.write(), v.write(), g_avg.write()],
            &g,
            &|[theta, v, g_avg], g| centered_chunk(c, theta, g, v, g_avg),
        ),
        (None, Some(b)) => for_each_chunk(
            [theta.write(), v.write(), b.write()],
            &g,
            &|[theta, v, b], g| momentum_chunk(c, theta, g, v, b),
        ),
        (Some(g_avg), Some(b)) => for_each_chunk(
            [theta.write(), v.write(), g_avg.write(), b.write()],
            &g,
            &|[theta, v, g_avg, b], g| centered_momentum_chunk(c, theta, g, v, g_avg, b),
        ),
    }
    drop(g);

    let state = RmsPropState {
        step: state.step + 1,
        square_avg: v.into_tensor(),
        momentum_buffer: b.map(CpuTensor::into_tensor),
        grad_avg: g_avg.map(CpuTensor::into_tensor),
    };
    (theta.into_tensor(), Some(state))
}

/// RMSprop over one chunk, neither centered nor with momentum.
fn plain_chunk(c: RmsPropCoefficients, theta: &mut [f32], grad: &[f32], v: &mut [f32]) {
    // The coefficients are moved into the closure so that the compiler sees them as constants
    // of the loop, takes the branches on them out of it and vectorises what remains.
    vectorized(
        #[inline(always)]
        move || {
            for ((theta, &g), v) in theta.iter_mut().zip(grad).zip(v.iter_mut()) {
                let next = rmsprop_element(*theta, g, *v, None, None, &c);
                (*theta, *v) = (next.theta, next.square_avg);
            }
        },
    )
}

/// Centered RMSprop over one chunk, with ḡ.
fn centered_chunk(
    c: RmsPropCoefficients,
    theta: &mut [f32],
    grad: &[f32],
    v: &mut [f32],
    g_avg: &mut [f32],
) {
    vectorized(
        #[inline(always)]
        move || {
            let elements = theta
                .iter_mut()
                .zip(grad)
                .zip(v.iter_mut())
                .zip(g_avg.iter_mut());
            for (((theta, &g), v), g_avg) in elements {
                let next = rmsprop_element(*theta, g, *v, Some(*g_avg), None, &c);
                (*theta, *v) = (next.theta, next.square_avg);
                *g_avg = next.grad_avg.unwrap_or(*g_avg);
            }
        },
    )
}

/// RMSprop with momentum over one chunk, with b.
fn momentum_chunk(
    c: RmsPropCoefficients,
    theta: &mut [f32],
    grad: &[f32],
    v: &mut [f32],
    b: &mut [f32],
) {
    vectorized(
        #[inline(always)]
        move || {
            let elements = theta
                .iter_mut()
                .zip(grad)
                .zip(v.iter_mut())
                .zip(b.iter_mut());
            for (((theta, &g), v), b) in elements {
                let next = rmsprop_element(*theta, g, *v, None, Some(*b), &c);
                (*theta, *v) = (next.theta, next.square_avg);
                *b = next.momentum_buffer.unwrap_or(*b);
            }
        },
    )
}

/// Centered RMSprop with momentum over one chunk, with ḡ and b.
fn centered_momentum_chunk(
    c: RmsPropCoefficients,
    theta: &mut [f32],
    grad: &[f32],
    v: &mut [f32],
    g_avg: &mut [f32],
    b: &mut [f32],
) {
    vectorized(
        #[inline(always)]
        move || {
            let elements = theta
                .iter_mut()
                .zip(grad)
                .zip(v.iter_mut())
                .zip(g_avg.iter_mut())
                .zip(b.iter_mut());
            for ((((theta, &g), v), g_avg), b) in elements {
                let next = rmsprop_element(*theta, g, *v, Some(*g_avg), Some(*b), &c);
                (*theta, *v) = (next.theta, next.square_avg);
                *g_avg = next.grad_avg.unwrap_or(*g_avg);
                *b = next.momentum_buffer.unwrap_or(*b);
            }
        },
    )
}
