//! Adam's fused step: the scalars of a step, the update of one element (which the CPU loop of
//! [`crate::fused::cpu`] runs), and the CubeCL kernel computing the same update on wgpu.
//!
//! The element update is [`Adam::reference_step`]'s arithmetic, operation for operation and in
//! the same order; Rust never contracts `a·b + c` into a fused multiply-add and vector lanes
//! round as scalars do, so on the CPU the fused step equals the reference bit for bit. The
//! CubeCL kernel restates the update, because a `#[cube]` function is compiled for the GPU and
//! cannot be called on the CPU (nor can a plain Rust function be called from a kernel): the two
//! are written side by side below, line for line. On llvmpipe (software Vulkan) the kernel too
//! equals the reference bit for bit. A GPU's shader compiler may contract `a·b + c` inside the
//! one kernel (the reference's separate kernels cannot), and Vulkan allows division and square
//! root a few ulps of error, so there the two are only promised to agree to f32 rounding.

use burn::optim::LearningRate;
use burn::tensor::Tensor;
#[cfg(cube_kernels)]
use cubecl::prelude::*;

use super::{Adam, AdamConfig, AdamState, StateDtype};
use crate::torch_ops::bf16::round_f32;
#[cfg(cube_kernels)]
use crate::fused::cube;
use crate::fused::{Buffers, FusedStep, Kernel, keeps};

/// The slot of v_max in Adam's state, whose slots are [m, v, v_max].
const MAX_EXP_AVG_SQ: usize = 2;

/// The scalars of one Adam step, as [`Adam::reference_step`] hands them to its tensor ops: each
/// computed in f64 (as torch computes them in Python floats), then rounded once to f32, the
/// tensors' type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AdamCoefficients {
    /// Negate the gradient.
    maximize: bool,
    /// Coupled L2 weight decay, `g ← g + λ·θ`: λ, when not 0 and not decoupled.
    l2: Option<f32>,
    /// Decoupled weight decay (AdamW), `θ ← θ·(1 − lr·λ)`: `1 − lr·λ`, when λ is not 0. (Two
    /// options rather than one three-way enum: the compiler vectorises the loop over two
    /// branches on loop constants, and measured here did not over a three-way match.)
    decoupled: Option<f32>,
    /// `1 − β₁`, the weight of g in m's update.
    one_minus_beta1: f32,
    /// β₂.
    beta2: f32,
    /// `1 − β₂`.
    one_minus_beta2: f32,
    /// AMSGrad's running maximum starts at this step's v (its first step, or a state saved
    /// before AMSGrad was turned on), as the reference's does.
    first_v_max: bool,
    /// `√(1 − β₂ᵗ)`.
    sqrt_bias_correction2: f32,
    /// ε.
    eps: f32,
    /// `lr / (1 − β₁ᵗ)`.
    step_size: f32,
    /// `state_dtype=bf16`: the moments are stored rounded to the nearest bfloat16 (θ takes them
    /// unrounded). The CubeCL kernel does not round: such a step never launches it.
    bf16_states: bool,
}

impl AdamCoefficients {
    /// The scalars of step `t` (1-based) at learning rate `lr`, with β₁ = `beta1` (the
    /// configuration's, or a schedule's).
    fn new(config: &AdamConfig, beta1: f64, lr: f64, t: usize, first_v_max: bool) -> Self {
        let decays = config.weight_decay != 0.0;
        let decoupled = config.decoupled_weight_decay;
        // In f64 with libm's pow, as Python evaluates torch's `1 - beta1 ** step`.
        let bias_correction1 = 1.0 - beta1.powf(t as f64);
        let bias_correction2 = 1.0 - config.beta2.powf(t as f64);
        Self {
            maximize: config.maximize,
            l2: (decays && !decoupled).then_some(config.weight_decay as f32),
            decoupled: (decays && decoupled).then_some((1.0 - lr * config.weight_decay) as f32),
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: config.beta2 as f32,
            one_minus_beta2: (1.0 - config.beta2) as f32,
            first_v_max,
            sqrt_bias_correction2: bias_correction2.sqrt() as f32,
            eps: config.eps as f32,
            step_size: (lr / bias_correction1) as f32,
            bf16_states: config.state_dtype == StateDtype::Bf16,
        }
    }
}

