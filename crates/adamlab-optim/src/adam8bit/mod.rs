//! 8-bit Adam and AdamW with bitsandbytes' semantics (`bnb.optim.Adam8bit`, `AdamW8bit`): the
//! two moments of a parameter of at least `min_8bit_size` elements are kept as one byte per
//! element, a code of bitsandbytes' dynamic quantization map, with one f32 absmax per block of 256
//! elements; smaller parameters keep f32 moments, as bitsandbytes keeps them.
//!
//! The reference is bitsandbytes' CUDA kernels (csrc/kernels.cu, bitsandbytes 0.50.2):
//! `kOptimizerStatic8bit2StateBlockwise` for the 8-bit states and `kOptimizer32bit2State` for the
//! f32 ones. bitsandbytes' own CPU path computes another algorithm (a lookup-table quantizer, no
//! sign fix), so the fixtures come from a NumPy transcription of the kernels
//! (`tools/reference/bnb_blockwise.py`), which this module equals bit for bit on the CPU.
//!
//! Its step ([`Optimizer::step`](burn::optim::Optimizer::step)) is written three times, as the
//! other fused optimizers' are: the tensor-op [reference](Adam8bit::reference_step), the fused CPU
//! step of [`kernel`] (Flex, NdArray), which dequantizes, updates and requantizes one block at a
//! time, in place, and the fused CubeCL step of `cube` (wgpu), one cube per block. The `fused`
//! keyword picks between them; any other backend takes the reference. The codes are u8 on the CPU
//! backends and packed four to a u32 word on wgpu ([`layout`]).

#[cfg(cube_kernels)]
pub(crate) mod cube;
pub(crate) mod kernel;
pub mod layout;
pub mod quantize;
mod state;

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use crate::hyper::{ConfigError, Keyword, Kind, param};
use crate::keywords::{BETAS, EPS, FUSED_ADAMLAB, LR, WEIGHT_DECAY};
use crate::registry::OptimizerEntry;
pub use layout::{Codes, packs};
pub use state::{Moments, State8bit};
use quantize::{DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, PAD_CODE1, Rows};

crate::hyper_config! {
    /// Configuration of [`Adam8bit`], with `bitsandbytes.optim.Adam8bit`'s keywords and defaults
    /// (AdamW8bit's differ only in `weight_decay`, 1e-2: [`Adam8bitConfig::adamw`]).
    pub struct Adam8bitConfig {
        LR => 0.001;
        BETAS => {
            /// Decay rate of the first moment, β₁.
            beta1: f64 = 0.9,
            /// Decay rate of the second moment, β₂.
            beta2: f64 = 0.999,
        }
        EPS => {
            /// Added to `√v` scaled by `√(1 − β₂ᵗ)` (bitsandbytes' form of ε after the bias
            /// correction). bitsandbytes accepts 0; adamlab requires a normal f32, as for Adam.
            eps: f64 = 1e-8,
        }
        WEIGHT_DECAY_AFTER_UPDATE => {
            /// Weight decay λ, decoupled and applied after the Adam update: `θ ← θ·(1 − lr·λ)`
            /// (bitsandbytes' Adam8bit decays this way too, unlike torch.optim.Adam's L2).
            weight_decay: f64 = 0.0,
        }
        AMSGRAD => {
            /// bitsandbytes' keyword: only `false` (bitsandbytes refuses `true` too).
            amsgrad: bool = false,
        }
        OPTIM_BITS => {
            /// bitsandbytes' keyword, kept for its signature: only its default 32 is accepted,
            /// as bitsandbytes accepts it; the states are 8-bit regardless.
            optim_bits: usize = 32,
        }
        MIN_8BIT_SIZE => {
            /// Parameters with fewer elements keep f32 moments.
            min_8bit_size: usize = 4096,
        }
        IS_PAGED => {
            /// bitsandbytes' keyword: only `false`. Paging keeps states in CUDA unified memory,
            /// which adamlab's backends do not have.
            is_paged: bool = false,
        }
        FUSED_ADAMLAB => {
            /// Step with the fused kernel on f32 Flex and NdArray tensors (a CPU loop) and on wgpu
            /// (a CubeCL kernel), one pass per block, in place, else with the tensor-op reference
            /// step; the numbers are the same.
            fused: bool = true,
        }
    }
}

/// `weight_decay` as bitsandbytes' 8-bit Adam applies it.
const WEIGHT_DECAY_AFTER_UPDATE: Keyword =
    WEIGHT_DECAY.help("decoupled weight decay λ, applied after the update: θ ← θ·(1 − lr·λ)");

