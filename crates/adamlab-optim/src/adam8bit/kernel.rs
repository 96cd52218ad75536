//! 8-bit Adam's fused CPU step: each block of 256 elements dequantized, updated and requantized
//! in one pass, in place in θ's buffer, the codes' and the absmax's, on Flex and NdArray.
//!
//! [`block`] is the update of one block and [`element`] that of one element of f32 moments: the
//! arithmetic of [`Adam8bit::reference_step`](super::Adam8bit::reference_step), operation for
//! operation and in its order, so that the two agree bit for bit (Rust never contracts `a·b + c`
//! into a fused multiply-add). The blocks are independent, so the parameter is split between
//! rayon's threads a whole number of blocks at a time; a block's moments live in arrays on the
//! stack, and nothing is allocated per step. A block goes through in passes the compiler can
//! vectorize (the moments, the absmax, θ and the quotients), and the codes come from
//! [`CodeTable`](quantize::CodeTable)'s look-up rather than the kernel's binary search, whose branches cost more than
//! everything else together (with it the step took about a hundred times as long as PyTorch's
//! fused f32 AdamW step).
//!
//! Tensors it does not take (another backend, another dtype, autodiff, tensors on different
//! devices, codes not stored as u8) go back to the caller for the reference step.

// burn deprecates ndarray in favour of flex; adamlab ships both on purpose.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

use burn::optim::LearningRate;
use burn::tensor::Tensor;

use super::quantize::{self, BLOCK, PAD_CODE1};
use super::{Adam8bit, Adam8bitState, Coefficients, Fused8bit, State8bit, Tried};
#[cfg(cube_kernels)]
use super::cube::{Launch, adam8bit_kernel, adam32bit_kernel, launch, scalars};
#[cfg(cube_kernels)]
use cubecl::prelude::BufferArg;

/// One f32-moment element (the 32-bit kernel): θ, m, v after the step from θ, g, m, v before.
#[inline(always)]
fn element(c: &Coefficients, theta: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
    let m = m * c.beta1 + c.one_minus_beta1 * g;
    let v = v * c.beta2 + c.one_minus_beta2 * (g * g);
    let mut theta = theta + c.step_size * (m / (v.sqrt() + c.eps_correction2));
    if let Some(factor) = c.decay {
        theta = theta * factor;
    }
    (theta, m, v)
}

/// One block of the 8-bit kernel, in place: θ, its gradient and its codes (at most [`BLOCK`]
/// elements) and the block's two absmax. A shorter last block is copied into whole-block arrays
/// padded as the kernel pads them (gradient 0, codes [`PAD_CODE1`] and 0), stepped as a whole
/// block, and copied back.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block(
    c: &Coefficients,
    theta: &mut [f32],
    grad: &[f32],
    codes1: &mut [u8],
    codes2: &mut [u8],
    absmax1: &mut f32,
    absmax2: &mut f32,
) {
    let whole = (
        <&mut [f32; BLOCK]>::try_from(&mut *theta),
        <&[f32; BLOCK]>::try_from(grad),
        <&mut [u8; BLOCK]>::try_from(&mut *codes1),
        <&mut [u8; BLOCK]>::try_from(&mut *codes2),
    );
    if let (Ok(theta), Ok(grad), Ok(codes1), Ok(codes2)) = whole {
        return whole_block(c, theta, grad, codes1, codes2, absmax1, absmax2);
    }
    let len = theta.len();
    let (mut t, mut g) = ([0f32; BLOCK], [0f32; BLOCK]);
    let (mut c1, mut c2) = ([PAD_CODE1; BLOCK], [0u8; BLOCK]);
    t[..len].copy_from_slice(theta);
    g[..len].copy_from_slice(&grad[..len]);
    c1[..len].copy_from_slice(&codes1[..len]);
    c2[..len].copy_from_slice(&codes2[..len]);
    whole_block(c, &mut t, &g, &mut c1, &mut c2, absmax1, absmax2);
    theta.copy_from_slice(&t[..len]);
    codes1[..len].copy_from_slice(&c1[..len]);
    codes2[..len].copy_from_slice(&c2[..len]);
}

