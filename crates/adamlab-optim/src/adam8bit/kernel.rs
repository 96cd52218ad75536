//! 8-bit Adam's fused CPU step: each block of 256 elements dequantized, updated and requantized
//! in one pass, in place in θ's buffer, the codes' and the absmax's, on Flex and NdArray.
//!
//! [`block`] is the update of one block and [`element`] that of one element of f32 moments: the
//! arithmetic of [`Adam8bit::reference_step`](super::Adam8bit::reference_step), operation for
//! operation and in its order, so that the two agree bit for bit (Rust never contracts `a·b + c`
//! into a fused multiply-add). The blocks are independent, so the parameter is split between
//! rayon's threads a whole number of blocks at a time; a block's moments live in two arrays on
//! the stack, and nothing is allocated per step.
//!
//! Tensors it does not take (another backend, another dtype, autodiff, tensors on different
//! devices, codes not stored as u8) go back to the caller for the reference step.

// burn deprecates ndarray in favour of flex; adamlab ships both on purpose.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

use burn::optim::LearningRate;
use burn::tensor::{DType, Int, Tensor};

use super::quantize::{self, BLOCK, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, PAD_CODE1};
use super::{Adam8bit, Adam8bitState, Blockwise, Coefficients, Moments};

/// θ and the state after a step, or the step's inputs back when no kernel takes them.
type Tried<const D: usize> =
    Result<(Tensor<D>, Option<Adam8bitState<D>>), (Tensor<D>, Tensor<D>, Adam8bitState<D>)>;

/// The two maps as f32 values.
struct Maps {
    signed: [f32; 256],
    unsigned: [f32; 256],
}

impl Maps {
    fn new() -> Self {
        Self {
            signed: quantize::values(&DYNAMIC_SIGNED),
            unsigned: quantize::values(&DYNAMIC_UNSIGNED),
        }
    }
}

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
/// elements; a shorter last block is padded as the kernel pads it) and the block's two absmax.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block(
    c: &Coefficients,
    maps: &Maps,
    theta: &mut [f32],
    grad: &[f32],
    codes1: &mut [u8],
    codes2: &mut [u8],
    absmax1: &mut f32,
    absmax2: &mut f32,
) {
    let len = theta.len();
    let (grad, codes1, codes2) = (&grad[..len], &mut codes1[..len], &mut codes2[..len]);
    let (mut m, mut v) = ([0f32; BLOCK], [0f32; BLOCK]);
    // fmaxf from −FLT_MAX: `f32::max` also returns the other operand of a NaN.
    let (mut new_absmax1, mut new_absmax2) = (f32::MIN, f32::MIN);
    for i in 0..BLOCK {
        let (g, code1, code2) = if i < len {
            (grad[i], codes1[i], codes2[i])
        } else {
            (0.0, PAD_CODE1, 0)
        };
        if g.is_finite() {
            let vi = maps.unsigned[code2 as usize] * *absmax2;
            v[i] = vi * c.beta2 + c.one_minus_beta2 * g * g;
            let mi = maps.signed[code1 as usize] * *absmax1;
            m[i] = mi * c.beta1 + c.one_minus_beta1 * g;
        }
        new_absmax1 = new_absmax1.max(m[i].abs());
        new_absmax2 = new_absmax2.max(v[i].abs());
    }
    for i in 0..len {
        if grad[i].is_finite() {
            let mut t = theta[i] + c.step_size * (m[i] / (v[i].sqrt() + c.eps_correction2));
            if let Some(factor) = c.decay {
                t = t * factor;
            }
            theta[i] = t;
        }
        codes1[i] = quantize::quantize_signed_keeping_sign(&maps.signed, m[i], new_absmax1);
        codes2[i] = quantize::quantize(&maps.unsigned, v[i] / new_absmax2, false);
    }
    *absmax1 = new_absmax1;
    *absmax2 = new_absmax2;
}

