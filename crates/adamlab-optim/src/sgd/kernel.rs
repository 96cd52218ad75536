//! SGD's fused step: the scalars of a step, the update of one element (which the CPU loop of
//! [`crate::fused::cpu`] runs), and the CubeCL kernel computing the same update on wgpu.
//!
//! The element update is [`Sgd::reference_step`]'s arithmetic, operation for operation and in
//! the same order, so on the CPU the fused step equals the reference bit for bit. The CubeCL
//! kernel restates it beside it, since a `#[cube]` function cannot run on the CPU; see Adam's
//! [`kernel`](crate::adam) module for how closely a GPU follows it.

use burn::optim::LearningRate;
use burn::tensor::Tensor;
#[cfg(cube_kernels)]
use cubecl::prelude::*;

use super::{Sgd, SgdState};
#[cfg(cube_kernels)]
use crate::fused::cube;
use crate::fused::{Buffers, FusedStep, keeps};

/// The one slot of SGD's state, the momentum buffer b, kept when the momentum is not 0.
const MOMENTUM_BUFFER: usize = 0;

/// The scalars of one SGD step, as [`Sgd::reference_step`] hands them to its tensor ops: each
/// computed in f64 and rounded once to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SgdCoefficients {
    /// Negate the gradient.
    maximize: bool,
    /// L2 weight decay λ, when not 0.
    weight_decay: Option<f32>,
    /// μ; used only when the step keeps a momentum buffer.
    momentum: f32,
    /// `1 − τ`, τ the dampening.
    one_minus_dampening: f32,
    /// Step along `g + μ·b` instead of `b`.
    nesterov: bool,
    /// The momentum buffer starts at this step, as the gradient itself (torch's
    /// `grad.detach().clone()`).
    first: bool,
    /// The learning rate.
    lr: f32,
}

impl FusedStep<1> for Sgd {
    type Coefficients = SgdCoefficients;

    crate::fused::keyword_and_reference!();

    fn buffers<const D: usize>(state: &SgdState<D>) -> [Option<&Tensor<D>>; 1] {
        [Some(&state.momentum_buffer)]
    }

    /// The momentum buffer with momentum (zeros, overwritten by the gradient, at its first
    /// step); none without, whose state the reference drops too.
    fn prepare<const D: usize>(
        &self,
        lr: LearningRate,
        theta: &Tensor<D>,
        state: Option<SgdState<D>>,
    ) -> (SgdCoefficients, Buffers<D, 1>) {
        let momentum = self.momentum();
        let first = state.is_none();
        let c = SgdCoefficients {
            maximize: self.config.maximize,
            weight_decay: (self.config.weight_decay != 0.0)
                .then_some(self.config.weight_decay as f32),
            momentum: momentum as f32,
            one_minus_dampening: (1.0 - self.config.dampening) as f32,
            nesterov: self.config.nesterov,
            first,
            lr: lr as f32,
        };
        let b = (momentum != 0.0)
            .then(|| state.map_or_else(|| theta.zeros_like(), |s| s.momentum_buffer));
        let buffers = Buffers {
            step: 0,
            tensors: [b],
        };
        (c, buffers)
    }

    fn state<const D: usize>(buffers: Buffers<D, 1>) -> Option<SgdState<D>> {
        let [b] = buffers.tensors;
        b.map(|momentum_buffer| SgdState { momentum_buffer })
    }

    /// With momentum when b is kept.
    #[inline(always)]
    fn element<const KEPT: u32>(
        c: &SgdCoefficients,
        theta: f32,
        grad: f32,
        [b]: [f32; 1],
    ) -> (f32, [f32; 1]) {
        let mut g = if c.maximize { -grad } else { grad };
        if let Some(lambda) = c.weight_decay {
            g += theta * lambda;
        }
        let b = if c.first {
            g
        } else {
            b * c.momentum + g * c.one_minus_dampening
        };
        if keeps(KEPT, MOMENTUM_BUFFER) {
            g = if c.nesterov { g + b * c.momentum } else { b };
        }
        (theta - g * c.lr, [b])
    }

    #[cfg(cube_kernels)]
    fn launch(
        c: &SgdCoefficients,
        geometry: cube::Geometry,
        theta: cube::Buffers,
        grad: cube::Buffers,
        [b]: [cube::Buffers; 1],
        kept: [bool; 1],
    ) {
        cube::launch!(
            sgd_kernel,
            geometry,
            cube::seq(theta),
            cube::seq(grad),
            cube::seq(b),
            SgdScalarsLaunch::new(
                c.weight_decay.unwrap_or(0.0),
                c.momentum,
                c.one_minus_dampening,
                c.lr,
            ),
            SgdOptions {
                maximize: c.maximize,
                weight_decay: c.weight_decay.is_some(),
                momentum: kept[MOMENTUM_BUFFER],
                nesterov: c.nesterov,
                first: c.first,
            },
        );
    }
}

/// The runtime scalars of [`SgdCoefficients`].
#[cfg(cube_kernels)]
#[derive(CubeType, CubeLaunch)]
struct SgdScalars {
    /// λ; unused without weight decay.
    weight_decay: f32,
    /// μ; unused without momentum.
    momentum: f32,
    one_minus_dampening: f32,
    lr: f32,
}

/// The switches of [`SgdCoefficients`] and whether b is kept, compiled into the kernel.
#[cfg(cube_kernels)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct SgdOptions {
    maximize: bool,
    weight_decay: bool,
    /// b is kept; else its buffer is a placeholder.
    momentum: bool,
    nesterov: bool,
    first: bool,
}

#[cfg(cube_kernels)]
cube::kernel! {
    #[cube(launch)]
    /// [`Sgd::element`](FusedStep::element) on a vector of elements.
    fn sgd_kernel(theta, grad, [b], s: &SgdScalars, #[comptime] options: SgdOptions)
    for (k, i) {
        let (maximize, weight_decay) = (options.maximize, options.weight_decay);
        let mut g = cube::gradient::<N>(grad[k][i], theta[k][i], s.weight_decay, maximize, weight_decay);
        if comptime![options.momentum] {
            let mut b_i = g;
            if comptime![!options.first] {
                b_i = b[k][i] * Vector::new(s.momentum) + g * Vector::new(s.one_minus_dampening);
            }
            if comptime![options.nesterov] {
                g = g + b_i * Vector::new(s.momentum);
            } else {
                g = b_i;
            }
            (&mut b[k])[i] = b_i;
        }
        (&mut theta[k])[i] = theta[k][i] - g * Vector::new(s.lr);
    }
}
