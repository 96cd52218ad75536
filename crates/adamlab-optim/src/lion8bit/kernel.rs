//! 8-bit Lion's fused CPU step: each block of 256 elements dequantized, stepped and requantized in
//! one pass, in place in θ's buffer, the codes' and the absmax's, on Flex and NdArray.
//!
//! [`block`] and [`element`] are [`Lion8bit::reference_step`](super::Lion8bit::reference_step)'s
//! arithmetic, operation for operation and in its order, so the two agree bit for bit; the codes
//! come from the signed [`CodeTable`](quantize::CodeTable), equal to the kernel's search. Blocks
//! are split between rayon's threads 64 at a time with `rayon::join`; nothing is allocated per
//! step.
//! Tensors it does not take go back to the caller for the reference step.

// burn deprecates ndarray in favour of flex; adamlab ships both on purpose.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

use burn::optim::LearningRate;

use super::{Coefficients, Lion8bit, Lion8bitState};
#[cfg(cube_kernels)]
use super::cube::{lion8bit_kernel, lion32bit_kernel, scalars};
use crate::adam8bit::Fused8bit;
#[cfg(cube_kernels)]
use crate::adam8bit::cube::{Launch, launch};
use crate::adam8bit::kernel::absmax_of;
use crate::adam8bit::quantize::{self, BLOCK, PAD_CODE1};
use crate::lion::kernel::sign as sgn;
#[cfg(cube_kernels)]
use cubecl::prelude::BufferArg;

/// One f32-momentum element (the 32-bit kernel): θ and m after the step from θ, g, m before.
#[inline(always)]
fn element(c: &Coefficients, theta: f32, g: f32, m: f32) -> (f32, f32) {
    let mut theta = theta;
    if let Some(factor) = c.decay {
        theta = theta * factor;
    }
    let theta = theta - sgn(m * c.beta1 + g * c.one_minus_beta1) * c.lr;
    (theta, m * c.beta2 + g * c.one_minus_beta2)
}

/// One block of the 8-bit kernel, in place: θ, its gradient and its codes (at most [`BLOCK`]
/// elements) and the block's absmax. A shorter last block is copied into whole-block arrays padded
/// as the kernel pads them (gradient 0, code [`PAD_CODE1`]), stepped as a whole block, and copied
/// back.
#[inline(always)]
fn block(
    c: &Coefficients,
    theta: &mut [f32],
    grad: &[f32],
    codes: &mut [u8],
    absmax: &mut f32,
) {
    let whole = (
        <&mut [f32; BLOCK]>::try_from(&mut *theta),
        <&[f32; BLOCK]>::try_from(grad),
        <&mut [u8; BLOCK]>::try_from(&mut *codes),
    );
    if let (Ok(theta), Ok(grad), Ok(codes)) = whole {
        return match c.decay {
            Some(factor) => whole_block::<true>(c, factor, theta, grad, codes, absmax),
            None => whole_block::<false>(c, 1.0, theta, grad, codes, absmax),
        };
    }
    let len = theta.len();
    let (mut t, mut g, mut q) = ([0f32; BLOCK], [0f32; BLOCK], [PAD_CODE1; BLOCK]);
    t[..len].copy_from_slice(theta);
    g[..len].copy_from_slice(&grad[..len]);
    q[..len].copy_from_slice(&codes[..len]);
    match c.decay {
        Some(factor) => whole_block::<true>(c, factor, &mut t, &g, &mut q, absmax),
        None => whole_block::<false>(c, 1.0, &mut t, &g, &mut q, absmax),
    }
    theta.copy_from_slice(&t[..len]);
    codes[..len].copy_from_slice(&q[..len]);
}

/// A whole block of the 8-bit kernel, in place, in passes the compiler vectorizes between the
/// two look-ups that it cannot: the map's value of each code, and the code of each quotient
/// ([`CodeTable`](quantize::CodeTable)). θ is decayed by `factor` first if `DECAY` (a parameter,
/// so that the loop has no branch). The padding of a last block is stepped too (its θ is thrown
/// away): its momentum counts in the absmax, as in the kernel.
#[inline(always)]
fn whole_block<const DECAY: bool>(
    c: &Coefficients,
    factor: f32,
    theta: &mut [f32; BLOCK],
    grad: &[f32; BLOCK],
    codes: &mut [u8; BLOCK],
    absmax: &mut f32,
) {
    let mut m = [0f32; BLOCK];
    for i in 0..BLOCK {
        m[i] = quantize::SIGNED[usize::from(codes[i])];
    }
    let old_absmax = *absmax;
    for i in 0..BLOCK {
        let g = grad[i];
        let mi = m[i] * old_absmax;
        let mut t = theta[i];
        if DECAY {
            t = t * factor;
        }
        theta[i] = t - sgn(mi * c.beta1 + g * c.one_minus_beta1) * c.lr;
        m[i] = mi * c.beta2 + g * c.one_minus_beta2;
    }
    let new_absmax = absmax_of(&m);
    // A NaN quotient (a block of zeros: 0/0) takes the search's code.
    quantize::signed_table().codes(&m, new_absmax, codes, |i| {
        quantize::quantize_signed_keeping_sign(&quantize::SIGNED, m[i], new_absmax)
    });
    *absmax = new_absmax;
}

impl Fused8bit<1> for Lion8bit {
    type Coefficients = Coefficients;

    crate::adam8bit::keywords_and_reference!(Lion8bitState);

    fn coefficients(&self, lr: LearningRate, _step: usize) -> Coefficients {
        Coefficients::new(&self.config, lr)
    }

    #[inline(always)]
    fn element(c: &Coefficients, theta: &mut f32, g: f32, [m]: [&mut f32; 1]) {
        (*theta, *m) = element(c, *theta, g, *m);
    }

    #[inline(always)]
    fn block(
        c: &Coefficients,
        theta: &mut [f32],
        grad: &[f32],
        [codes]: [&mut [u8]; 1],
        [absmax]: [&mut f32; 1],
    ) {
        block(c, theta, grad, codes, absmax);
    }

    #[cfg(cube_kernels)]
    fn launch_full(c: &Coefficients, on: Launch, [m]: [BufferArg; 1]) {
        launch!(lion32bit_kernel, on, m, scalars(c), c.decay.is_some());
    }

    #[cfg(cube_kernels)]
    fn launch_blockwise(
        c: &Coefficients,
        on: Launch,
        [codes]: [BufferArg; 1],
        [absmax]: [BufferArg; 1],
        [signed, _]: [BufferArg; 2],
    ) {
        launch!(lion8bit_kernel, on, codes, absmax, signed, scalars(c), c.decay.is_some());
    }
}
