//! AdaBelief's fused step: the scalars of a step, the update of one element (which the CPU loop
//! of [`crate::fused::cpu`] runs), and the CubeCL kernel computing the same update on wgpu.
//!
//! The element update is [`AdaBelief::reference_step`]'s arithmetic, operation for operation
//! and in its order, its single roundings included ([`torch_ops::mul_add`]), so on the CPU the
//! fused step equals the reference bit for bit. The CubeCL kernel restates it beside it, since a
//! `#[cube]` function cannot run on the CPU; see Adam's [`kernel`](crate::adam) module for how
//! closely a GPU follows it.

use burn::optim::LearningRate;
use burn::tensor::Tensor;
#[cfg(cube_kernels)]
use cubecl::prelude::*;

use super::{AdaBelief, AdaBeliefState, Update, decay_factor};
#[cfg(cube_kernels)]
use crate::fused::cube;
use crate::fused::{Buffers, FusedStep, keeps};
#[cfg(cube_kernels)]
use crate::torch_ops::mul_add_vector;
use crate::torch_ops::{self, mul_add};

/// The slot of s_max in AdaBelief's state, whose slots are [m, s, s_max].
const MAX_EXP_AVG_VAR: usize = 2;

/// How θ moves at this step: [`Update`] without its scalars (the kernel's compile-time switch).
const ADAM: u32 = 0;
const RECTIFIED: u32 = 1;
const MOMENTUM: u32 = 2;
const SKIP: u32 = 3;

/// The scalars of one AdaBelief step, as [`AdaBelief::reference_step`] hands them to its tensor
/// ops: each computed in f64 and rounded once to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AdaBeliefCoefficients {
    /// The decoupled decay's factor `1 − lr·λ` (or `1 − λ`), when decoupled and λ ≠ 0.
    decoupled: Option<f32>,
    /// L2 weight decay λ, when not decoupled and not 0.
    l2: Option<f32>,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    /// [`ADAM`], [`RECTIFIED`], [`MOMENTUM`] or [`SKIP`].
    update: u32,
    /// The step size of [`Update`] (0 for [`SKIP`]).
    step: f32,
    /// `√(1 − β₂ᵗ)` for [`ADAM`], else 1 (unused).
    sqrt_bias_correction2: f32,
    /// Round each multiply-add once (through f64), as the reference does on a device that
    /// computes in f64; else twice, in f32, as the reference does elsewhere.
    single_rounding: bool,
}

impl FusedStep<3> for AdaBelief {
    type Coefficients = AdaBeliefCoefficients;

    crate::fused::keyword_and_reference!();

    fn buffers<const D: usize>(state: &AdaBeliefState<D>) -> [Option<&Tensor<D>>; 3] {
        [
            Some(&state.exp_avg),
            Some(&state.exp_avg_var),
            state.max_exp_avg_var.as_ref(),
        ]
    }

    /// Zeros before the first step, as the reference starts (s_max too, only with `amsgrad`).
    fn prepare<const D: usize>(
        &self,
        lr: LearningRate,
        theta: &Tensor<D>,
        state: Option<AdaBeliefState<D>>,
    ) -> (AdaBeliefCoefficients, Buffers<D, 3>) {
        let config = &self.config;
        let (step, m, s, s_max) = match state {
            Some(state) => (
                state.step,
                state.exp_avg,
                state.exp_avg_var,
                state.max_exp_avg_var,
            ),
            None => (0, theta.zeros_like(), theta.zeros_like(), None),
        };
        let s_max = config
            .amsgrad
            .then(|| s_max.unwrap_or_else(|| theta.zeros_like()));
        let decays = config.weight_decay != 0.0;
        let beta1 = self.beta1();
        let (update, step_size, sqrt_bias_correction2) = match self.update(lr, step + 1) {
            Update::Adam {
                step,
                sqrt_bias_correction2,
            } => (ADAM, step, sqrt_bias_correction2),
            Update::Rectified { step } => (RECTIFIED, step, 1.0),
            Update::Momentum { step } => (MOMENTUM, step, 1.0),
            Update::Skip => (SKIP, 0.0, 1.0),
        };
        let c = AdaBeliefCoefficients {
            decoupled: (config.weight_decouple && decays).then(|| decay_factor(config, lr) as f32),
            l2: (!config.weight_decouple && decays).then_some(config.weight_decay as f32),
            beta1: beta1 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: config.beta2 as f32,
            one_minus_beta2: (1.0 - config.beta2) as f32,
            eps: config.eps as f32,
            update,
            step: step_size as f32,
            sqrt_bias_correction2: sqrt_bias_correction2 as f32,
            single_rounding: torch_ops::in_f64(theta),
        };
        (
            c,
            Buffers {
                step: step + 1,
                tensors: [Some(m), Some(s), s_max],
            },
        )
    }

