//! Lion's fused step: the scalars of a step, the update of one element (which the CPU loop of
//! [`crate::fused::cpu`] runs), and the CubeCL kernel computing the same update on wgpu.
//!
//! The element update is [`Lion::reference_step`]'s arithmetic, operation for operation and in
//! the same order, so on the CPU the fused step equals the reference bit for bit. The CubeCL
//! kernel restates it beside it, since a `#[cube]` function cannot run on the CPU; see Adam's
//! [`kernel`](crate::adam) module for how closely a GPU follows it.

use burn::optim::LearningRate;
use burn::tensor::Tensor;
#[cfg(cube_kernels)]
use cubecl::prelude::*;

use super::{Lion, LionState, decay_factor};
#[cfg(cube_kernels)]
use crate::fused::cube;
use crate::fused::{Buffers, FusedStep};

/// The scalars of one Lion step, as [`Lion::reference_step`] hands them to its tensor ops: each
/// computed in f64 and rounded once to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LionCoefficients {
    /// The weight decay factor `1 − lr·λ` (λ/lr₀ if decoupled), when it is not exactly 1.
    decay: Option<f32>,
    /// β₁.
    beta1: f32,
    /// `1 − β₁`.
    one_minus_beta1: f32,
    /// β₂.
    beta2: f32,
    /// `1 − β₂`.
    one_minus_beta2: f32,
    /// The learning rate.
    lr: f32,
}

/// `sign(x)` as burn's backends compute it: ±1, and 0 for ±0 and NaN (also bitsandbytes'
/// kernels' `sgn`, `(0 < x) − (x < 0)`, which Lion8bit's kernel takes from here).
#[inline(always)]
pub(crate) fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

impl FusedStep<1> for Lion {
    type Coefficients = LionCoefficients;

    crate::fused::keyword_and_reference!();

    fn buffers<const D: usize>(state: &LionState<D>) -> [Option<&Tensor<D>>; 1] {
        [Some(&state.exp_avg)]
    }

    /// The momentum m, zeros before the first step.
    fn prepare<const D: usize>(
        &self,
        lr: LearningRate,
        theta: &Tensor<D>,
        state: Option<LionState<D>>,
    ) -> (LionCoefficients, Buffers<D, 1>) {
        let config = &self.config;
        let decay = decay_factor(config, lr);
        let c = LionCoefficients {
            decay: (decay != 1.0).then_some(decay as f32),
            beta1: config.beta1 as f32,
            one_minus_beta1: (1.0 - config.beta1) as f32,
            beta2: config.beta2 as f32,
            one_minus_beta2: (1.0 - config.beta2) as f32,
            lr: lr as f32,
        };
        let m = state.map_or_else(|| theta.zeros_like(), |s| s.exp_avg);
        let buffers = Buffers {
            step: 0,
            tensors: [Some(m)],
        };
        (c, buffers)
    }

    fn state<const D: usize>(buffers: Buffers<D, 1>) -> Option<LionState<D>> {
        let [exp_avg] = buffers.tensors;
        exp_avg.map(|exp_avg| LionState { exp_avg })
    }

    #[inline(always)]
    fn element<const KEPT: u32>(
        c: &LionCoefficients,
        theta: f32,
        grad: f32,
        [m]: [f32; 1],
    ) -> (f32, [f32; 1]) {
        let theta = match c.decay {
            Some(decay) => theta * decay,
            None => theta,
        };
        let interpolation = m * c.beta1 + grad * c.one_minus_beta1;
        let theta = theta - sign(interpolation) * c.lr;
        let m = m * c.beta2 + grad * c.one_minus_beta2;
        (theta, [m])
    }

    #[cfg(cube_kernels)]
    fn launch(
        c: &LionCoefficients,
        geometry: cube::Geometry,
        theta: cube::Buffers,
        grad: cube::Buffers,
        [m]: [cube::Buffers; 1],
        _kept: [bool; 1],
    ) {
        cube::launch!(
            lion_kernel,
            geometry,
            cube::seq(theta),
            cube::seq(grad),
            cube::seq(m),
            LionScalarsLaunch::new(
                c.decay.unwrap_or(1.0),
                c.beta1,
                c.one_minus_beta1,
                c.beta2,
                c.one_minus_beta2,
                c.lr,
            ),
            c.decay.is_some(),
        );
    }
}

/// The runtime scalars of [`LionCoefficients`].
#[cfg(cube_kernels)]
#[derive(CubeType, CubeLaunch)]
struct LionScalars {
    /// `1 − lr·λ`; unused without decay.
    decay: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    lr: f32,
}

#[cfg(cube_kernels)]
cube::kernel! {
    #[cube(launch)]
    /// [`Lion::element`](FusedStep::element) on a vector of elements.
    fn lion_kernel(theta, grad, [m], s: &LionScalars, #[comptime] decay: bool)
    for (k, i) {
        let g = grad[k][i];
        let m_i = m[k][i];
        let mut theta_i = theta[k][i];
        if comptime![decay] {
            theta_i = theta_i * Vector::new(s.decay);
        }
        let c = m_i * Vector::new(s.beta1) + g * Vector::new(s.one_minus_beta1);
        // sign(c) as burn's backends compute it: ±1, and 0 for ±0 and NaN.
        let zero = Vector::new(0.0f32);
        let sign = select_many(
            c.greater_than(&zero),
            Vector::new(1.0f32),
            select_many(c.less_than(&zero), Vector::new(-1.0f32), zero),
        );
        (&mut theta[k])[i] = theta_i - sign * Vector::new(s.lr);
        (&mut m[k])[i] = m_i * Vector::new(s.beta2) + g * Vector::new(s.one_minus_beta2);
    }
}