/// Lanes of the absmax reductions: independent maxima the compiler keeps in vector registers.
const LANES: usize = 8;

/// The greatest |x| as the kernel's `fmaxf` reduction from −FLT_MAX finds it (a NaN never wins),
/// in [`LANES`] lanes: the greatest of a set ignoring NaN does not depend on the order it is taken
/// in. (A pass of its own: taken in the moments' pass, the compiler shuffles the lanes.)
#[inline(always)]
pub(crate) fn absmax_of(x: &[f32; BLOCK]) -> f32 {
    let mut lanes = [f32::MIN; LANES];
    for chunk in x.chunks_exact(LANES) {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(x.abs());
        }
    }
    lanes.into_iter().fold(f32::MIN, f32::max)
}

/// A whole block of the 8-bit kernel, in place, in passes the compiler vectorizes, between the
/// two look-ups that it cannot: the map's value of each code, and the code of each quotient
/// ([`CodeTable`](quantize::CodeTable)).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn whole_block(
    c: &Coefficients,
    theta: &mut [f32; BLOCK],
    grad: &[f32; BLOCK],
    codes1: &mut [u8; BLOCK],
    codes2: &mut [u8; BLOCK],
    absmax1: &mut f32,
    absmax2: &mut f32,
) {
    // Dequantize, first the look-ups.
    let (mut m, mut v) = ([0f32; BLOCK], [0f32; BLOCK]);
    for i in 0..BLOCK {
        m[i] = quantize::SIGNED[usize::from(codes1[i])];
        v[i] = quantize::UNSIGNED[usize::from(codes2[i])];
    }
    let (old_absmax1, old_absmax2) = (*absmax1, *absmax2);
    for i in 0..BLOCK {
        let g = grad[i];
        let vi = v[i] * old_absmax2;
        let vi = vi * c.beta2 + c.one_minus_beta2 * g * g;
        let mi = m[i] * old_absmax1;
        let mi = mi * c.beta1 + c.one_minus_beta1 * g;
        let keep = finite_mask(g);
        v[i] = f32::from_bits(vi.to_bits() & keep);
        m[i] = f32::from_bits(mi.to_bits() & keep);
    }
    let (new_absmax1, new_absmax2) = (absmax_of(&m), absmax_of(&v));
    match c.decay {
        Some(factor) => update_theta::<true>(c, factor, theta, grad, &m, &v),
        None => update_theta::<false>(c, 1.0, theta, grad, &m, &v),
    }
    // A NaN quotient (a block of zeros: 0/0) takes the searches' code.
    quantize::signed_table().codes(&m, new_absmax1, codes1, |i| {
        quantize::quantize_signed_keeping_sign(&quantize::SIGNED, m[i], new_absmax1)
    });
    quantize::unsigned_table().codes(&v, new_absmax2, codes2, |i| {
        quantize::quantize(&quantize::UNSIGNED, v[i] / new_absmax2, false)
    });
    *absmax1 = new_absmax1;
    *absmax2 = new_absmax2;
}

/// θ of a whole block from the new moments: unchanged where the gradient is not finite, decayed
/// by `factor` after the update if `DECAY` (a parameter, so that the loop has no branch).
#[inline(always)]
fn update_theta<const DECAY: bool>(
    c: &Coefficients,
    factor: f32,
    theta: &mut [f32; BLOCK],
    grad: &[f32; BLOCK],
    m: &[f32; BLOCK],
    v: &[f32; BLOCK],
) {
    for i in 0..BLOCK {
        let mut t = theta[i] + c.step_size * (m[i] / (v[i].sqrt() + c.eps_correction2));
        if DECAY {
            t = t * factor;
        }
        let keep = finite_mask(grad[i]);
        theta[i] = f32::from_bits((t.to_bits() & keep) | (theta[i].to_bits() & !keep));
    }
}

