//! Adamax's fused step: the scalars of a step, the update of one element (which the CPU loop
//! of [`crate::fused::cpu`] runs), and the CubeCL kernel computing the same update on wgpu.
//!
//! The element update is [`Adamax::reference_step`]'s arithmetic, operation for operation and
//! in the same order, its single roundings of torch's fused multiply-adds included (through
//! f64, as [`torch_ops::mul_add_scalar_one_rounding`] rounds them), so on the CPU the fused
//! step equals the reference bit for bit. The CubeCL kernel restates it beside it, since a
//! `#[cube]` function cannot run on the CPU; see Adam's [`kernel`](crate::adam) module for how
//! closely a GPU follows it.

use burn::optim::LearningRate;
use burn::tensor::Tensor;
#[cfg(cube_kernels)]
use cubecl::prelude::*;

use super::{Adamax, AdamaxState};
#[cfg(cube_kernels)]
use crate::fused::cube;
use crate::fused::{Buffers, FusedStep};
use crate::torch_ops::{self, mul_add};
#[cfg(cube_kernels)]
use crate::torch_ops::mul_add_vector;

/// The form torch's `m.lerp_(g, w)` takes for the weight `w = 1 − β₁` (see
/// [`torch_ops::lerp_one_rounding`]), with its coefficient as the tensors hold it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Lerp {
    /// `m + w·(g − m)`, for |w| < 0.5, holding w.
    FromStart(f32),
    /// `g − (1 − w)·(g − m)`, for |w| ≥ 0.5, holding `−(1 − w)` (in f32, from an f32 w).
    FromEnd(f32),
}

/// The scalars of one Adamax step, as [`Adamax::reference_step`] hands them to its tensor ops:
/// each computed in f64 and rounded once to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AdamaxCoefficients {
    /// Negate the gradient.
    maximize: bool,
    /// L2 weight decay λ, when not 0.
    weight_decay: Option<f32>,
    /// The first moment's update.
    lerp: Lerp,
    /// β₂.
    beta2: f32,
    /// ε.
    eps: f32,
    /// `−lr / (1 − β₁ᵗ)`.
    neg_step_size: f32,
    /// Round each of torch's multiply-adds once (through f64), as the reference does on a device
    /// that computes in f64; else twice, in f32, as the reference does elsewhere.
    single_rounding: bool,
}

impl FusedStep<2> for Adamax {
    type Coefficients = AdamaxCoefficients;

    crate::fused::keyword_and_reference!();

    fn buffers<const D: usize>(state: &AdamaxState<D>) -> [Option<&Tensor<D>>; 2] {
        [Some(&state.exp_avg), Some(&state.exp_inf)]
    }

    /// m and u: before the first step, step 0 and zeros, as the reference starts.
    fn prepare<const D: usize>(
        &self,
        lr: LearningRate,
        theta: &Tensor<D>,
        state: Option<AdamaxState<D>>,
    ) -> (AdamaxCoefficients, Buffers<D, 2>) {
        let config = &self.config;
        let (step, m, u) = match state {
            Some(state) => (state.step, state.exp_avg, state.exp_inf),
            None => (0, theta.zeros_like(), theta.zeros_like()),
        };
        let beta1 = self.beta1();
        let w = (1.0 - beta1) as f32;
        let lerp = if w.abs() < 0.5 {
            Lerp::FromStart(w)
        } else {
            Lerp::FromEnd(-(1.0 - w))
        };
        // In f64, as Python evaluates torch's `lr / (1 - beta1 ** step)`.
        let step_size = lr / (1.0 - beta1.powf((step + 1) as f64));
        let c = AdamaxCoefficients {
            maximize: config.maximize,
            weight_decay: (config.weight_decay != 0.0).then_some(config.weight_decay as f32),
            lerp,
            beta2: config.beta2 as f32,
            eps: config.eps as f32,
            neg_step_size: (-step_size) as f32,
            single_rounding: torch_ops::in_f64(theta),
        };
        let buffers = Buffers {
            step: step + 1,
            tensors: [Some(m), Some(u)],
        };
        (c, buffers)
    }

