//! 8-bit Lion's fused CubeCL step (wgpu), bitsandbytes' `kOptimizerStatic8bit1StateBlockwise`
//! for LION: one launch per parameter, one cube of 64 units per block of 256 elements, each unit
//! stepping the four elements whose codes are one packed word. The layout, the padding, the
//! absmax's tree of maxima and the code search are 8-bit Adam's ([`crate::adam8bit`]'s `cube`
//! module); the arithmetic is [`Lion8bit::reference_step`](super::Lion8bit::reference_step)'s,
//! operation for operation and in its order, equal to it bit for bit on llvmpipe (tested).
//!
//! A parameter with an f32 momentum (below `min_8bit_size`) takes the 32-bit kernel's update in an
//! elementwise kernel of its own; tensors the kernels do not take take the reference step.

use cubecl::prelude::*;

use super::Coefficients;
use crate::adam8bit::cube::{Moment, Unit, grad_at};

/// [`Coefficients`] as the kernels take them.
pub(super) fn scalars(c: &Coefficients) -> Lion8bitScalarsLaunch {
    Lion8bitScalarsLaunch::new(
        c.lr,
        c.beta1,
        c.beta2,
        c.one_minus_beta1,
        c.one_minus_beta2,
        c.decay.unwrap_or(1.0),
    )
}

/// The kernels' `sgn`: `(0 < x) − (x < 0)`, 0 for 0 and NaN.
#[cube]
fn sgn(x: f32) -> f32 {
    let mut sign = 0.0f32;
    if x > 0.0f32 {
        sign = 1.0f32;
    } else if x < 0.0f32 {
        sign = -1.0f32;
    }
    sign
}

/// The 32-bit kernel's step on an f32 momentum, one unit per element:
/// [`Lion8bit::reference_step`](super::Lion8bit::reference_step)'s `Full` arm.
#[cube(launch)]
pub(super) fn lion32bit_kernel(
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    s: &Lion8bitScalars,
    #[comptime] decay: bool,
) {
    let i = ABSOLUTE_POS;
    if i < theta.len() {
        let g = grad[i];
        let mi = m[i];
        let mut t = theta[i];
        if comptime![decay] {
            t = t * s.decay;
        }
        theta[i] = t - sgn(mi * s.beta1 + g * s.one_minus_beta1) * s.lr;
        m[i] = mi * s.beta2 + g * s.one_minus_beta2;
    }
}

/// [`Coefficients`] as the kernel takes them.
#[derive(CubeType, CubeLaunch)]
pub(super) struct Lion8bitScalars {
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    /// `1 − lr·λ`; unused without weight decay.
    decay: f32,
}

/// The 8-bit Lion step of one block per cube; see the module's documentation.
#[cube(launch)]
pub(super) fn lion8bit_kernel(
    theta: &mut [f32],
    grad: &[f32],
    codes: &mut [u32],
    absmax: &mut [f32],
    map: &[f32],
    s: &Lion8bitScalars,
    #[comptime] decay: bool,
) {
    let unit = Unit::new(absmax, theta.len());
    let mut m = Moment::load(codes, absmax, &unit, true);
    #[unroll]
    for j in 0..4usize {
        let e = unit.element(j);
        let valid = unit.holds(e);
        let g = grad_at(grad, e, valid);
        let mj = m.value(map, j, valid);
        if valid {
            let mut t = theta[e];
            if comptime![decay] {
                t = t * s.decay;
            }
            theta[e] = t - sgn(mj * s.beta1 + g * s.one_minus_beta1) * s.lr;
        }
        m.set(j, mj * s.beta2 + g * s.one_minus_beta2);
    }
    m.store(codes, absmax, map, &unit);
}