/// All ones where `g` is finite, else 0: a select by bit masks (`x & keep` is x or +0), which
/// the compiler vectorizes. `if g.is_finite() { x } else { 0.0 }` compiled to a branch per
/// element, and the moments' loop ran one element at a time (perf annotate: about a third of
/// the 8-bit step).
#[inline(always)]
fn finite_mask(g: f32) -> u32 {
    u32::from((g.to_bits() & 0x7FFF_FFFF) < 0x7F80_0000).wrapping_neg()
}

/// Blocks per task of the parallel loop: 64 of them, 16 Ki elements.
#[cfg(any(feature = "flex", feature = "ndarray"))]
const BLOCKS_PER_TASK: usize = 64;

/// Runs `update` over every block of [`BLOCK`] elements of an 8-bit step: θ's and the gradient's
/// elements, the block's codes in each of the `S` code buffers (one per 8-bit moment) and its
/// absmax in each of the `S` absmax buffers; the last block may be shorter. In parallel on
/// rayon's pool once there is more than one task of [`BLOCKS_PER_TASK`] blocks (halving
/// recursively with `rayon::join` allocates nothing), each task compiled for AVX2 where the CPU
/// has it (the same bits: see `vectorized`). Adam8bit's and Lion8bit's loops. Pass `update` as a
/// closure marked `#[inline(always)]` (it is taken by value for that): otherwise it is compiled
/// on its own, for SSE2, and the step takes half again as long (measured).
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub(crate) fn for_each_block<const S: usize, F>(
    theta: &mut [f32],
    grad: &[f32],
    codes: [&mut [u8]; S],
    absmax: [&mut [f32]; S],
    update: F,
) where
    F: Fn(&mut [f32], &[f32], [&mut [u8]; S], [&mut f32; S]) + Sync + Copy,
{
    let blocks = absmax[0].len();
    let (mut codes, mut absmax) = (codes, absmax);
    if blocks <= BLOCKS_PER_TASK {
        crate::fused::cpu::vectorized(
            #[inline(always)]
            || {
                for b in 0..blocks {
                    let elements = b * BLOCK..((b + 1) * BLOCK).min(theta.len());
                    update(
                        &mut theta[elements.clone()],
                        &grad[elements.clone()],
                        codes.each_mut().map(|c| &mut c[elements.clone()]),
                        absmax.each_mut().map(|a| &mut a[b]),
                    );
                }
            },
        );
        return;
    }
    let mid = blocks / 2;
    let at = mid * BLOCK;
    let (theta_l, theta_r) = theta.split_at_mut(at);
    let (grad_l, grad_r) = grad.split_at(at);
    let mut codes = codes.map(|c| {
        let (l, r) = c.split_at_mut(at);
        (Some(l), Some(r))
    });
    let mut absmax = absmax.map(|a| {
        let (l, r) = a.split_at_mut(mid);
        (Some(l), Some(r))
    });
    let codes_l = std::array::from_fn(|i| codes[i].0.take().expect("split once"));
    let codes_r = std::array::from_fn(|i| codes[i].1.take().expect("split once"));
    let absmax_l = std::array::from_fn(|i| absmax[i].0.take().expect("split once"));
    let absmax_r = std::array::from_fn(|i| absmax[i].1.take().expect("split once"));
    rayon::join(
        || for_each_block(theta_l, grad_l, codes_l, absmax_l, update),
        || for_each_block(theta_r, grad_r, codes_r, absmax_r, update),
    );
}

impl Fused8bit<2> for Adam8bit {
    type Coefficients = Coefficients;

    super::keywords_and_reference!(Adam8bitState);

    fn coefficients(&self, lr: LearningRate, step: usize) -> Coefficients {
        Coefficients::new(&self.config, lr, step)
    }