impl FusedStep<3> for Adam {
    type Coefficients = AdamCoefficients;

    crate::fused::keyword_and_reference!();

    /// The CubeCL kernel keeps f32 moments only: with bfloat16 ones, wgpu takes the reference.
    fn runs_on(&self, kernel: Kernel) -> bool {
        #[allow(unreachable_patterns)]
        match kernel {
            #[cfg(cube_kernels)]
            Kernel::Cube => self.config.state_dtype == StateDtype::F32,
            _ => true,
        }
    }

    fn buffers<const D: usize>(state: &AdamState<D>) -> [Option<&Tensor<D>>; 3] {
        [
            Some(&state.exp_avg),
            Some(&state.exp_avg_sq),
            state.max_exp_avg_sq.as_ref(),
        ]
    }

    /// Zeros before the first step (as the reference starts); v_max only with AMSGrad.
    fn prepare<const D: usize>(
        &self,
        lr: LearningRate,
        theta: &Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (AdamCoefficients, Buffers<D, 3>) {
        let (step, m, v, v_max) = match state {
            Some(s) => (s.step, s.exp_avg, s.exp_avg_sq, s.max_exp_avg_sq),
            None => (0, theta.zeros_like(), theta.zeros_like(), None),
        };
        let first_v_max = v_max.is_none();
        let v_max = self
            .config
            .amsgrad
            .then(|| v_max.unwrap_or_else(|| theta.zeros_like()));
        let c = AdamCoefficients::new(&self.config, self.beta1(), lr, step + 1, first_v_max);
        let buffers = Buffers {
            step: step + 1,
            tensors: [Some(m), Some(v), v_max],
        };
        (c, buffers)
    }

    fn state<const D: usize>(buffers: Buffers<D, 3>) -> Option<AdamState<D>> {
        let [Some(exp_avg), Some(exp_avg_sq), max_exp_avg_sq] = buffers.tensors else {
            unreachable!("prepare keeps m and v");
        };
        Some(AdamState {
            step: buffers.step,
            exp_avg,
            exp_avg_sq,
            max_exp_avg_sq,
            rounding_stream: None,
        })
    }

    /// With AMSGrad (v_max kept), the denominator takes the running maximum of v.
    #[inline(always)]
    fn element<const KEPT: u32>(
        c: &AdamCoefficients,
        theta: f32,
        grad: f32,
        [m, v, v_max]: [f32; 3],
    ) -> (f32, [f32; 3]) {
        let mut g = if c.maximize { -grad } else { grad };
        let mut theta = theta;
        if let Some(factor) = c.decoupled {
            theta = theta * factor;
        }
        if let Some(lambda) = c.l2 {
            g = g + theta * lambda;
        }
        let m = m + (g - m) * c.one_minus_beta1;
        let v = v * c.beta2 + g * c.one_minus_beta2 * g;
        // `max_pair` as the reference computes it: `v_max < v ? v : v_max`.
        let v_max = if c.first_v_max || v_max < v { v } else { v_max };
        let v_used = if keeps(KEPT, MAX_EXP_AVG_SQ) {
            v_max
        } else {
            v
        };
        let denom = v_used.sqrt() / c.sqrt_bias_correction2 + c.eps;
        let theta = theta - m * c.step_size / denom;
        if c.bf16_states {
            return (theta, [m, v, v_max].map(round_f32));
        }
        (theta, [m, v, v_max])
    }

    #[cfg(cube_kernels)]
    fn launch(
        c: &AdamCoefficients,
        geometry: cube::Geometry,
        theta: cube::Buffers,
        grad: cube::Buffers,
        [m, v, v_max]: [cube::Buffers; 3],
        kept: [bool; 3],
    ) {
        debug_assert!(!c.bf16_states, "runs_on keeps bfloat16 moments off the CubeCL kernel");
        let (decay, decay_coefficient) = match (c.l2, c.decoupled) {
            (Some(lambda), _) => (DECAY_L2, lambda),
            (None, Some(factor)) => (DECAY_DECOUPLED, factor),
            (None, None) => (DECAY_NONE, 0.0),
        };
        cube::launch!(
            adam_kernel,
            geometry,
            cube::seq(theta),
            cube::seq(grad),
            cube::seq(m),
            cube::seq(v),
            cube::seq(v_max),
            AdamScalarsLaunch::new(
                decay_coefficient,
                c.one_minus_beta1,
                c.beta2,
                c.one_minus_beta2,
                c.sqrt_bias_correction2,
                c.eps,
                c.step_size,
            ),
            AdamOptions {
                maximize: c.maximize,
                decay,
                amsgrad: kept[MAX_EXP_AVG_SQ],
                first_v_max: c.first_v_max,
            },
        );
    }
}

/// The weight decay as the kernel's compile-time switch.
#[cfg(cube_kernels)]
const DECAY_NONE: u32 = 0;
#[cfg(cube_kernels)]
const DECAY_L2: u32 = 1;
#[cfg(cube_kernels)]
const DECAY_DECOUPLED: u32 = 2;

/// The runtime scalars of [`AdamCoefficients`].
#[cfg(cube_kernels)]
#[derive(CubeType, CubeLaunch)]
struct AdamScalars {
    /// λ (L2) or `1 − lr·λ` (decoupled); unused without decay.
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    sqrt_bias_correction2: f32,
    eps: f32,
    step_size: f32,
}

/// The switches of [`AdamCoefficients`], compiled into the kernel.
#[cfg(cube_kernels)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct AdamOptions {
    maximize: bool,
    decay: u32,
    /// v_max is kept (AMSGrad); else its buffer is a placeholder.
    amsgrad: bool,
    first_v_max: bool,
}