/// `amsgrad`: bitsandbytes' keyword, which only takes `false`.
const AMSGRAD: Keyword = Keyword {
    name: "amsgrad",
    kind: Kind::Bool,
    help: "not supported (bitsandbytes' Adam8bit refuses it too): only false",
};

/// `optim_bits`: bitsandbytes' keyword, which only takes 32.
const OPTIM_BITS: Keyword = Keyword {
    name: "optim_bits",
    kind: Kind::Int { min: 32, max: 32 },
    help: "bitsandbytes' keyword, only its default 32 (the states are 8-bit regardless)",
};

/// `min_8bit_size` (bitsandbytes' 8-bit optimizers).
pub(crate) const MIN_8BIT_SIZE: Keyword = Keyword {
    name: "min_8bit_size",
    kind: Kind::Int {
        min: 0,
        max: i64::MAX,
    },
    help: "parameters with fewer elements keep f32 moments",
};

/// `is_paged`: bitsandbytes' keyword, which adamlab only takes as `false`.
pub(crate) const IS_PAGED: Keyword = Keyword {
    name: "is_paged",
    kind: Kind::Bool,
    help: "not supported (CUDA unified memory): only false",
};

/// AdamW8bit's weight decay, bitsandbytes' default.
pub const ADAMW8BIT_WEIGHT_DECAY: f64 = 1e-2;

/// The registry's `adam8bit`: `bitsandbytes.optim.Adam8bit`.
pub const ADAM8BIT: OptimizerEntry = OptimizerEntry {
    name: "adam8bit",
    summary: "Adam with 8-bit blockwise moments (Dettmers et al., 2022), bitsandbytes' Adam8bit",
    reference: "bitsandbytes.optim.Adam8bit (bitsandbytes 0.50.2, its CUDA kernels transcribed)",
    params: Adam8bitConfig::PARAMS,
    build: Adam8bitConfig::build_entry,
};

/// The registry's `adamw8bit`: `bitsandbytes.optim.AdamW8bit`, Adam8bit with weight decay 1e-2.
pub const ADAMW8BIT: OptimizerEntry = OptimizerEntry {
    name: "adamw8bit",
    summary: "AdamW with 8-bit blockwise moments, bitsandbytes' AdamW8bit",
    reference: "bitsandbytes.optim.AdamW8bit (bitsandbytes 0.50.2, its CUDA kernels transcribed)",
    params: &[
        param(Adam8bitConfig::PARAMS, "lr"),
        param(Adam8bitConfig::PARAMS, "betas"),
        param(Adam8bitConfig::PARAMS, "eps"),
        WEIGHT_DECAY_AFTER_UPDATE.with_default("0.01"),
        param(Adam8bitConfig::PARAMS, "amsgrad"),
        param(Adam8bitConfig::PARAMS, "optim_bits"),
        param(Adam8bitConfig::PARAMS, "min_8bit_size"),
        param(Adam8bitConfig::PARAMS, "is_paged"),
        param(Adam8bitConfig::PARAMS, "fused"),
    ],
    build: |args| Ok(Box::new(Adam8bitConfig::adamw().with_args(args).build()?)),
};

impl Adam8bitConfig {
    /// AdamW8bit: weight decay [`ADAMW8BIT_WEIGHT_DECAY`], everything else as Adam8bit.
    pub fn adamw() -> Self {
        Self::new().with_weight_decay(ADAMW8BIT_WEIGHT_DECAY)
    }

    /// What bitsandbytes refuses (`amsgrad=true`) and what adamlab does not implement
    /// (`is_paged=true`), which `build` refuses.
    fn supported(&self) -> Result<(), ConfigError> {
        if self.amsgrad {
            return Err(ConfigError::Incompatible(
                "amsgrad=true is not supported by 8-bit Adam (bitsandbytes' Adam8bit refuses it too)"
                    .into(),
            ));
        }
        not_paged(self.is_paged)
    }
}

/// `is_paged=true` refused: bitsandbytes' paged states are CUDA unified memory.
pub(crate) fn not_paged(is_paged: bool) -> Result<(), ConfigError> {
    if is_paged {
        return Err(ConfigError::Incompatible(
            "is_paged=true is not implemented: bitsandbytes pages states through CUDA unified \
             memory, which adamlab's backends do not have"
                .into(),
        ));
    }
    Ok(())
}