    fn state<const D: usize>(buffers: Buffers<D, 3>) -> Option<AdaBeliefState<D>> {
        let [Some(exp_avg), Some(exp_avg_var), max_exp_avg_var] = buffers.tensors else {
            unreachable!("prepare keeps m and s");
        };
        Some(AdaBeliefState {
            step: buffers.step,
            exp_avg,
            exp_avg_var,
            max_exp_avg_var,
        })
    }

    /// With `amsgrad` (s_max kept), a step that is not rectified divides by s_max.
    #[inline(always)]
    fn element<const KEPT: u32>(
        c: &AdaBeliefCoefficients,
        theta: f32,
        grad: f32,
        [m, s, s_max]: [f32; 3],
    ) -> (f32, [f32; 3]) {
        let (mut theta, mut g) = (theta, grad);
        if let Some(factor) = c.decoupled {
            theta = theta * factor;
        }
        if let Some(lambda) = c.l2 {
            g = mul_add(theta, lambda, g, c.single_rounding);
        }
        let m = mul_add(g, c.one_minus_beta1, m * c.beta1, c.single_rounding);
        let r = g - m;
        let s = mul_add(r * c.one_minus_beta2, r, s * c.beta2, c.single_rounding) + c.eps;
        // `max_pair` as the reference computes it: `s_max < s ? s : s_max`.
        let s_max = if s_max < s { s } else { s_max };
        let theta = match c.update {
            ADAM => {
                let v = if keeps(KEPT, MAX_EXP_AVG_VAR) {
                    s_max
                } else {
                    s
                };
                theta + m * c.step / (v.sqrt() / c.sqrt_bias_correction2 + c.eps)
            }
            RECTIFIED => theta + m * c.step / (s.sqrt() + c.eps),
            MOMENTUM => mul_add(m, c.step, theta, c.single_rounding),
            _ => theta,
        };
        (theta, [m, s, s_max])
    }

    #[cfg(cube_kernels)]
    fn launch(
        c: &AdaBeliefCoefficients,
        geometry: cube::Geometry,
        theta: cube::Buffers,
        grad: cube::Buffers,
        [m, s, s_max]: [cube::Buffers; 3],
        kept: [bool; 3],
    ) {
        let decay = c.decoupled.or(c.l2).unwrap_or(0.0);
        cube::launch!(
            adabelief_kernel,
            geometry,
            cube::seq(theta),
            cube::seq(grad),
            cube::seq(m),
            cube::seq(s),
            cube::seq(s_max),
            AdaBeliefScalarsLaunch::new(
                decay,
                c.beta1,
                c.one_minus_beta1,
                c.beta2,
                c.one_minus_beta2,
                c.eps,
                c.step,
                c.sqrt_bias_correction2,
            ),
            AdaBeliefOptions {
                decoupled: c.decoupled.is_some(),
                l2: c.l2.is_some(),
                amsgrad: kept[MAX_EXP_AVG_VAR],
                update: c.update,
                single_rounding: c.single_rounding,
            },
        );
    }
}

/// The runtime scalars of [`AdaBeliefCoefficients`].
#[cfg(cube_kernels)]
#[derive(CubeType, CubeLaunch)]
struct AdaBeliefScalars {
    /// The decoupled factor or λ; unused without decay.
    decay: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    step: f32,
    sqrt_bias_correction2: f32,
}