#[cfg(cube_kernels)]
cube::kernel! {
    #[cube(launch)]
    /// [`Adam::element`](FusedStep::element) on a vector of elements.
    fn adam_kernel(theta, grad, [m, v, v_max], s: &AdamScalars, #[comptime] options: AdamOptions)
    for (k, i) {
        // L2 or decoupled decay, never both.
        let mut theta_i = theta[k][i];
        let l2 = options.decay == DECAY_L2;
        let g = cube::gradient::<N>(grad[k][i], theta_i, s.decay, options.maximize, l2);
        if comptime![options.decay == DECAY_DECOUPLED] {
            theta_i = theta_i * Vector::new(s.decay);
        }
        let m_i = m[k][i] + (g - m[k][i]) * Vector::new(s.one_minus_beta1);
        let v_i = v[k][i] * Vector::new(s.beta2) + g * Vector::new(s.one_minus_beta2) * g;
        let mut v_used = v_i;
        if comptime![options.amsgrad] {
            // `max_pair` as the reference computes it: `v_max < v ? v : v_max`.
            if comptime![!options.first_v_max] {
                let previous = v_max[k][i];
                v_used = select_many(previous.less_than(&v_i), v_i, previous);
            }
            (&mut v_max[k])[i] = v_used;
        }
        let denom = Vector::sqrt(v_used) / Vector::new(s.sqrt_bias_correction2) + Vector::new(s.eps);
        (&mut theta[k])[i] = theta_i - m_i * Vector::new(s.step_size) / denom;
        (&mut m[k])[i] = m_i;
        (&mut v[k])[i] = v_i;
    }
}

/// The fused CPU steps where bfloat16 is stored (Flex, the backend that stores it), in one pass
/// that widens each stored value to f32 (exact), steps it by [`Adam::element`](FusedStep::element)
/// and stores it back, without branches:
///
/// - [`try_step`]: bfloat16 moments (`state_dtype=bf16`) of an f32 θ; `element` rounded them to
///   bfloat16 values already, so storing drops zeros.
/// - [`try_step_rounding`]: a bfloat16 θ with `bf16_stochastic_round`, f32 or bfloat16 moments; θ
///   is rounded back by [`round_stochastic_f32`](crate::torch_ops::bf16::round_stochastic_f32)
///   with its draw [`bits16`](crate::stochastic::bits16)`(key, index)`, the bits of the tensor-op
///   path.
pub(super) mod bf16 {
    use burn::optim::LearningRate;
    use burn::tensor::Tensor;

    use super::super::{Adam, AdamState};

    /// θ and the state after a step, or the step's inputs back when this loop does not take them.
    type Tried<const D: usize> = Result<
        (Tensor<D>, Option<AdamState<D>>),
        (Tensor<D>, Tensor<D>, Option<AdamState<D>>),
    >;

    /// The step of bfloat16 moments, when θ and the gradient are f32 Flex tensors without
    /// autodiff and the moments are bfloat16 tensors on the same device (or not there yet);
    /// otherwise the inputs back.
    #[cfg(feature = "flex")]
    pub(crate) fn try_step<const D: usize>(
        adam: &Adam,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> Tried<D> {
        use burn::tensor::{DType, bf16};
        let keep = |x: f32, _: usize| x;
        flex::step::<f32, bf16, _, D>(adam, lr, (theta, grad, state), [DType::F32, DType::BF16], &keep)
    }

    /// The step of a bfloat16 θ rounded stochastically with the draws of `key`, when θ and the
    /// gradient are bfloat16 Flex tensors without autodiff and the moments are tensors of the
    /// `state_dtype` on the same device (or not there yet); otherwise the inputs back.
    #[cfg(feature = "flex")]
    pub(crate) fn try_step_rounding<const D: usize>(
        adam: &Adam,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
        key: u64,
    ) -> Tried<D> {
        use super::super::StateDtype;
        use burn::tensor::{DType, bf16};
        use flex::Stored;

        let round = move |x: f32, index: usize| {
            let random = crate::stochastic::bits16(key, index as u64);
            bf16::narrow(crate::torch_ops::bf16::round_stochastic_f32(x, random))
        };
        let inputs = (theta, grad, state);
        match adam.config.state_dtype {
            StateDtype::F32 => flex::step::<bf16, f32, _, D>(adam, lr, inputs, [DType::BF16, DType::F32], &round),
            StateDtype::Bf16 => flex::step::<bf16, bf16, _, D>(adam, lr, inputs, [DType::BF16, DType::BF16], &round),
        }
    }

    /// Without Flex, no backend stores bfloat16 for these loops.
    #[cfg(not(feature = "flex"))]
    pub(crate) fn try_step<const D: usize>(
        _adam: &Adam,
        _lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> Tried<D> {
        Err((theta, grad, state))
    }

    /// Without Flex, no backend stores bfloat16 for these loops.
    #[cfg(not(feature = "flex"))]
    pub(crate) fn try_step_rounding<const D: usize>(
        _adam: &Adam,
        _lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
        _key: u64,
    ) -> Tried<D> {
        Err((theta, grad, state))
    }

    /// The loop over Flex tensors taken out of their [`Tensor`]s.
    #[cfg(feature = "flex")]
    mod flex {
        use burn::backend::flex::FlexTensor;
        use burn::backend::{
            BackendTensor, DispatchAutodiffContext, DispatchDevice, DispatchTensor, DispatchTensorKind,
        };
        use burn::optim::LearningRate;
        use burn::tensor::{DType, Tensor};

        use super::super::super::{Adam, AdamState};
        use super::super::AdamCoefficients;
        use super::Tried;
        use crate::fused::cpu::{for_each_chunk_at, vectorized};
        use crate::fused::{Buffers, FusedStep, keeps};

        /// The step with θ and the gradient stored as `T` and the moments as `M`, of the dtypes
        /// `[θ's, the moments']`, when every tensor is a Flex tensor of its dtype without autodiff
        /// on θ's device (missing moments start as zeros); otherwise the inputs back.
        ///
        /// `round` stores θ back as `T` from the f32 that `element` returned and the element's
        /// index in the tensor (a generic, so that it is inlined into the vectorized loop).
        pub(super) fn step<T: Stored, M: Stored, R: Fn(f32, usize) -> T + Sync, const D: usize>(
            adam: &Adam,
            lr: LearningRate,
            (theta, grad, state): (Tensor<D>, Tensor<D>, Option<AdamState<D>>),
            [theta_dtype, moment_dtype]: [DType; 2],
            round: &R,
        ) -> Tried<D> {
            let device = theta.device();
            let fits = |t: &Tensor<D>, dtype: DType| {
                t.dtype() == dtype && !t.device().is_autodiff() && t.device() == device
            };
            let on_flex = matches!(device.as_dispatch(), DispatchDevice::Flex(_))
                && device.supports_dtype(DType::BF16)
                && fits(&theta, theta_dtype)
                && fits(&grad, theta_dtype);
            let moments_fit = state.as_ref().is_none_or(|s| {
                <Adam as FusedStep<3>>::buffers(s).into_iter().flatten().all(|t| fits(t, moment_dtype))
            });
            if !on_flex || !moments_fit {
                return Err((theta, grad, state));
            }
            if let Err(err) = crate::hyper::check_learning_rate(lr) {
                panic!("{err}");
            }
            // `prepare` starts missing moments as zeros of θ's dtype; in the moments' they are zeros too.
            let (c, buffers) = adam.prepare(lr, &theta, state);
            let mut moments = buffers
                .tensors
                .map(|t| t.map(|t| Buffer::take(t.cast(moment_dtype), moment_dtype)));
            let amsgrad = moments[2].is_some();
            let mut theta = Buffer::take(theta, theta_dtype);
            let grad = Buffer::take(grad, theta_dtype);
            let g = grad.read::<T>();
            let (t, g) = (theta.write::<T>(), &g[..]);
            let [m, v, v_max] = moments
                .each_mut()
                .map(|b| b.as_mut().map_or(Default::default(), |b| b.write::<M>()));
            if amsgrad {
                for_each_chunk_at(0, t, [m, v, v_max], g, &|offset, t, [m, v, v_max], g| {
                    vectorized_chunk::<T, M, R, 0b111>(&c, round, offset, t, g, [m, v, v_max])
                });
            } else {
                for_each_chunk_at(0, t, [m, v, v_max], g, &|offset, t, [m, v, v_max], g| {
                    vectorized_chunk::<T, M, R, 0b011>(&c, round, offset, t, g, [m, v, v_max])
                });
            }
            let state = <Adam as FusedStep<3>>::state(Buffers {
                step: buffers.step,
                tensors: moments.map(|b| b.map(Buffer::into_tensor)),
            });
            Ok((theta.into_tensor(), state))
        }

        /// [`Adam::element`](FusedStep::element) over one chunk starting at element `offset`,
        /// compiled for the widest SIMD level the machine has.
        #[inline(always)]
        fn vectorized_chunk<T: Stored, M: Stored, R: Fn(f32, usize) -> T, const KEPT: u32>(
            c: &AdamCoefficients,
            round: &R,
            offset: usize,
            theta: &mut [T],
            grad: &[T],
            [m, v, v_max]: [&mut [M]; 3],
        ) {
            let c = *c;
            vectorized(
                #[inline(always)]
                move || {
                    let len = theta.len();
                    let (grad, m, v) = (&grad[..len], &mut m[..len], &mut v[..len]);
                    let v_max = if keeps(KEPT, 2) { &mut v_max[..len] } else { &mut v_max[..] };
                    for i in 0..len {
                        let stored_max = if keeps(KEPT, 2) { v_max[i].widen() } else { 0.0 };
                        let (next, [mi, vi, max_i]) = <Adam as FusedStep<3>>::element::<KEPT>(
                            &c,
                            theta[i].widen(),
                            grad[i].widen(),
                            [m[i].widen(), v[i].widen(), stored_max],
                        );
                        theta[i] = round(next, offset + i);
                        m[i] = M::narrow(mi);
                        v[i] = M::narrow(vi);
                        if keeps(KEPT, 2) {
                            v_max[i] = M::narrow(max_i);
                        }
                    }
                },
            )
        }

        /// An element as a loop stores it: f32, or bfloat16, the top half of an f32.
        pub(in super::super) trait Stored: burn::tensor::Element + bytemuck::Pod + Send + Sync {
            /// The f32 it is (exact).
            fn widen(self) -> f32;
            /// `x`, which holds a value of this type already (rounded by the step), stored.
            fn narrow(x: f32) -> Self;
        }

        impl Stored for f32 {
            #[inline(always)]
            fn widen(self) -> f32 {
                self
            }
            #[inline(always)]
            fn narrow(x: f32) -> Self {
                x
            }
        }

        /// Widening appends zeros (a NaN stays a NaN); narrowing drops the zeros a rounded value has.
        impl Stored for burn::tensor::bf16 {
            #[inline(always)]
            fn widen(self) -> f32 {
                f32::from_bits(u32::from(self.to_bits()) << 16)
            }
            #[inline(always)]
            fn narrow(x: f32) -> Self {
                Self::from_bits((x.to_bits() >> 16) as u16)
            }
        }

        /// A Flex tensor of a dtype its taker checked, its elements read or updated in place.
        struct Buffer(FlexTensor);

        impl Buffer {
            /// The primitive of `tensor`, which the caller checked to be a Flex tensor of `dtype`
            /// without autodiff.
            fn take<const D: usize>(tensor: Tensor<D>, dtype: DType) -> Self {
                #[allow(unreachable_patterns)]
                match tensor.into_dispatch().kind {
                    DispatchTensorKind::Flex(BackendTensor::Float(t)) if t.dtype() == dtype => Self(t),
                    _ => panic!("fused step on a tensor that is not a {dtype:?} Flex tensor: checked by step"),
                }
            }

            /// The elements in row-major order: borrowed when the tensor is contiguous (another
            /// holder of the buffer, as a gradient reused step after step, costs no copy), else
            /// copied.
            fn read<E: burn::tensor::Element + bytemuck::Pod>(&self) -> std::borrow::Cow<'_, [E]> {
                match self.0.as_slice::<E>() {
                    Some(slice) => std::borrow::Cow::Borrowed(slice),
                    None => std::borrow::Cow::Owned(crate::fused::cpu::flex_row_major(&self.0)),
                }
            }

            /// The elements in row-major order, to update in place: the tensor's own buffer when
            /// no one else holds it and it is contiguous, else a contiguous copy first.
            fn write<E: burn::tensor::Element + bytemuck::Pod>(&mut self) -> &mut [E] {
                crate::fused::cpu::flex_elements_mut(&mut self.0)
            }

            /// Back into a [`Tensor`].
            fn into_tensor<const D: usize>(self) -> Tensor<D> {
                Tensor::from_dispatch(DispatchTensor {
                    kind: DispatchTensorKind::Flex(BackendTensor::Float(self.0)),
                    autodiff: DispatchAutodiffContext::Disabled,
                })
            }
        }
    }
}