/// Adam with 8-bit blockwise states (Dettmers, Lewis, Shleifer & Zettlemoyer, "8-bit Optimizers via
/// Block-wise Quantization", 2022, <https://arxiv.org/abs/2110.02861>), as bitsandbytes' CUDA
/// kernels compute it.
///
/// For a parameter of at least `min_8bit_size` elements, at step t, block by block (256 elements;
/// the last block padded, as the kernel pads it, with gradient 0 and codes 128 and 0):
///
/// ```text
/// m ← map₁[c₁]·absmax₁,  v ← map₂[c₂]·absmax₂       dequantize
/// v ← β₂·v + ((1 − β₂)·g)·g,  m ← β₁·m + (1 − β₁)·g  (m = v = 0 where g is not finite)
/// absmax₁ ← max |m|,  absmax₂ ← max |v|              over the block, padding included
/// θ ← θ + s·(m / (√v + ε·√(1 − β₂ᵗ)))                s = −lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)
/// θ ← θ·(1 − lr·λ)                                    if λ > 0 (θ unchanged where g is not finite)
/// c₁ ← nearest code of m/absmax₁, moved one code towards m's sign if its value has the other sign
/// c₂ ← nearest code of v/absmax₂
/// ```
///
/// map₁ and map₂ are bitsandbytes' signed and unsigned dynamic maps ([`quantize`]); "nearest" is
/// the kernel's binary search. A smaller parameter keeps f32 moments and takes the 32-bit kernel's
/// update, `v ← β₂·v + (1 − β₂)·(g·g)` and the same θ update, with no special case for non-finite
/// gradients.
///
/// Every scalar is computed as the kernels compute it, in f32 from the f32 hyper-parameters
/// (bitsandbytes passes C floats, so `1 − β` is the f32 difference), except `β₁ᵗ` and `β₂ᵗ`,
/// which the 8-bit kernel computes with CUDA's approximate `__powf`: here they are computed in f64
/// from the f32 β and rounded once; and CUDA's approximate `__fdividef` is IEEE division. The
/// differences from torch.optim.AdamW are bitsandbytes': ε is scaled by `√(1 − β₂ᵗ)` and the weight
/// decay follows the update.
#[derive(Clone, Debug)]
pub struct Adam8bit {
    config: Adam8bitConfig,
}

crate::builds!(Adam8bitConfig => Adam8bit, check = Adam8bitConfig::supported);

/// The state of one parameter: its step count and its two moments, m (`state1`) and v
/// (`state2`), f32 or 8-bit ([`State8bit`]).
pub type Adam8bitState<const D: usize> = State8bit<2, D>;

/// The scalars of one step, each as the kernels compute it (see [`Adam8bit`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Coefficients {
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    /// `−lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)`.
    step_size: f32,
    /// `ε·√(1 − β₂ᵗ)`.
    eps_correction2: f32,
    /// `1 − lr·λ`, when λ > 0.
    decay: Option<f32>,
}

impl Coefficients {
    fn new(config: &Adam8bitConfig, lr: f64, t: usize) -> Self {
        let [lr, beta1, beta2, eps, weight_decay] = [
            lr,
            config.beta1,
            config.beta2,
            config.eps,
            config.weight_decay,
        ]
        .map(|x| x as f32);
        // `__powf(β, t)`: f64 from the f32 β, rounded once.
        let pow = |beta: f32| f64::from(beta).powf(t as f64) as f32;
        let correction1 = 1.0 - pow(beta1);
        let correction2 = (1.0 - pow(beta2)).sqrt();
        Self {
            beta1,
            beta2,
            one_minus_beta1: 1.0 - beta1,
            one_minus_beta2: 1.0 - beta2,
            step_size: (-lr * correction2) / correction1,
            eps_correction2: eps * correction2,
            decay: (weight_decay > 0.0).then(|| 1.0 - lr * weight_decay),
        }
    }
}

