//! CubeCL tensors (wgpu and the other CubeCL runtimes) for the elementwise kernels, and the
//! launch of an optimizer's kernel on them.
//!
//! With burn's `fusion` feature off, a wgpu tensor's float primitive is a [`CubeTensor`]. A
//! kernel indexes its buffers linearly, so every tensor of a step is made contiguous, and a
//! tensor it writes is updated in its own buffer when no one else holds it, else in a copy.
//!
//! Each optimizer has one kernel, with its options (and which state slots the step keeps) as
//! `#[comptime]` flags; a slot not kept is bound to a small placeholder buffer it never touches.

use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::Tensor;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::FusedStep;

/// A buffer argument of a kernel launch.
pub(crate) type Buffer = BufferArg;

/// One fused step of `O` on CubeCL tensors: θ, the gradient and the slots' buffers (`None`
/// where the step keeps none) made contiguous and writable, updated in place by `O`'s kernel.
///
/// Only for CubeCL float tensors without autodiff: [`step`](super::step) checks with
/// [`kernel_for`](super::kernel_for).
pub(crate) fn step<O: FusedStep<S>, const S: usize, const D: usize>(
    c: O::Coefficients,
    theta: Tensor<D>,
    grad: Tensor<D>,
    buffers: [Option<Tensor<D>>; S],
) -> (Tensor<D>, [Option<Tensor<D>>; S]) {
    let device = theta.device();
    let theta = take_mut(theta);
    let grad = take(grad);
    let buffers = buffers.map(|b| b.map(take_mut));
    let geometry = Geometry::elementwise(&theta);
    let placeholder = || take_mut(Tensor::<1>::empty([geometry.vector_size], &device));
    let args = buffers.each_ref().map(|b| match b {
        Some(b) => b.clone().into_buffer_arg(),
        None => placeholder().into_buffer_arg(),
    });
    let kept = buffers.each_ref().map(Option::is_some);
    O::launch(
        &c,
        geometry,
        theta.clone().into_buffer_arg(),
        grad.into_buffer_arg(),
        args,
        kept,
    );
    (into_tensor(theta), buffers.map(|b| b.map(into_tensor)))
}

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

/// Launches `$kernel` (a `#[cube(launch)]` function) over a [`Geometry`], with the kernel's
/// own arguments after it.
macro_rules! launch {
    ($kernel:ident, $geometry:expr, $($arg:expr),+ $(,)?) => {{
        let geometry: $crate::fused::cube::Geometry = $geometry;
        $kernel::launch(
            &geometry.client,
            geometry.cube_count,
            geometry.cube_dim,
            geometry.vector_size,
            $($arg),+
        )
    }};
}
pub(crate) use launch;

/// The launch geometry of an elementwise kernel: the widest vector the runtime reads
/// efficiently that divides the element count, one unit per vector.
pub(crate) struct Geometry {
    /// The runtime's client, to launch on.
    pub client: cubecl::client::Client,
    /// Cubes to launch.
    pub cube_count: CubeCount,
    /// Units per cube.
    pub cube_dim: CubeDim,
    /// Elements per unit.
    pub vector_size: usize,
}

impl Geometry {
    /// The geometry over `tensor`'s elements.
    fn elementwise(tensor: &CubeTensor) -> Self {
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
        Self {
            client: tensor.client.clone(),
            cube_count,
            cube_dim,
            vector_size,
        }
    }
}

/// The gradient as the kernels' first lines take it, for a vector of elements: negated when
/// `maximize`, then plus `λ·θ` (L2 weight decay, rounded twice as the reference's tensor ops
/// round it) when `weight_decay`.
#[cube]
pub(crate) fn gradient<N: Size>(
    grad: Vector<f32, N>,
    theta: Vector<f32, N>,
    lambda: f32,
    #[comptime] maximize: bool,
    #[comptime] weight_decay: bool,
) -> Vector<f32, N> {
    let mut g = grad;
    if comptime![maximize] {
        g = -g;
    }
    if comptime![weight_decay] {
        g = g + theta * Vector::new(lambda);
    }
    g
}