    #[inline(always)]
    fn element(c: &Coefficients, theta: &mut f32, g: f32, [m, v]: [&mut f32; 2]) {
        (*theta, *m, *v) = element(c, *theta, g, *m, *v);
    }

    #[inline(always)]
    fn block(
        c: &Coefficients,
        theta: &mut [f32],
        grad: &[f32],
        [codes1, codes2]: [&mut [u8]; 2],
        [absmax1, absmax2]: [&mut f32; 2],
    ) {
        block(c, theta, grad, codes1, codes2, absmax1, absmax2);
    }

    #[cfg(cube_kernels)]
    fn launch_full(c: &Coefficients, on: Launch, [m, v]: [BufferArg; 2]) {
        launch!(adam32bit_kernel, on, m, v, scalars(c), c.decay.is_some());
    }

    #[cfg(cube_kernels)]
    fn launch_blockwise(
        c: &Coefficients,
        on: Launch,
        [codes1, codes2]: [BufferArg; 2],
        [absmax1, absmax2]: [BufferArg; 2],
        [map1, map2]: [BufferArg; 2],
    ) {
        let (s, decay) = (scalars(c), c.decay.is_some());
        launch!(adam8bit_kernel, on, codes1, codes2, absmax1, absmax2, map1, map2, s, decay);
    }
}

/// An 8-bit optimizer's fused CPU step (Adam8bit's, Lion8bit's), when every tensor of it is an f32
/// (codes: u8) Flex or NdArray tensor without autodiff on one device; otherwise the inputs back
/// (always, without a CPU backend compiled in). Once the tensors are taken, `prepare(t)` makes
/// what the step needs at step t (its scalars), then θ, the gradient and the moments
/// are updated in place: `element` steps one element of f32 moments (θ, g, the moments), `block`
/// one block of 8-bit ones through [`for_each_block`] (pass it as a closure marked
/// `#[inline(always)]`).
pub(crate) fn try_step_8bit<const S: usize, const D: usize, P, F>(
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: State8bit<S, D>,
    prepare: impl FnOnce(usize) -> P,
    element: impl Fn(&P, &mut f32, f32, [&mut f32; S]),
    block: F,
) -> Tried<State8bit<S, D>, D>
where
    P: Sync,
    F: Fn(&P, &mut [f32], &[f32], [&mut [u8]; S], [&mut f32; S]) + Sync + Copy,
{
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    {
        let _ = (prepare, element, block);
        Err((theta, grad, state))
    }
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    {
        use super::{Codes, Moments};
        use crate::fused::cpu::CpuTensor;
        use crate::fused::{Kernel, kernel_for};
        use burn::tensor::DType;

        let device = theta.device();
        let on_cpu =
            |tensors: &[&Tensor<D>]| kernel_for(tensors.iter().copied()) == Some(Kernel::Cpu);
        let takes = match &state.moments {
            Moments::Full(full) => {
                kernel_for([&theta, &grad].into_iter().chain(full)) == Some(Kernel::Cpu)
            }
            Moments::Blockwise { codes, absmax } => {
                on_cpu(&[&theta, &grad])
                    && kernel_for(absmax) == Some(Kernel::Cpu)
                    && absmax[0].device() == device
                    && codes.iter().all(|codes| {
                        matches!(codes, Codes::Bytes(c) if c.dtype() == DType::U8 && c.device() == device)
                    })
            }
        };
        if !takes {
            return Err((theta, grad, state));
        }
        let step = state.step + 1;
        let prepared = prepare(step);
        let mut theta = CpuTensor::take(theta);
        let grad = CpuTensor::take(grad);
        let g = grad.read();
        let moments = match state.moments {
            Moments::Full(full) => {
                let mut full = full.map(CpuTensor::take);
                let t = theta.write();
                let mut m = full.each_mut().map(CpuTensor::write);
                for i in 0..t.len() {
                    element(&prepared, &mut t[i], g[i], m.each_mut().map(|m| &mut m[i]));
                }
                Moments::Full(full.map(CpuTensor::into_tensor))
            }
            Moments::Blockwise { codes, absmax } => {
                let mut codes = codes.map(codes::Codes::take);
                let mut absmax = absmax.map(CpuTensor::take);
                let prepared = &prepared;
                for_each_block(
                    theta.write(),
                    &g,
                    codes.each_mut().map(codes::Codes::write),
                    absmax.each_mut().map(CpuTensor::write),
                    #[inline(always)]
                    move |theta, grad, codes, absmax| block(prepared, theta, grad, codes, absmax),
                );
                Moments::Blockwise {
                    codes: codes.map(|c| Codes::Bytes(c.into_tensor())),
                    absmax: absmax.map(CpuTensor::into_tensor),
                }
            }
        };
        drop(g);
        drop(grad);
        Ok((theta.into_tensor(), Some(State8bit { step, moments })))
    }
}

