//! RMSprop's fused step: the scalars of a step, the update of one element (which the CPU loop
//! of [`crate::fused::cpu`] runs), and the CubeCL kernel computing the same update on wgpu.
//!
//! The element update is [`RmsProp::reference_step`]'s arithmetic, operation for operation and
//! in the same order, so on the CPU the fused step equals the reference bit for bit. The CubeCL
//! kernel restates it beside it, since a `#[cube]` function cannot run on the CPU; see Adam's
//! [`kernel`](crate::adam) module for how closely a GPU follows it. One kernel covers the four
//! state layouts (v alone, with ḡ when centered, with b with momentum, with both): which
//! buffers are kept is a compile-time flag.

use burn::optim::LearningRate;
use burn::tensor::Tensor;
#[cfg(cube_kernels)]
use cubecl::prelude::*;

use super::{RmsProp, RmsPropState};
#[cfg(cube_kernels)]
use crate::fused::cube;
use crate::fused::{Buffers, FusedStep, keeps};

/// The slots of RMSprop's state, [v, ḡ, b]: ḡ kept when centered, b with momentum.
const GRAD_AVG: usize = 1;
const MOMENTUM_BUFFER: usize = 2;

/// The form torch's `ḡ.lerp_(g, w)` takes for the weight `w = 1 − α`, with its coefficient as
/// the tensors hold it (see [`lerp_two_roundings`](crate::torch_ops::lerp_two_roundings)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Lerp {
    /// `ḡ + w·(g − ḡ)`, for |w| < 0.5, holding w.
    FromStart(f32),
    /// `g − (1 − w)·(g − ḡ)`, for |w| ≥ 0.5, holding `1 − w` (in f32, from an f32 w).
    FromEnd(f32),
}

impl Lerp {
    /// The form torch picks for `weight`, rounded to f32 first as torch rounds it.
    fn new(weight: f64) -> Self {
        let w = weight as f32;
        if w.abs() < 0.5 {
            Self::FromStart(w)
        } else {
            Self::FromEnd(1.0 - w)
        }
    }
}

/// The scalars of one RMSprop step, as [`RmsProp::reference_step`] hands them to its tensor
/// ops: each computed in f64 and rounded once to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RmsPropCoefficients {
    /// Negate the gradient.
    maximize: bool,
    /// L2 weight decay λ, when not 0.
    weight_decay: Option<f32>,
    /// α.
    alpha: f32,
    /// `1 − α`.
    one_minus_alpha: f32,
    /// The centered average's update; used only when the step keeps ḡ.
    lerp: Lerp,
    /// ε.
    eps: f32,
    /// μ; used only when the step keeps a momentum buffer.
    momentum: f32,
    /// The learning rate.
    lr: f32,
}

impl FusedStep<3> for RmsProp {
    type Coefficients = RmsPropCoefficients;

    crate::fused::keyword_and_reference!();

    fn buffers<const D: usize>(state: &RmsPropState<D>) -> [Option<&Tensor<D>>; 3] {
        [
            Some(&state.square_avg),
            state.grad_avg.as_ref(),
            state.momentum_buffer.as_ref(),
        ]
    }

    /// Exactly the buffers the reference's state would hold: before the first step, step 0 and
    /// zeros; ḡ only when centered and b only with momentum (zeros when they start at this step,
    /// dropped when the options no longer use them).
    fn prepare<const D: usize>(
        &self,
        lr: LearningRate,
        theta: &Tensor<D>,
        state: Option<RmsPropState<D>>,
    ) -> (RmsPropCoefficients, Buffers<D, 3>) {
        let config = &self.config;
        let (step, v, g_avg, b) = match state {
            Some(s) => (s.step, s.square_avg, s.grad_avg, s.momentum_buffer),
            None => (0, theta.zeros_like(), None, None),
        };
        let g_avg = config
            .centered
            .then(|| g_avg.unwrap_or_else(|| theta.zeros_like()));
        let b = (config.momentum > 0.0).then(|| b.unwrap_or_else(|| theta.zeros_like()));
        let c = RmsPropCoefficients {
            maximize: config.maximize,
            weight_decay: (config.weight_decay != 0.0).then_some(config.weight_decay as f32),
            alpha: config.alpha as f32,
            one_minus_alpha: (1.0 - config.alpha) as f32,
            lerp: Lerp::new(1.0 - config.alpha),
            eps: config.eps as f32,
            momentum: config.momentum as f32,
            lr: lr as f32,
        };
        let buffers = Buffers {
            step: step + 1,
            tensors: [Some(v), g_avg, b],
        };
        (c, buffers)
    }

    fn state<const D: usize>(buffers: Buffers<D, 3>) -> Option<RmsPropState<D>> {
        let [Some(square_avg), grad_avg, momentum_buffer] = buffers.tensors else {
            unreachable!("prepare keeps v");
        };
        Some(RmsPropState {
            step: buffers.step,
            square_avg,
            momentum_buffer,
            grad_avg,
        })
    }