impl Adam8bit {
    /// One step for one parameter tensor, written with tensor operations: the readable reference
    /// that the fused CPU step must equal bit for bit. Every backend and dtype runs it.
    pub fn reference_step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Adam8bitState<D>>,
    ) -> (Tensor<D>, Option<Adam8bitState<D>>) {
        let state = state.unwrap_or_else(|| State8bit::initial(&theta, self.config.min_8bit_size));
        let t = state.step + 1;
        let c = Coefficients::new(&self.config, lr, t);
        let (theta, moments) = match state.moments {
            Moments::Full([state1, state2]) => {
                let g = grad;
                // kOptimizer32bit2State: m ← β₁·m + (1 − β₁)·g, v ← β₂·v + (1 − β₂)·(g·g).
                let m = state1
                    .mul_scalar(c.beta1)
                    .add(g.clone().mul_scalar(c.one_minus_beta1));
                let v = state2
                    .mul_scalar(c.beta2)
                    .add(g.clone().mul(g).mul_scalar(c.one_minus_beta2));
                let theta = theta.add(update(&c, m.clone(), v.clone()));
                let theta = match c.decay {
                    Some(factor) => theta.mul_scalar(factor),
                    None => theta,
                };
                (theta, Moments::Full([m, v]))
            }
            Moments::Blockwise { codes, absmax } => {
                let (theta, codes, absmax) = blockwise_reference_step(&c, theta, grad, codes, absmax);
                (theta, Moments::Blockwise { codes, absmax })
            }
        };
        (theta, Some(Adam8bitState { step: t, moments }))
    }
}

/// `s·(m / (√v + ε·√(1 − β₂ᵗ)))`, the Adam update both kernels add to θ.
fn update<const D: usize>(c: &Coefficients, m: Tensor<D>, v: Tensor<D>) -> Tensor<D> {
    m.div(v.sqrt().add_scalar(c.eps_correction2))
        .mul_scalar(c.step_size)
}

/// The 8-bit kernel's step on tensors, on the parameter's [`Rows`].
fn blockwise_reference_step<const D: usize>(
    c: &Coefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    [codes1, codes2]: [Codes<D>; 2],
    [absmax1, absmax2]: [Tensor<1>; 2],
) -> (Tensor<D>, [Codes<D>; 2], [Tensor<1>; 2]) {
    let rows = Rows::of(&theta);
    let (map1, map2) = (rows.map(&DYNAMIC_SIGNED), rows.map(&DYNAMIC_UNSIGNED));
    let g = rows.floats(grad);
    let not_finite = g.clone().is_finite().bool_not();

    let v = rows.dequantize(&map2, codes2, 0, absmax2);
    let v = v
        .mul_scalar(c.beta2)
        .add(g.clone().mul_scalar(c.one_minus_beta2).mul(g.clone()));
    let m = rows.dequantize(&map1, codes1, PAD_CODE1, absmax1);
    let m = m.mul_scalar(c.beta1).add(g.mul_scalar(c.one_minus_beta1));
    let m = m.mask_fill(not_finite.clone(), 0.0);
    let v = v.mask_fill(not_finite.clone(), 0.0);

    // θ: the parameter's own elements only, unchanged where g is not finite.
    let updated = theta
        .clone()
        .add(update(c, rows.own(m.clone()), rows.own(v.clone())));
    let updated = match c.decay {
        Some(factor) => updated.mul_scalar(factor),
        None => updated,
    };
    let theta = updated.mask_where(rows.own(not_finite), theta);

    let (codes1, absmax1) = rows.quantize(&map1, m, true);
    let (codes2, absmax2) = rows.quantize(&map2, v, false);
    (theta, [codes1, codes2], [absmax1, absmax2])
}

/// θ and the state `S` after a step, or the step's inputs back (θ, the gradient, the state) when
/// the kernel tried does not take them: what the 8-bit kernels' `try_step_8bit` return.
pub(crate) type Tried<S, const D: usize> =
    Result<(Tensor<D>, Option<S>), (Tensor<D>, Tensor<D>, S)>;

/// An 8-bit optimizer's fused step with `S` moments (Adam8bit's two, Lion8bit's one), written once
/// per optimizer, in its `kernel.rs`: the scalars of a step, the CPU's update of one element of
/// f32 moments and of one block of 8-bit ones, and the two CubeCL launches. [`step_8bit`] runs it:
/// the CubeCL step (wgpu), the CPU step (Flex, NdArray) or the reference, the first whose tensors
/// it takes.
pub(crate) trait Fused8bit<const S: usize> {
    /// The scalars of one step.
    type Coefficients: Sync;

    /// Whether the configuration asks for the fused step (its `fused` keyword). Written by
    /// [`keywords_and_reference!`], as are [`min_8bit_size`](Self::min_8bit_size) and
    /// [`reference`](Self::reference).
    fn fused(&self) -> bool;

    /// The configuration's `min_8bit_size`: smaller parameters keep f32 moments.
    fn min_8bit_size(&self) -> usize;

