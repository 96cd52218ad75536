//! f32 slices of Flex and NdArray tensors for the CPU kernels, and the parallel loop over them.
//!
//! Tensors come out of [`Tensor`] through its dispatch primitive ([`Tensor::into_dispatch`]),
//! and go back the same way. A buffer no one else holds is updated in place; a shared one (a
//! clone of θ kept alive elsewhere) or a non-contiguous one (a transposed parameter) is copied
//! once, in row-major order, and the copy updated, so the caller's clone is never touched.

// burn deprecates ndarray in favour of flex; adamlab ships both on purpose.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

use std::borrow::Cow;

use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::Tensor;

use super::{FusedStep, keeps};

#[cfg(feature = "flex")]
use burn::backend::flex::{FlexTensor, Layout};
#[cfg(feature = "ndarray")]
use burn::backend::ndarray::NdArrayTensor;
#[cfg(feature = "flex")]
use burn::tensor::Bytes;

/// Elements per task of the parallel loop: 64 KiB of each buffer, large enough to amortise
/// rayon's scheduling, small enough to share a tensor of a few hundred thousand elements between
/// cores. Tensors of one chunk or less run on the calling thread.
pub(crate) const CHUNK: usize = 16 * 1024;

/// One f32 tensor of a CPU backend, taken out of its [`Tensor`] for a fused step.
pub(crate) enum CpuTensor {
    /// A Flex tensor.
    #[cfg(feature = "flex")]
    Flex(FlexTensor),
    /// An NdArray tensor (always its `F32` variant).
    #[cfg(feature = "ndarray")]
    NdArray(NdArrayTensor),
}

impl CpuTensor {
    /// The f32 primitive of `tensor`.
    ///
    /// # Panics
    /// If `tensor` is not an f32 Flex or NdArray tensor without autodiff: callers check with
    /// [`kernel_for`](super::kernel_for) first.
    pub(crate) fn take<const D: usize>(tensor: Tensor<D>) -> Self {
        let dispatch = tensor.into_dispatch();
        assert_eq!(
            dispatch.autodiff,
            DispatchAutodiffContext::Disabled,
            "checked by kernel_for"
        );
        #[allow(unreachable_patterns)]
        match dispatch.kind {
            #[cfg(feature = "flex")]
            DispatchTensorKind::Flex(BackendTensor::Float(tensor)) => Self::Flex(tensor),
            #[cfg(feature = "ndarray")]
            DispatchTensorKind::NdArray(BackendTensor::Float(tensor @ NdArrayTensor::F32(_))) => {
                Self::NdArray(tensor)
            }
            _ => panic!(
                "fused CPU step on a tensor that is not f32 Flex or NdArray: checked by kernel_for"
            ),
        }
    }

    /// Back into a [`Tensor`].
    pub(crate) fn into_tensor<const D: usize>(self) -> Tensor<D> {
        let kind = match self {
            #[cfg(feature = "flex")]
            Self::Flex(tensor) => DispatchTensorKind::Flex(BackendTensor::Float(tensor)),
            #[cfg(feature = "ndarray")]
            Self::NdArray(tensor) => DispatchTensorKind::NdArray(BackendTensor::Float(tensor)),
        };
        Tensor::from_dispatch(DispatchTensor {
            kind,
            autodiff: DispatchAutodiffContext::Disabled,
        })
    }

    /// The elements in row-major order: borrowed when the tensor is contiguous, else copied.
    pub(crate) fn read(&self) -> Cow<'_, [f32]> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex(tensor) => match tensor.as_slice::<f32>() {
                Some(slice) => Cow::Borrowed(slice),
                None => Cow::Owned(flex_row_major(tensor)),
            },
            #[cfg(feature = "ndarray")]
            Self::NdArray(NdArrayTensor::F32(storage)) => {
                let view = storage.view();
                match view.to_slice() {
                    Some(slice) => Cow::Borrowed(slice),
                    None => Cow::Owned(view.iter().copied().collect()),
                }
            }
            #[cfg(feature = "ndarray")]
            Self::NdArray(_) => unreachable!("CpuTensor::take keeps only F32"),
        }
    }

    /// The elements in row-major order, to update in place: the tensor's own buffer when no one
    /// else holds it and it is contiguous; otherwise the tensor first becomes a contiguous copy
    /// of itself (one allocation, and the other holders keep the old values).
    pub(crate) fn write(&mut self) -> &mut [f32] {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex(tensor) => flex_elements_mut(tensor),
            #[cfg(feature = "ndarray")]
            Self::NdArray(NdArrayTensor::F32(storage)) => ndarray_elements_mut!(storage),
            #[cfg(feature = "ndarray")]
            Self::NdArray(_) => unreachable!("CpuTensor::take keeps only F32"),
        }
    }
}

