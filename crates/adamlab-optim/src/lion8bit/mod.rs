//! 8-bit Lion with bitsandbytes' semantics (`bnb.optim.Lion8bit`): the momentum of a parameter of
//! at least `min_8bit_size` elements kept as one byte per element, a code of bitsandbytes' signed
//! dynamic map, with one f32 absmax per block of 256 elements; smaller parameters keep an f32
//! momentum, as bitsandbytes keeps it.
//!
//! The reference is bitsandbytes 0.50.2's CUDA kernels, `kOptimizerStatic8bit1StateBlockwise` and
//! `kOptimizer32bit1State` for LION, through the NumPy transcription of
//! `tools/reference/bnb_blockwise.py` (why not bitsandbytes' CPU path: see
//! [`crate::adam8bit`]). The blockwise quantization is [`crate::adam8bit::quantize`]'s.
//!
//! Its step ([`Optimizer::step`](burn::optim::Optimizer::step)) is written three times, as the
//! other fused optimizers' are: the tensor-op [reference](Lion8bit::reference_step), the fused CPU
//! step of [`kernel`] (Flex, NdArray) and the fused CubeCL step of `cube` (wgpu), one pass per
//! block, in place. The `fused` keyword picks between them; any other backend takes the reference.

#[cfg(cube_kernels)]
mod cube;
mod kernel;

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::adam8bit::{Codes, IS_PAGED, MIN_8BIT_SIZE, Moments, State8bit, not_paged};
use crate::adam8bit::quantize::{DYNAMIC_SIGNED, PAD_CODE1, Rows};
use crate::keywords::{BETAS, FUSED_ADAMLAB, LR, WEIGHT_DECAY};
use crate::registry::OptimizerEntry;

crate::hyper_config! {
    /// Configuration of [`Lion8bit`], with `bitsandbytes.optim.Lion8bit`'s keywords and defaults.
    pub struct Lion8bitConfig {
        LR => 1e-4;
        BETAS.help("β₁ mixes momentum and gradient for the update's sign; β₂ is the momentum's decay") => {
            /// Interpolation between the momentum and the gradient for the update's sign, β₁.
            beta1: f64 = 0.9,
            /// Decay rate of the momentum, β₂.
            beta2: f64 = 0.99,
        }
        WEIGHT_DECAY.help("decoupled weight decay λ: θ ← θ·(1 − lr·λ) before the update") => {
            /// Weight decay λ, decoupled, applied before the sign update.
            weight_decay: f64 = 0.0,
        }
        MIN_8BIT_SIZE.help("parameters with fewer elements keep an f32 momentum") => {
            /// Parameters with fewer elements keep an f32 momentum.
            min_8bit_size: usize = 4096,
        }
        IS_PAGED => {
            /// bitsandbytes' keyword: only `false` (CUDA unified memory).
            is_paged: bool = false,
        }
        FUSED_ADAMLAB => {
            /// Step with the fused kernel on f32 Flex and NdArray tensors (a CPU loop) and on
            /// wgpu (a CubeCL kernel), else with the tensor-op reference step; the numbers are the
            /// same.
            fused: bool = true,
        }
    }
}

/// The registry's `lion8bit`: `bitsandbytes.optim.Lion8bit`.
pub const LION8BIT: OptimizerEntry = OptimizerEntry {
    name: "lion8bit",
    summary: "Lion with an 8-bit blockwise momentum, bitsandbytes' Lion8bit",
    reference: "bitsandbytes.optim.Lion8bit (bitsandbytes 0.50.2, its CUDA kernels transcribed)",
    params: Lion8bitConfig::PARAMS,
    build: Lion8bitConfig::build_entry,
};

/// Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023,
/// <https://arxiv.org/abs/2302.06675>) with an 8-bit blockwise momentum, as bitsandbytes' CUDA
/// kernels compute it.
///
/// For a parameter of at least `min_8bit_size` elements, at each step, block by block (256
/// elements; the last block padded with gradient 0 and code 128, as the kernel pads it):
///
/// ```text
/// m ← map[c]·absmax                              dequantize
/// θ ← θ·(1 − lr·λ)                               if λ > 0
/// θ ← θ − lr·sgn(β₁·m + (1 − β₁)·g)              sgn(0) = sgn(NaN) = 0
/// m ← β₂·m + (1 − β₂)·g
/// absmax ← max |m| over the block, padding included (NaN never wins)
/// c ← nearest code of m/absmax, moved one code towards m's sign if its value has the other sign
/// ```
///
/// A smaller parameter keeps an f32 momentum and takes the same three updates
/// (`kOptimizer32bit1State`). Scalars are f32, as the kernels compute them (`1 − β` an f32
/// difference). Unlike lion-pytorch's (`lion`), the weight decay is `1 − lr·λ` with the step's lr.
#[derive(Clone, Debug)]
pub struct Lion8bit {
    config: Lion8bitConfig,
}