/// Blocks per task of the parallel loop: 64 of them, 16 Ki elements.
const BLOCKS_PER_TASK: usize = 64;

/// Runs [`block`] over every block, in parallel on rayon's pool once there is more than one task;
/// halving recursively with `rayon::join` allocates nothing.
#[allow(clippy::too_many_arguments)]
fn for_each_block(
    c: &Coefficients,
    maps: &Maps,
    theta: &mut [f32],
    grad: &[f32],
    codes1: &mut [u8],
    codes2: &mut [u8],
    absmax1: &mut [f32],
    absmax2: &mut [f32],
) {
    let blocks = absmax1.len();
    if blocks <= BLOCKS_PER_TASK {
        let chunks = theta
            .chunks_mut(BLOCK)
            .zip(grad.chunks(BLOCK))
            .zip(codes1.chunks_mut(BLOCK).zip(codes2.chunks_mut(BLOCK)))
            .zip(absmax1.iter_mut().zip(absmax2.iter_mut()));
        for (((theta, grad), (codes1, codes2)), (absmax1, absmax2)) in chunks {
            block(c, maps, theta, grad, codes1, codes2, absmax1, absmax2);
        }
        return;
    }
    let mid = blocks / 2;
    let at = mid * BLOCK;
    let (theta_l, theta_r) = theta.split_at_mut(at);
    let (grad_l, grad_r) = grad.split_at(at);
    let (codes1_l, codes1_r) = codes1.split_at_mut(at);
    let (codes2_l, codes2_r) = codes2.split_at_mut(at);
    let (absmax1_l, absmax1_r) = absmax1.split_at_mut(mid);
    let (absmax2_l, absmax2_r) = absmax2.split_at_mut(mid);
    rayon::join(
        || {
            for_each_block(
                c, maps, theta_l, grad_l, codes1_l, codes2_l, absmax1_l, absmax2_l,
            )
        },
        || {
            for_each_block(
                c, maps, theta_r, grad_r, codes1_r, codes2_r, absmax1_r, absmax2_r,
            )
        },
    );
}

/// The fused step, when every tensor of it is an f32 (codes: u8) Flex or NdArray tensor without
/// autodiff on one device; otherwise the inputs back.
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub(super) fn try_step<const D: usize>(
    optimizer: &Adam8bit,
    lr: LearningRate,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: Adam8bitState<D>,
) -> Tried<D> {
    use crate::fused::cpu::CpuTensor;
    use crate::fused::{Kernel, kernel_for};

    let device = theta.device();
    let on_cpu = |tensors: &[&Tensor<D>]| kernel_for(tensors.iter().copied()) == Some(Kernel::Cpu);
    let takes = match &state.moments {
        Moments::Full { state1, state2 } => on_cpu(&[&theta, &grad, state1, state2]),
        Moments::Blockwise(b) => {
            let codes_fit =
                |codes: &Tensor<D, Int>| codes.dtype() == DType::U8 && codes.device() == device;
            let absmax = [&b.absmax1, &b.absmax2];
            on_cpu(&[&theta, &grad])
                && kernel_for(absmax) == Some(Kernel::Cpu)
                && b.absmax1.device() == device
                && codes_fit(&b.state1)
                && codes_fit(&b.state2)
        }
    };
    if !takes {
        return Err((theta, grad, state));
    }
    let t = state.step + 1;
    let c = Coefficients::new(&optimizer.config, lr, t);
    let mut theta = CpuTensor::take(theta);
    let grad = CpuTensor::take(grad);
    let g = grad.read();
    let moments = match state.moments {
        Moments::Full { state1, state2 } => {
            let (mut state1, mut state2) = (CpuTensor::take(state1), CpuTensor::take(state2));
            let (t, m, v) = (theta.write(), state1.write(), state2.write());
            for i in 0..t.len() {
                (t[i], m[i], v[i]) = element(&c, t[i], g[i], m[i], v[i]);
            }
            drop(g);
            Moments::Full {
                state1: state1.into_tensor(),
                state2: state2.into_tensor(),
            }
        }
        Moments::Blockwise(b) => {
            let (mut codes1, mut codes2) =
                (codes::Codes::take(b.state1), codes::Codes::take(b.state2));
            let (mut absmax1, mut absmax2) =
                (CpuTensor::take(b.absmax1), CpuTensor::take(b.absmax2));
            let maps = Maps::new();
            for_each_block(
                &c,
                &maps,
                theta.write(),
                &g,
                codes1.write(),
                codes2.write(),
                absmax1.write(),
                absmax2.write(),
            );
            drop(g);
            Moments::Blockwise(Blockwise {
                state1: codes1.into_tensor(),
                state2: codes2.into_tensor(),
                absmax1: absmax1.into_tensor(),
                absmax2: absmax2.into_tensor(),
            })
        }
    };
    drop(grad);
    Ok((
        theta.into_tensor(),
        Some(Adam8bitState { step: t, moments }),
    ))
}