    /// Centered when ḡ is kept, with momentum when b is.
    #[inline(always)]
    fn element<const KEPT: u32>(
        c: &RmsPropCoefficients,
        theta: f32,
        grad: f32,
        [v, g_avg, b]: [f32; 3],
    ) -> (f32, [f32; 3]) {
        let mut g = if c.maximize { -grad } else { grad };
        if let Some(lambda) = c.weight_decay {
            g += theta * lambda;
        }
        let v = v * c.alpha + g * c.one_minus_alpha * g;
        let g_avg = match c.lerp {
            Lerp::FromStart(w) => g_avg + (g - g_avg) * w,
            Lerp::FromEnd(one_minus_w) => g - (g - g_avg) * one_minus_w,
        };
        let root = if keeps(KEPT, GRAD_AVG) {
            (v - g_avg * g_avg).sqrt()
        } else {
            v.sqrt()
        };
        let d = root + c.eps;
        let b = b * c.momentum + g / d;
        let theta = if keeps(KEPT, MOMENTUM_BUFFER) {
            theta - b * c.lr
        } else {
            theta - g * c.lr / d
        };
        (theta, [v, g_avg, b])
    }

    #[cfg(cube_kernels)]
    fn launch(
        c: &RmsPropCoefficients,
        geometry: cube::Geometry,
        theta: cube::Buffers,
        grad: cube::Buffers,
        [v, g_avg, b]: [cube::Buffers; 3],
        kept: [bool; 3],
    ) {
        let (lerp_from_end, lerp_weight) = match c.lerp {
            Lerp::FromStart(w) => (false, w),
            Lerp::FromEnd(one_minus_w) => (true, one_minus_w),
        };
        cube::launch!(
            rmsprop_kernel,
            geometry,
            cube::seq(theta),
            cube::seq(grad),
            cube::seq(v),
            cube::seq(g_avg),
            cube::seq(b),
            RmsPropScalarsLaunch::new(
                c.weight_decay.unwrap_or(0.0),
                c.alpha,
                c.one_minus_alpha,
                lerp_weight,
                c.eps,
                c.momentum,
                c.lr,
            ),
            RmsPropOptions {
                maximize: c.maximize,
                weight_decay: c.weight_decay.is_some(),
                lerp_from_end,
                centered: kept[GRAD_AVG],
                momentum: kept[MOMENTUM_BUFFER],
            },
        );
    }
}

/// The runtime scalars of [`RmsPropCoefficients`].
#[cfg(cube_kernels)]
#[derive(CubeType, CubeLaunch)]
struct RmsPropScalars {
    /// λ; unused without weight decay.
    weight_decay: f32,
    alpha: f32,
    one_minus_alpha: f32,
    /// w or `1 − w`, as [`Lerp`] holds it; unused when not centered.
    lerp_weight: f32,
    eps: f32,
    /// μ; unused without momentum.
    momentum: f32,
    lr: f32,
}

/// The switches of [`RmsPropCoefficients`] and the buffers kept, compiled into the kernel.
#[cfg(cube_kernels)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct RmsPropOptions {
    maximize: bool,
    weight_decay: bool,
    /// [`Lerp::FromEnd`] rather than [`Lerp::FromStart`].
    lerp_from_end: bool,
    /// ḡ is kept; else its buffer is a placeholder.
    centered: bool,
    /// b is kept; else its buffer is a placeholder.
    momentum: bool,
}

#[cfg(cube_kernels)]
cube::kernel! {
    #[cube(launch)]
    /// [`RmsProp::element`](FusedStep::element) on a vector of elements.
    fn rmsprop_kernel(
        theta,
        grad,
        [v, g_avg, b],
        s: &RmsPropScalars,
        #[comptime] options: RmsPropOptions,
    )
    for (k, i) {
        let theta_i = theta[k][i];
        let g = cube::gradient::<N>(
            grad[k][i],
            theta_i,
            s.weight_decay,
            options.maximize,
            options.weight_decay,
        );
        let v_i = v[k][i] * Vector::new(s.alpha) + g * Vector::new(s.one_minus_alpha) * g;
        let mut root = Vector::sqrt(v_i);
        if comptime![options.centered] {
            let diff = g - g_avg[k][i];
            let g_avg_i = if comptime![options.lerp_from_end] {
                g - diff * Vector::new(s.lerp_weight)
            } else {
                g_avg[k][i] + diff * Vector::new(s.lerp_weight)
            };
            root = Vector::sqrt(v_i - g_avg_i * g_avg_i);
            (&mut g_avg[k])[i] = g_avg_i;
        }
        let d = root + Vector::new(s.eps);
        if comptime![options.momentum] {
            let b_i = b[k][i] * Vector::new(s.momentum) + g / d;
            (&mut theta[k])[i] = theta_i - b_i * Vector::new(s.lr);
            (&mut b[k])[i] = b_i;
        } else {
            (&mut theta[k])[i] = theta_i - g * Vector::new(s.lr) / d;
        }
        (&mut v[k])[i] = v_i;
    }
}