/// The elements of an NdArray tensor's storage (`NdArrayTensor::F32(storage)`, `U8(storage)`, …:
/// burn-ndarray does not export the storage type) in row-major order, to update in place: its own
/// buffer, copied first only when shared (ndarray's copy-on-write), borrowed from a file or not
/// in standard layout.
#[cfg(feature = "ndarray")]
macro_rules! ndarray_elements_mut {
    ($storage:expr) => {{
        let array = $storage.ensure_owned();
        if !array.is_standard_layout() {
            *array = array.as_standard_layout().into_owned().into_shared();
        }
        array
            .as_slice_mut()
            .expect("standard layout: checked or just copied")
    }};
}
#[cfg(feature = "ndarray")]
pub(crate) use ndarray_elements_mut;

/// The elements of a Flex tensor in row-major order, to update in place: the tensor's own buffer
/// when no one else holds it and it is contiguous; otherwise the tensor first becomes a contiguous
/// copy of itself (one allocation, and the other holders keep the old values). For f32 θ and
/// moments, bfloat16 moments and 8-bit codes alike.
#[cfg(feature = "flex")]
pub(crate) fn flex_elements_mut<E>(tensor: &mut FlexTensor) -> &mut [E]
where
    E: burn::tensor::Element + bytemuck::Pod,
{
    if !(tensor.is_unique() && tensor.layout().contiguous_offsets().is_some()) {
        let contiguous = tensor.to_contiguous();
        let values = contiguous
            .as_slice::<E>()
            .expect("to_contiguous gives a contiguous tensor")
            .to_vec();
        let shape = tensor.layout().shape().clone();
        *tensor = FlexTensor::new(
            Bytes::from_elems(values),
            Layout::contiguous(shape),
            tensor.dtype(),
        );
    }
    let (start, end) = tensor
        .layout()
        .contiguous_offsets()
        .expect("contiguous: checked or just copied");
    let storage = tensor
        .try_storage_mut::<E>()
        .expect("unique: checked or just copied");
    &mut storage[start..end]
}

/// A contiguous copy of a Flex tensor's elements, row-major, for one that is not contiguous.
#[cfg(feature = "flex")]
pub(crate) fn flex_row_major<E: burn::tensor::Element + bytemuck::Pod>(tensor: &FlexTensor) -> Vec<E> {
    let contiguous = tensor.to_contiguous();
    contiguous
        .as_slice::<E>()
        .expect("to_contiguous gives a contiguous tensor of its dtype")
        .to_vec()
}