crate::builds!(Lion8bitConfig => Lion8bit, check = |config: &Lion8bitConfig| {
    not_paged(config.is_paged)
});

/// The state of one parameter: its step count and its momentum (`state1`), f32 or 8-bit
/// ([`State8bit`]).
pub type Lion8bitState<const D: usize> = State8bit<1, D>;

/// The scalars of one step, as the kernels compute them in f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Coefficients {
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    /// `1 − lr·λ`, when λ > 0.
    decay: Option<f32>,
}

impl Coefficients {
    fn new(config: &Lion8bitConfig, lr: f64) -> Self {
        let [lr, beta1, beta2, weight_decay] =
            [lr, config.beta1, config.beta2, config.weight_decay].map(|x| x as f32);
        Self {
            lr,
            beta1,
            beta2,
            one_minus_beta1: 1.0 - beta1,
            one_minus_beta2: 1.0 - beta2,
            decay: (weight_decay > 0.0).then(|| 1.0 - lr * weight_decay),
        }
    }
}

impl Lion8bit {
    /// One step for one parameter tensor with tensor operations: the readable reference that the
    /// fused CPU step must equal bit for bit. Every backend and dtype runs it.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Lion8bitState<D>>,
    ) -> (Tensor<D>, Option<Lion8bitState<D>>) {
        let state = state.unwrap_or_else(|| State8bit::initial(&theta, self.config.min_8bit_size));
        let c = Coefficients::new(&self.config, lr);
        let theta = match c.decay {
            Some(factor) => theta.mul_scalar(factor),
            None => theta,
        };
        let (codes, absmax) = match state.moments {
            Moments::Full([m]) => {
                let theta = theta.sub(sign_step(&c, m.clone(), grad.clone()));
                let m = m
                    .mul_scalar(c.beta2)
                    .add(grad.mul_scalar(c.one_minus_beta2));
                return (
                    theta,
                    Some(Lion8bitState {
                        step: state.step + 1,
                        moments: Moments::Full([m]),
                    }),
                );
            }
            Moments::Blockwise { codes: [codes], absmax: [absmax] } => (codes, absmax),
        };
        let (theta, codes, absmax) = blockwise_reference_step(&c, theta, grad, codes, absmax);
        let state = Lion8bitState {
            step: state.step + 1,
            moments: Moments::Blockwise { codes: [codes], absmax: [absmax] },
        };
        (theta, Some(state))
    }
}

/// `lr·sgn(β₁·m + (1 − β₁)·g)`, with sgn as the kernels' `(0 < x) − (x < 0)` (0 for NaN).
fn sign_step<const D: usize>(c: &Coefficients, m: Tensor<D>, g: Tensor<D>) -> Tensor<D> {
    let mixed = m.mul_scalar(c.beta1).add(g.mul_scalar(c.one_minus_beta1));
    let (positive, negative) = (
        mixed.clone().greater_elem(0.0),
        mixed.clone().lower_elem(0.0),
    );
    let sign = mixed
        .zeros_like()
        .mask_fill(positive, 1.0)
        .mask_fill(negative, -1.0);
    sign.mul_scalar(c.lr)
}

/// The 8-bit kernel's step on tensors (θ already decayed), on the parameter's [`Rows`].
fn blockwise_reference_step<const D: usize>(
    c: &Coefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    codes: Codes<D>,
    absmax: Tensor<1>,
) -> (Tensor<D>, Codes<D>, Tensor<1>) {
    let rows = Rows::of(&theta);
    let map = rows.map(&DYNAMIC_SIGNED);
    let g = rows.floats(grad);
    let m = rows.dequantize(&map, codes, PAD_CODE1, absmax);
    let step = sign_step(c, m.clone(), g.clone());
    let m = m.mul_scalar(c.beta2).add(g.mul_scalar(c.one_minus_beta2));
    let theta = theta.sub(rows.own(step));
    let (codes, absmax) = rows.quantize(&map, m, true);
    (theta, codes, absmax)
}

crate::fused::impl_optimizer!(Lion8bit, Lion8bitState, to_device = State8bit::moved, step =
    /// One step for one parameter tensor; see [`Lion8bit`] for the update rule.
    |lion, lr, theta, grad, state| crate::adam8bit::step_8bit(lion, lr, theta, grad, state)
);