/// The u8 codes of a Flex or NdArray int tensor, taken out of it for the fused step.
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub(crate) mod codes {
    use burn::backend::{
        BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind,
    };
    use burn::tensor::{Int, Tensor};

    #[cfg(feature = "flex")]
    use burn::backend::flex::FlexTensor;
    #[cfg(feature = "ndarray")]
    use burn::backend::ndarray::NdArrayTensor;

    /// A u8 int tensor of a CPU backend.
    pub(crate) enum Codes {
        #[cfg(feature = "flex")]
        Flex(FlexTensor),
        #[cfg(feature = "ndarray")]
        NdArray(NdArrayTensor),
    }

    impl Codes {
        /// The primitive of `codes`, which the caller checked to be a u8 Flex or NdArray tensor.
        pub(crate) fn take<const D: usize>(codes: crate::adam8bit::Codes<D>) -> Self {
            let crate::adam8bit::Codes::Bytes(tensor) = codes else {
                panic!("fused CPU 8-bit step on packed codes: checked by try_step");
            };
            let dispatch = tensor.into_dispatch();
            #[allow(unreachable_patterns)]
            match dispatch.kind {
                #[cfg(feature = "flex")]
                DispatchTensorKind::Flex(BackendTensor::Int(tensor)) => Self::Flex(tensor),
                #[cfg(feature = "ndarray")]
                DispatchTensorKind::NdArray(BackendTensor::Int(tensor @ NdArrayTensor::U8(_))) => {
                    Self::NdArray(tensor)
                }
                _ => panic!(
                    "fused 8-bit step on codes that are not u8 Flex or NdArray: checked by try_step"
                ),
            }
        }

        /// The codes in row-major order, to update in place: the tensor's own buffer when no one
        /// else holds it and it is contiguous, else a contiguous copy first.
        pub(crate) fn write(&mut self) -> &mut [u8] {
            match self {
                #[cfg(feature = "flex")]
                Self::Flex(tensor) => crate::fused::cpu::flex_elements_mut(tensor),
                #[cfg(feature = "ndarray")]
                Self::NdArray(NdArrayTensor::U8(storage)) => {
                    crate::fused::cpu::ndarray_elements_mut!(storage)
                }
                #[cfg(feature = "ndarray")]
                Self::NdArray(_) => unreachable!("Codes::take keeps only U8"),
            }
        }

        /// Back into a [`Tensor`].
        pub(crate) fn into_tensor<const D: usize>(self) -> Tensor<D, Int> {
            let kind = match self {
                #[cfg(feature = "flex")]
                Self::Flex(tensor) => DispatchTensorKind::Flex(BackendTensor::Int(tensor)),
                #[cfg(feature = "ndarray")]
                Self::NdArray(tensor) => DispatchTensorKind::NdArray(BackendTensor::Int(tensor)),
            };
            Tensor::from_dispatch(DispatchTensor {
                kind,
                autodiff: DispatchAutodiffContext::Disabled,
            })
        }
    }
}