/// The switches of [`AdaBeliefCoefficients`], compiled into the kernel.
#[cfg(cube_kernels)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct AdaBeliefOptions {
    decoupled: bool,
    l2: bool,
    /// s_max is kept; else its buffer is a placeholder.
    amsgrad: bool,
    update: u32,
    single_rounding: bool,
}

#[cfg(cube_kernels)]
cube::kernel! {
    #[cube(launch)]
    /// [`AdaBelief::element`](FusedStep::element) on a vector of elements.
    fn adabelief_kernel(
        theta,
        grad,
        [m, s, s_max],
        scalars: &AdaBeliefScalars,
        #[comptime] options: AdaBeliefOptions,
    )
    for (k, i) {
        let rounding = options.single_rounding;
        let mut theta_i = theta[k][i];
        let mut g = grad[k][i];
        if comptime![options.decoupled] {
            theta_i = theta_i * Vector::new(scalars.decay);
        }
        if comptime![options.l2] {
            g = mul_add_vector::<N>(theta_i, Vector::new(scalars.decay), g, rounding);
        }
        let m_i = mul_add_vector::<N>(
            g,
            Vector::new(scalars.one_minus_beta1),
            m[k][i] * Vector::new(scalars.beta1),
            rounding,
        );
        let r = g - m_i;
        let s_i = mul_add_vector::<N>(
            r * Vector::new(scalars.one_minus_beta2),
            r,
            s[k][i] * Vector::new(scalars.beta2),
            rounding,
        ) + Vector::new(scalars.eps);
        let mut v = s_i;
        if comptime![options.amsgrad] {
            // `max_pair` as the reference computes it: `s_max < s ? s : s_max`.
            let previous = s_max[k][i];
            let s_max_i = select_many(previous.less_than(&s_i), s_i, previous);
            (&mut s_max[k])[i] = s_max_i;
            if comptime![options.update == ADAM] {
                v = s_max_i;
            }
        }
        let step = Vector::new(scalars.step);
        if comptime![options.update == ADAM] {
            theta_i = theta_i
                + m_i * step
                    / (Vector::sqrt(v) / Vector::new(scalars.sqrt_bias_correction2) + Vector::new(scalars.eps));
        }
        if comptime![options.update == RECTIFIED] {
            theta_i = theta_i + m_i * step / (Vector::sqrt(s_i) + Vector::new(scalars.eps));
        }
        if comptime![options.update == MOMENTUM] {
            theta_i = mul_add_vector::<N>(m_i, step, theta_i, rounding);
        }
        (&mut theta[k])[i] = theta_i;
        (&mut m[k])[i] = m_i;
        (&mut s[k])[i] = s_i;
    }
}

/// The fused step equals the reference bit for bit on the rectified steps (t ≥ 6 at β₂ = 0.999),
/// which the shared table (`adamlab_verify::fused`, four steps) never reaches: ρₜ < t.
#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::super::AdaBeliefConfig;
    use burn::optim::Optimizer;
    use burn::tensor::{Device, Tensor, TensorData};

    #[test]
    fn rectified_steps_equal_the_reference_bit_for_bit() {
        let device = Device::flex();
        let wave = |k: f32| {
            (0..1000)
                .map(|i| (i as f32 * 0.37 + k).sin())
                .collect::<Vec<_>>()
        };
        let tensor = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [1000]), &device);
        for config in [
            AdaBeliefConfig::new().with_weight_decay(0.1),
            AdaBeliefConfig::new().with_amsgrad(true),
        ] {
            let [fused, reference] =
                [true, false].map(|f| config.clone().with_fused(f).build().unwrap());
            let (mut a, mut b) = (tensor(wave(0.0)), tensor(wave(0.0)));
            let (mut state_a, mut state_b) = (None, None);
            for t in 1..=8 {
                let g = tensor(wave(t as f32));
                (a, state_a) = fused.step(1e-2, a, g.clone(), state_a.take());
                (b, state_b) = reference.step(1e-2, b, g, state_b.take());
                a.to_data().assert_eq(&b.to_data(), true);
            }
            let s =
                |s: &Option<super::AdaBeliefState<1>>| s.as_ref().unwrap().exp_avg_var.to_data();
            s(&state_a).assert_eq(&s(&state_b), true);
        }
    }
}
