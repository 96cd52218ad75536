//! CubeCL tensors (wgpu and the other CubeCL runtimes) for the elementwise kernels.
//!
//! With burn's `fusion` feature off, a wgpu tensor's float primitive is a [`CubeTensor`]. A
//! kernel indexes its buffers linearly, so every tensor of a step is made contiguous, and a
//! tensor it writes is updated in its own buffer when no one else holds it, else in a copy.

use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::Tensor;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::{CubeCount, CubeDim};

/// The CubeCL primitive of `tensor`, contiguous.
///
/// # Panics
/// If `tensor` is not a CubeCL float tensor without autodiff: callers check with
/// [`kernel_for`](super::kernel_for) first.
pub(crate) fn take<const D: usize>(tensor: Tensor<D>) -> CubeTensor {
    let dispatch = tensor.into_dispatch();
    assert_eq!(
        dispatch.autodiff,
        DispatchAutodiffContext::Disabled,
        "checked by kernel_for"
    );
    #[allow(unreachable_patterns)]
    let tensor = match dispatch.kind {
        DispatchTensorKind::Cube(BackendTensor::Float(tensor)) => tensor,
        _ => panic!(
            "fused CubeCL step on a tensor that is not a CubeCL float: checked by kernel_for"
        ),
    };
    if tensor.is_contiguous() {
        tensor
    } else {
        into_contiguous(tensor)
    }
}

/// `tensor`, contiguous, in a buffer the kernel may write: its own when no one else holds it,
/// else a copy (the other holders keep the old values).
pub(crate) fn take_mut<const D: usize>(tensor: Tensor<D>) -> CubeTensor {
    let tensor = take(tensor);
    if tensor.can_mut() {
        tensor
    } else {
        tensor.copy()
    }
}

/// Back into a [`Tensor`].
pub(crate) fn into_tensor<const D: usize>(tensor: CubeTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Cube(BackendTensor::Float(tensor)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
}

/// The launch geometry of an elementwise kernel over `tensor`: the widest vector the runtime
/// reads efficiently that divides the element count, one unit per vector.
pub(crate) fn elementwise(tensor: &CubeTensor) -> (CubeCount, CubeDim, usize) {
    let len = tensor.meta.num_elements();
    let vector_size = tensor
        .client
        .io_optimized_vector_sizes(size_of::<f32>())
        .filter(|&size| len % size == 0)
        .max()
        .unwrap_or(1);
    let units = len / vector_size;
    let cube_dim = CubeDim::new(&tensor.client, units);
    let cube_count = cubecl::calculate_cube_count_elemwise(&tensor.client, units, cube_dim);
    (cube_count, cube_dim, vector_size)
}