/// The fused step's memory: once the state exists, θ, the codes and the absmax are updated in the
/// buffers they came in (no allocation), on flex and ndarray. (That it computes the reference's
/// numbers is tested over the registry by `adamlab_verify::fused`, and against bitsandbytes'
/// kernels by the replays.)
#[cfg(all(test, any(feature = "flex", feature = "ndarray")))]
mod tests {
    #![allow(deprecated)]

    use super::*;
    use crate::adam8bit::{Adam8bitConfig, Codes, Moments};
    use adamlab_backend::{BackendKind, compiled, device};
    use burn::backend::{BackendTensor, DispatchTensorKind};
    use burn::optim::Optimizer;
    use burn::tensor::{Device, TensorData};

    /// 10 000 elements: 40 blocks, the last one partial.
    const LEN: usize = 10_000;

    /// Where the buffer of a CPU tensor (float or int) lives.
    fn address<const D: usize, K: burn::tensor::kind::Basic>(tensor: &Tensor<D, K>) -> usize {
        #[allow(unreachable_patterns)]
        match tensor.clone().into_dispatch().kind {
            #[cfg(feature = "flex")]
            DispatchTensorKind::Flex(BackendTensor::Float(t) | BackendTensor::Int(t)) => {
                t.bytes().as_ptr() as usize
            }
            #[cfg(feature = "ndarray")]
            DispatchTensorKind::NdArray(BackendTensor::Float(
                burn::backend::ndarray::NdArrayTensor::F32(s),
            )) => s.view().as_ptr() as usize,
            #[cfg(feature = "ndarray")]
            DispatchTensorKind::NdArray(BackendTensor::Int(
                burn::backend::ndarray::NdArrayTensor::U8(s),
            )) => s.view().as_ptr() as usize,
            _ => panic!("not an f32 or u8 CPU tensor"),
        }
    }

    fn values(device: &Device, seed: f32) -> Tensor<1> {
        let values: Vec<f32> = (0..LEN).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        Tensor::from_data(TensorData::new(values, [LEN]), device)
    }

    fn addresses(theta: &Tensor<1>, state: &Adam8bitState<1>) -> [usize; 5] {
        let Moments::Blockwise { codes: [codes1, codes2], absmax: [absmax1, absmax2] } = &state.moments
        else {
            panic!("8-bit moments expected");
        };
        let codes = |codes: &Codes<1>| match codes {
            Codes::Bytes(codes) => address(codes),
            Codes::Packed { .. } => panic!("packed codes on a CPU backend"),
        };
        [
            address(theta),
            codes(codes1),
            codes(codes2),
            address(absmax1),
            address(absmax2),
        ]
    }

    #[test]
    fn the_fused_step_updates_theta_codes_and_absmax_in_place() {
        let optimizer = Adam8bitConfig::new().build().unwrap();
        let mut checked = 0;
        for backend in compiled() {
            if !matches!(backend, BackendKind::Flex | BackendKind::Ndarray) {
                continue;
            }
            let device = device(backend).unwrap();
            let (theta, state) =
                optimizer.step(1e-2, values(&device, 0.0), values(&device, 1.0), None);
            let state = state.unwrap();
            let before = addresses(&theta, &state);
            let (theta, state) = optimizer.step(1e-2, theta, values(&device, 2.0), Some(state));
            let state = state.unwrap();
            assert_eq!(
                addresses(&theta, &state),
                before,
                "{backend}: a buffer moved"
            );
            let (theta, state) = optimizer.step(1e-2, theta, values(&device, 3.0), Some(state));
            assert_eq!(
                addresses(&theta, &state.unwrap()),
                before,
                "{backend}: a buffer moved"
            );
            checked += 1;
        }
        assert!(checked > 0, "no CPU backend compiled in");
    }
}