/// Runs `op` compiled for the widest SIMD level this machine has: AVX2 (pulp's `V3`) on x86-64
/// when the CPU has it, else whatever pulp's own dispatch finds.
///
/// pulp's `Arch::dispatch` alone would not do: its AVX2 arm needs pulp's `x86-v3` feature, which
/// burn's dependency tree leaves off, so the loops ran on SSE2, four lanes, at most half of what
/// this machine does (measured: Adam at 1e7 parameters spent 83 % of its time in a 4-lane loop).
/// The `V3` type itself is there without the feature. AVX2 lanes round exactly as scalars do, and
/// Rust never contracts `a·b + c` into a fused multiply-add, so the results do not change.
///
/// `op` is called through `FnMut::call_mut`, which for a closure that writes through its captures
/// is the closure's own body: mark it `#[inline(always)]` and it is inlined into the AVX2
/// function. (Called by value as `FnOnce`, such a closure goes through a compiler-made
/// `call_once` shim that is not inlined, and the loop is compiled for SSE2 again: seen in
/// `perf annotate` as `xmm` registers and no `ymm`.)
#[inline(always)]
pub(crate) fn vectorized<R>(op: impl FnMut() -> R) -> R {
    struct Loop<F>(F);
    impl<R, F: FnMut() -> R> pulp::WithSimd for Loop<F> {
        type Output = R;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(mut self, _simd: S) -> R {
            (self.0)()
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return pulp::Simd::vectorize(simd, Loop(op));
    }
    pulp::Arch::new().dispatch(Loop(op))
}

/// One fused step of `O` on CPU tensors: θ, the gradient and the slots' buffers (`None` where
/// the step keeps none) taken out of their tensors, updated in place by
/// [`FusedStep::element`] in a parallel, vectorised loop, and put back.
///
/// Only for f32 Flex and NdArray tensors without autodiff: [`step`](super::step) checks with
/// [`kernel_for`](super::kernel_for).
pub(crate) fn step<O: FusedStep<S>, const S: usize, const D: usize>(
    c: O::Coefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    buffers: [Option<Tensor<D>>; S],
) -> (Tensor<D>, [Option<Tensor<D>>; S]) {
    let mut theta = CpuTensor::take(theta);
    let grad = CpuTensor::take(grad);
    let mut buffers = buffers.map(|b| b.map(CpuTensor::take));
    let kept = buffers
        .iter()
        .enumerate()
        .fold(0, |kept, (slot, b)| kept | u32::from(b.is_some()) << slot);
    let g = grad.read();
    let slices = buffers
        .each_mut()
        .map(|b| b.as_mut().map_or(Default::default(), CpuTensor::write));
    // One loop per set of kept slots, compiled with that set as a constant, so that no element
    // branches on whether a buffer is there.
    macro_rules! run {
        ($($kept:literal)*) => {
            match kept {
                $($kept => for_each_chunk(theta.write(), slices, &g, &|theta, slices, g| {
                    chunk::<O, S, $kept>(c, theta, slices, g)
                }),)*
                _ => unreachable!("at most three slots"),
            }
        };
    }
    const { assert!(S <= 3, "the loops cover sets of at most three slots") };
    run!(0 1 2 3 4 5 6 7);
    drop(g);
    (
        theta.into_tensor(),
        buffers.map(|b| b.map(CpuTensor::into_tensor)),
    )
}

/// [`FusedStep::element`] over one chunk of θ, the gradient and the kept slots' buffers (the
/// others empty).
#[inline(always)]
fn chunk<O: FusedStep<S>, const S: usize, const KEPT: u32>(
    c: O::Coefficients,
    theta: &mut [f32],
    mut slices: [&mut [f32]; S],
    grad: &[f32],
) {
    if KEPT >> S != 0 {
        unreachable!("a set of slots beyond the optimizer's {S}");
    }
    // The coefficients are moved into the closure so that the compiler sees them as constants
    // of the loop, takes the branches on them out of it and vectorises what remains.
    vectorized(
        #[inline(always)]
        move || {
            let len = theta.len();
            let grad = &grad[..len];
            // Each kept buffer re-sliced to exactly `len`, so that indexing it below needs no
            // bounds check (which would keep the loop from being vectorised).
            for k in 0..S {
                if keeps(KEPT, k) {
                    let slice = std::mem::take(&mut slices[k]);
                    slices[k] = &mut slice[..len];
                }
            }
            for i in 0..len {
                let mut values = [0.0; S];
                for k in 0..S {
                    if keeps(KEPT, k) {
                        values[k] = slices[k][i];
                    }
                }
                let (next, values) = O::element::<KEPT>(&c, theta[i], grad[i], values);
                theta[i] = next;
                for k in 0..S {
                    if keeps(KEPT, k) {
                        slices[k][i] = values[k];
                    }
                }
            }
        },
    )
}

/// Runs `update` over matching chunks of θ and the slots' buffers (updated in place) and of the
/// gradient (read), in parallel on rayon's pool once there is more than one chunk. Every slice
/// has the gradient's length, except the buffers of slots not kept, which are empty.
///
/// The slices are halved recursively with `rayon::join`, so the loop allocates nothing.
pub(crate) fn for_each_chunk<T: Send, const S: usize, F>(
    theta: &mut [f32],
    buffers: [&mut [T]; S],
    grad: &[f32],
    update: &F,
) where
    F: Fn(&mut [f32], [&mut [T]; S], &[f32]) + Sync,
{
    for_each_chunk_at(0, theta, buffers, grad, &|_, theta, buffers, grad| update(theta, buffers, grad));
}

/// [`for_each_chunk`] over slices of any element types, telling `update` where its chunk starts
/// (`offset` plus the chunk's index in the slices): for a step whose elements draw random bits
/// by their index.
pub(crate) fn for_each_chunk_at<A: Send, B: Sync, T: Send, const S: usize, F>(
    offset: usize,
    theta: &mut [A],
    buffers: [&mut [T]; S],
    grad: &[B],
    update: &F,
) where
    F: Fn(usize, &mut [A], [&mut [T]; S], &[B]) + Sync,
{
    let len = grad.len();
    assert!(
        theta.len() == len && buffers.iter().all(|b| b.len() == len || b.is_empty()),
        "fused step on buffers of different lengths"
    );
    if len <= CHUNK {
        update(offset, theta, buffers, grad);
        return;
    }
    // Halves that are whole multiples of 64 elements keep every chunk but the last aligned
    // alike for the vectorised loop.
    let mid = (len / 2).next_multiple_of(64);
    let mut halves = buffers.map(|b| {
        let at = mid.min(b.len());
        let (left, right) = b.split_at_mut(at);
        (Some(left), Some(right))
    });
    let left: [&mut [T]; S] = std::array::from_fn(|i| halves[i].0.take().expect("split once"));
    let right: [&mut [T]; S] = std::array::from_fn(|i| halves[i].1.take().expect("split once"));
    let (theta_left, theta_right) = theta.split_at_mut(mid);
    let (grad_left, grad_right) = grad.split_at(mid);
    rayon::join(
        || for_each_chunk_at(offset, theta_left, left, grad_left, update),
        || for_each_chunk_at(offset + mid, theta_right, right, grad_right, update),
    );
}