    fn state<const D: usize>(buffers: Buffers<D, 2>) -> Option<AdamaxState<D>> {
        let [Some(exp_avg), Some(exp_inf)] = buffers.tensors else {
            unreachable!("prepare keeps m and u");
        };
        Some(AdamaxState {
            step: buffers.step,
            exp_avg,
            exp_inf,
        })
    }

    #[inline(always)]
    fn element<const KEPT: u32>(
        c: &AdamaxCoefficients,
        theta: f32,
        grad: f32,
        [m, u]: [f32; 2],
    ) -> (f32, [f32; 2]) {
        let mut g = if c.maximize { -grad } else { grad };
        if let Some(lambda) = c.weight_decay {
            g = mul_add(theta, lambda, g, c.single_rounding);
        }
        let diff = g - m;
        let m = match c.lerp {
            Lerp::FromStart(w) => mul_add(diff, w, m, c.single_rounding),
            Lerp::FromEnd(neg_one_minus_w) => mul_add(diff, neg_one_minus_w, g, c.single_rounding),
        };
        // `max_pair` as the reference computes it: `β₂·u < |g| + ε ? |g| + ε : β₂·u`.
        let decayed = u * c.beta2;
        let norm = g.abs() + c.eps;
        let u = if decayed < norm { norm } else { decayed };
        let theta = theta + m * c.neg_step_size / u;
        (theta, [m, u])
    }

    #[cfg(cube_kernels)]
    fn launch(
        c: &AdamaxCoefficients,
        geometry: cube::Geometry,
        theta: cube::Buffers,
        grad: cube::Buffers,
        [m, u]: [cube::Buffers; 2],
        _kept: [bool; 2],
    ) {
        let (lerp_from_end, lerp_weight) = match c.lerp {
            Lerp::FromStart(w) => (false, w),
            Lerp::FromEnd(neg_one_minus_w) => (true, neg_one_minus_w),
        };
        cube::launch!(
            adamax_kernel,
            geometry,
            cube::seq(theta),
            cube::seq(grad),
            cube::seq(m),
            cube::seq(u),
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
    }
}

/// The runtime scalars of [`AdamaxCoefficients`].
#[cfg(cube_kernels)]
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
#[cfg(cube_kernels)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct AdamaxOptions {
    maximize: bool,
    weight_decay: bool,
    /// [`Lerp::FromEnd`] rather than [`Lerp::FromStart`].
    lerp_from_end: bool,
    single_rounding: bool,
}

#[cfg(cube_kernels)]
cube::kernel! {
    #[cube(launch)]
    /// [`Adamax::element`](FusedStep::element) on a vector of elements.
    fn adamax_kernel(theta, grad, [m, u], s: &AdamaxScalars, #[comptime] options: AdamaxOptions)
    for (k, i) {
        let theta_i = theta[k][i];
        // Its L2 decay rounds once (below), not as `cube::gradient` rounds it.
        let mut g = cube::gradient::<N>(grad[k][i], theta_i, 0.0, options.maximize, false);
        if comptime![options.weight_decay] {
            g = mul_add_vector::<N>(theta_i, Vector::new(s.weight_decay), g, options.single_rounding);
        }
        let m_before = m[k][i];
        let diff = g - m_before;
        let mut start = m_before;
        if comptime![options.lerp_from_end] {
            start = g;
        }
        let m_i = mul_add_vector::<N>(diff, Vector::new(s.lerp_weight), start, options.single_rounding);
        // `max_pair` as the reference computes it: `β₂·u < |g| + ε ? |g| + ε : β₂·u`.
        let decayed = u[k][i] * Vector::new(s.beta2);
        let norm = Vector::abs(g) + Vector::new(s.eps);
        let u_i = select_many(decayed.less_than(&norm), norm, decayed);
        (&mut theta[k])[i] = theta_i + m_i * Vector::new(s.neg_step_size) / u_i;
        (&mut m[k])[i] = m_i;
        (&mut u[k])[i] = u_i;
    }
}