    /// The tensor-op reference step, which the fused steps must equal.
    fn reference<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<State8bit<S, D>>,
    ) -> (Tensor<D>, Option<State8bit<S, D>>);

    /// The scalars of step `step` (1 for the first).
    fn coefficients(&self, lr: LearningRate, step: usize) -> Self::Coefficients;

    /// One element of f32 moments, in place: θ and the moments after the step, from θ, the
    /// gradient and the moments before.
    fn element(c: &Self::Coefficients, theta: &mut f32, grad: f32, moments: [&mut f32; S]);

    /// One block of 8-bit moments, in place: θ, its gradient and each moment's codes (at most
    /// [`quantize::BLOCK`] elements), each moment's absmax. Marked `#[inline(always)]`, so that
    /// [`kernel::for_each_block`]'s loop compiles it for its instruction set.
    fn block(
        c: &Self::Coefficients,
        theta: &mut [f32],
        grad: &[f32],
        codes: [&mut [u8]; S],
        absmax: [&mut f32; S],
    );

    /// Launches the step of f32 moments through [`cube::launch!`]: one unit per element, the
    /// moments' buffers.
    #[cfg(cube_kernels)]
    fn launch_full(c: &Self::Coefficients, on: cube::Launch, moments: [cubecl::prelude::BufferArg; S]);

    /// Launches the step of 8-bit moments through [`cube::launch!`]: one cube per block, each
    /// moment's packed codes, each moment's absmax, then the signed and the unsigned map.
    #[cfg(cube_kernels)]
    fn launch_blockwise(
        c: &Self::Coefficients,
        on: cube::Launch,
        codes: [cubecl::prelude::BufferArg; S],
        absmax: [cubecl::prelude::BufferArg; S],
        maps: [cubecl::prelude::BufferArg; 2],
    );
}

/// [`Fused8bit::fused`], [`Fused8bit::min_8bit_size`] and [`Fused8bit::reference`] (the inherent
/// `reference_step`) of an optimizer with a `config` whose state is `$state<D>`.
macro_rules! keywords_and_reference {
    ($state:ident) => {
        fn fused(&self) -> bool {
            self.config.fused
        }

        fn min_8bit_size(&self) -> usize {
            self.config.min_8bit_size
        }

        fn reference<const D: usize>(
            &self,
            lr: ::burn::optim::LearningRate,
            theta: ::burn::tensor::Tensor<D>,
            grad: ::burn::tensor::Tensor<D>,
            state: Option<$state<D>>,
        ) -> (::burn::tensor::Tensor<D>, Option<$state<D>>) {
            self.reference_step(lr, theta, grad, state)
        }
    };
}
pub(crate) use keywords_and_reference;

/// An 8-bit optimizer's step, after the learning rate's check: the reference with `fused=false`;
/// else the CubeCL step (wgpu), the CPU step (Flex, NdArray) or the reference, the first whose
/// tensors it takes.
pub(crate) fn step_8bit<O: Fused8bit<S>, const S: usize, const D: usize>(
    optimizer: &O,
    lr: LearningRate,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: Option<State8bit<S, D>>,
) -> (Tensor<D>, Option<State8bit<S, D>>) {
    if !optimizer.fused() {
        return optimizer.reference(lr, theta, grad, state);
    }
    let state = state.unwrap_or_else(|| State8bit::initial(&theta, optimizer.min_8bit_size()));
    let coefficients = |step| optimizer.coefficients(lr, step);
    #[cfg(cube_kernels)]
    let (theta, grad, state) = match cube::try_step_8bit(
        theta,
        grad,
        state,
        coefficients,
        O::launch_full,
        O::launch_blockwise,
    ) {
        Ok(stepped) => return stepped,
        Err(inputs) => inputs,
    };
    // Closures marked `#[inline(always)]`, not the functions themselves: a function item's
    // `Fn::call` is not inlined into the AVX2 loop of `for_each_block`, which then calls a block
    // compiled for the baseline instruction set (measured: 1.5× the step's time).
    let stepped = kernel::try_step_8bit(
        theta,
        grad,
        state,
        coefficients,
        #[inline(always)]
        |c, theta, g, moments| O::element(c, theta, g, moments),
        #[inline(always)]
        |c, theta, grad, codes, absmax| O::block(c, theta, grad, codes, absmax),
    );
    match stepped {
        Ok(stepped) => stepped,
        Err((theta, grad, state)) => optimizer.reference(lr, theta, grad, Some(state)),
    }
}

crate::fused::impl_optimizer!(Adam8bit, Adam8bitState, to_device = State8bit::moved, step =
    /// One step for one parameter tensor; see [`Adam8bit`] for the update rule.
    |adam, lr, theta, grad, state| step_8bit(adam, lr, theta, grad, state)
);
