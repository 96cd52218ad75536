//! Adagrad's fused step: the scalars of a step, the update of one element (which the CPU loop
//! of [`crate::fused::cpu`] runs), and the CubeCL kernel computing the same update on wgpu.
//!
//! The element update is [`Adagrad::reference_step`]'s arithmetic, operation for operation and
//! in the same order, so on the CPU the fused step equals the reference bit for bit. The CubeCL
//! kernel restates it beside it, since a `#[cube]` function cannot run on the CPU; see Adam's
//! [`kernel`](crate::adam) module for how closely a GPU follows it.

use burn::optim::LearningRate;
use burn::tensor::Tensor;
#[cfg(cube_kernels)]
use cubecl::prelude::*;

use super::{Adagrad, AdagradState, decayed_lr};
#[cfg(cube_kernels)]
use crate::fused::cube;
use crate::fused::{Buffers, FusedStep};

/// The scalars of one Adagrad step, as [`Adagrad::reference_step`] hands them to its tensor
/// ops: each computed in f64 and rounded once to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AdagradCoefficients {
    /// Negate the gradient.
    maximize: bool,
    /// L2 weight decay λ, when not 0.
    weight_decay: Option<f32>,
    /// The decayed step size η_t.
    clr: f32,
    /// ε.
    eps: f32,
}

impl FusedStep<1> for Adagrad {
    type Coefficients = AdagradCoefficients;

    crate::fused::keyword_and_reference!();

    fn buffers<const D: usize>(state: &AdagradState<D>) -> [Option<&Tensor<D>>; 1] {
        [Some(&state.sum)]
    }

    /// The sum s: before the first step, full of `initial_accumulator_value`, as the reference
    /// starts.
    fn prepare<const D: usize>(
        &self,
        lr: LearningRate,
        theta: &Tensor<D>,
        state: Option<AdagradState<D>>,
    ) -> (AdagradCoefficients, Buffers<D, 1>) {
        let config = &self.config;
        let (step, s) = match state {
            Some(state) => (state.step, state.sum),
            None => (0, theta.full_like(config.initial_accumulator_value)),
        };
        let c = AdagradCoefficients {
            maximize: config.maximize,
            weight_decay: (config.weight_decay != 0.0).then_some(config.weight_decay as f32),
            clr: decayed_lr(config, lr, step + 1) as f32,
            eps: config.eps as f32,
        };
        let buffers = Buffers {
            step: step + 1,
            tensors: [Some(s)],
        };
        (c, buffers)
    }

    fn state<const D: usize>(buffers: Buffers<D, 1>) -> Option<AdagradState<D>> {
        let [sum] = buffers.tensors;
        sum.map(|sum| AdagradState {
            step: buffers.step,
            sum,
        })
    }

    #[inline(always)]
    fn element<const KEPT: u32>(
        c: &AdagradCoefficients,
        theta: f32,
        grad: f32,
        [s]: [f32; 1],
    ) -> (f32, [f32; 1]) {
        let mut g = if c.maximize { -grad } else { grad };
        if let Some(lambda) = c.weight_decay {
            g += theta * lambda;
        }
        let s = s + g * g;
        let std = s.sqrt() + c.eps;
        (theta - g * c.clr / std, [s])
    }

    #[cfg(cube_kernels)]
    fn launch(
        c: &AdagradCoefficients,
        geometry: cube::Geometry,
        theta: cube::Buffers,
        grad: cube::Buffers,
        [s]: [cube::Buffers; 1],
        _kept: [bool; 1],
    ) {
        cube::launch!(
            adagrad_kernel,
            geometry,
            cube::seq(theta),
            cube::seq(grad),
            cube::seq(s),
            AdagradScalarsLaunch::new(c.weight_decay.unwrap_or(0.0), c.clr, c.eps),
            c.maximize,
            c.weight_decay.is_some(),
        );
    }
}

/// The runtime scalars of [`AdagradCoefficients`].
#[cfg(cube_kernels)]
#[derive(CubeType, CubeLaunch)]
struct AdagradScalars {
    /// λ; unused without weight decay.
    weight_decay: f32,
    clr: f32,
    eps: f32,
}

#[cfg(cube_kernels)]
cube::kernel! {
    #[cube(launch)]
    /// [`Adagrad::element`](FusedStep::element) on a vector of elements.
    fn adagrad_kernel(
        theta,
        grad,
        [s],
        scalars: &AdagradScalars,
        #[comptime] maximize: bool,
        #[comptime] weight_decay: bool,
    )
    for (k, i) {
        let g = cube::gradient::<N>(
            grad[k][i],
            theta[k][i],
            scalars.weight_decay,
            maximize,
            weight_decay,
        );
        let theta_i = theta[k][i];
        let s_i = s[k][i] + g * g;
        let std = Vector::sqrt(s_i) + Vector::new(scalars.eps);
        (&mut theta[k])[i] = theta_i - g * Vector::new(scalars.clr) / std;
        (&mut s[k])[i] = s_i;
    }
}