/// Without a CPU backend compiled in, every step takes the reference.
#[cfg(not(any(feature = "flex", feature = "ndarray")))]
pub(super) fn try_step<const D: usize>(
    _optimizer: &Adam8bit,
    _lr: LearningRate,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: Adam8bitState<D>,
) -> Tried<D> {
    Err((theta, grad, state))
}

/// The u8 codes of a Flex or NdArray int tensor, taken out of it for the fused step.
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub(crate) mod codes {
    use burn::backend::{
        BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind,
    };
    use burn::tensor::{Int, Tensor};

    #[cfg(feature = "flex")]
    use burn::backend::flex::{FlexTensor, Layout};
    #[cfg(feature = "ndarray")]
    use burn::backend::ndarray::NdArrayTensor;
    #[cfg(feature = "flex")]
    use burn::tensor::{Bytes, DType};

    /// A u8 int tensor of a CPU backend.
    pub(crate) enum Codes {
        #[cfg(feature = "flex")]
        Flex(FlexTensor),
        #[cfg(feature = "ndarray")]
        NdArray(NdArrayTensor),
    }

    impl Codes {
        /// The primitive of `tensor`, which the caller checked to be a u8 Flex or NdArray tensor.
        pub(crate) fn take<const D: usize>(tensor: Tensor<D, Int>) -> Self {
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
                Self::Flex(tensor) => {
                    let in_place =
                        tensor.is_unique() && tensor.layout().contiguous_offsets().is_some();
                    if !in_place {
                        let contiguous = tensor.to_contiguous();
                        let values = contiguous.as_slice::<u8>().expect("u8 codes").to_vec();
                        let shape = tensor.layout().shape().clone();
                        *tensor = FlexTensor::new(
                            Bytes::from_elems(values),
                            Layout::contiguous(shape),
                            DType::U8,
                        );
                    }
                    let (start, end) = tensor
                        .layout()
                        .contiguous_offsets()
                        .expect("contiguous: checked or just copied");
                    let storage = tensor
                        .try_storage_mut::<u8>()
                        .expect("unique: checked or just copied");
                    &mut storage[start..end]
                }
                #[cfg(feature = "ndarray")]
                Self::NdArray(NdArrayTensor::U8(storage)) => {
                    let array = storage.ensure_owned();
                    if !array.is_standard_layout() {
                        *array = array.as_standard_layout().into_owned().into_shared();
                    }
                    array
                        .as_slice_mut()
                        .expect("standard layout: checked or just copied")
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
    use crate::adam8bit::Adam8bitConfig;
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
        let Moments::Blockwise(b) = &state.moments else {
            panic!("8-bit moments expected");
        };
        [
            address(theta),
            address(&b.state1),
            address(&b.state2),
            address(&b.absmax1),
            address(&b.absmax2),
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
