//! What every fused optimizer step shares: deciding whether a step can take a kernel, and the
//! backend primitives the kernels work on.
//!
//! A fused step reads each parameter's θ, gradient and state once and writes θ and the state
//! back in place, in one pass over memory, where the tensor-op reference step makes a dozen
//! passes into fresh allocations. Each optimizer keeps its kernels beside its reference
//! (`adam/cpu_kernel.rs`, `adam/wgpu_kernel.rs`); this module holds only the plumbing they share:
//!
//! - [`kernel_for`] says which kernel a step's tensors can take: [`Kernel::Cpu`] for f32 tensors
//!   of Flex or NdArray, [`Kernel::Cube`] for f32 tensors of the CubeCL backend (wgpu), `None`
//!   for anything else (another backend or dtype, autodiff tensors, tensors on different
//!   devices), and the optimizer then runs its reference step.
//! - [`cpu`]: f32 slices of Flex and NdArray tensors, in place when the buffer is not shared,
//!   and a parallel loop over chunks of them.
//! - [`cube`]: CubeCL tensors ready for an in-place elementwise kernel.
//!
//! Only the backends compiled into this crate (its `flex`, `ndarray`, `wgpu` features) have
//! kernels; burn's `fusion` feature must stay off for the CubeCL one (with it, a wgpu tensor is
//! a fusion handle, not a `CubeTensor`, and the step falls back to the reference).

#[cfg(any(feature = "flex", feature = "ndarray"))]
pub(crate) mod cpu;
#[cfg(feature = "wgpu")]
pub(crate) mod cube;

#[cfg(any(feature = "flex", feature = "ndarray", feature = "wgpu"))]
use burn::backend::DispatchDevice;
use burn::tensor::{DType, Tensor};


/// `fused`, the keyword that picks between the fused step and the reference (declared with the
/// other shared keywords).
pub use crate::keywords::FUSED;

/// The kernel a fused step can run on its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// The Rust loop over f32 slices (Flex, NdArray).
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    Cpu,
    /// The CubeCL kernel (wgpu and every other CubeCL runtime).
    #[cfg(feature = "wgpu")]
    Cube,
}

/// The kernel that can step `tensors` (θ, the gradient and the state of one parameter), or
/// `None` when the step must take the reference path: a backend without a kernel, a dtype other
/// than f32, autodiff tensors, or tensors on different devices.
pub(crate) fn kernel_for<'a, const D: usize>(
    tensors: impl IntoIterator<Item = &'a Tensor<D>>,
) -> Option<Kernel> {
    let mut tensors = tensors.into_iter();
    let first = tensors.next()?;
    let device = first.device();
    let fits = |t: &Tensor<D>| t.dtype() == DType::F32 && !t.device().is_autodiff();
    if !fits(first) || !tensors.all(|t| fits(t) && t.device() == device) {
        return None;
    }
    kernel_of(&device)
}

#[cfg(any(feature = "flex", feature = "ndarray", feature = "wgpu"))]
fn kernel_of(device: &burn::tensor::Device) -> Option<Kernel> {
    // Other backends may be compiled into burn by other crates; they take the reference path.
    #[allow(unreachable_patterns)]
    match device.as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => Some(Kernel::Cpu),
        #[cfg(feature = "ndarray")]
        DispatchDevice::NdArray(_) => Some(Kernel::Cpu),
        #[cfg(feature = "wgpu")]
        DispatchDevice::Cube(_) => Some(Kernel::Cube),
        _ => None,
    }
}

#[cfg(not(any(feature = "flex", feature = "ndarray", feature = "wgpu")))]
fn kernel_of(_device: &burn::tensor::Device) -> Option<Kernel> {
    None
}
