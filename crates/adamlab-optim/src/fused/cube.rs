//! CubeCL tensors (wgpu and the other CubeCL runtimes) for the elementwise kernels, and the
//! launches of an optimizer's kernel on them.
//!
//! With burn's `fusion` feature off, a wgpu tensor's float primitive is a [`CubeTensor`]. A
//! kernel indexes its buffers linearly, so every tensor of a step is made contiguous, and a
//! tensor it writes is updated in its own buffer when no one else holds it, else in a copy.
//!
//! Each optimizer has one kernel, with its options (and which state slots the step keeps) as
//! `#[comptime]` flags. The kernel takes its buffers as sequences, one entry per tensor: a
//! launch steps one tensor ([`step`]) or many ([`step_many`], as torch's `foreach`/multi-tensor
//! apply does), each unit finding its tensor by walking the tensors' lengths. The sequence of a
//! slot the step does not keep is empty, and the kernel never touches it (its flags say so).
//! A kernel writes `(&mut x[k])[i] = …`, not `x[k][i] = …`: CubeCL's macro would read `x[k]` out
//! of the sequence by value in the second form, which a buffer cannot be.

use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::{Int, Tensor};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::FusedStep;

/// The buffers of one argument of a launch, one per tensor stepped.
pub(crate) type Buffers = Vec<BufferArg>;

/// The most tensors one launch steps. The kernel's body is unrolled once per tensor and each
/// unit walks the tensors' lengths to find its own, so a launch's cost grows with its count;
/// torch's multi-tensor apply takes 36 tensors of four lists (Adam's θ, g, m, v) per launch.
pub(crate) const MAX_TENSORS_PER_LAUNCH: usize = 32;

/// Bindings a launch keeps for what is not a tensor (its scalars, the runtime's metadata).
const RESERVED_BINDINGS: usize = 4;

thread_local! {
    /// Kernel launches of the fused steps made by this thread (see [`super::launches`]).
    pub(crate) static LAUNCHES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `buffers` as the sequence argument of a kernel.
pub(crate) fn seq<E: LaunchArg<RuntimeArg = BufferArg>>(buffers: Buffers) -> SequenceArg<E> {
    buffers.into_iter().collect()
}

/// One tensor's part of a step: θ, its gradient and its slots' buffers (`None` where the step
/// keeps none), contiguous; θ and the slots writable.
pub(crate) struct Part<const S: usize> {
    /// θ.
    pub theta: CubeTensor,
    /// The gradient.
    pub grad: CubeTensor,
    /// The slots' buffers.
    pub state: [Option<CubeTensor>; S],
}

impl<const S: usize> Part<S> {
    /// θ, `grad` and `buffers` made ready for a kernel.
    ///
    /// Only for CubeCL float tensors without autodiff: [`step`](super::step) checks with
    /// [`kernel_for`](super::kernel_for).
    pub(crate) fn new<const D: usize>(
        theta: Tensor<D>,
        grad: Tensor<D>,
        buffers: [Option<Tensor<D>>; S],
    ) -> Self {
        Self {
            theta: take_mut(theta),
            grad: take(grad),
            state: buffers.map(|b| b.map(take_mut)),
        }
    }

    /// θ and the slots' buffers, back as tensors.
    pub(crate) fn into_tensors<const D: usize>(self) -> (Tensor<D>, [Option<Tensor<D>>; S]) {
        (into_tensor(self.theta), self.state.map(|b| b.map(into_tensor)))
    }

    /// Which slots the step keeps.
    fn kept(&self) -> [bool; S] {
        self.state.each_ref().map(Option::is_some)
    }

    /// The widest vector the runtime reads efficiently that divides θ's element count.
    fn vector_size(&self) -> usize {
        let len = self.theta.meta.num_elements();
        self.theta
            .client
            .io_optimized_vector_sizes(size_of::<f32>())
            .filter(|&size| len % size == 0)
            .max()
            .unwrap_or(1)
    }
}

/// One fused step of `O` for one tensor: θ, the gradient and the slots' buffers updated in
/// place by one launch of `O`'s kernel.
pub(crate) fn step<O: FusedStep<S>, const S: usize>(c: O::Coefficients, part: Part<S>) -> Part<S> {
    let mut parts = step_many::<O, S>(vec![(c, part)]);
    parts.pop().expect("one part in, one out")
}

/// One fused step of `O` for many tensors, each with its coefficients: the tensors that share
/// coefficients, kept slots and vector width are stepped by one launch of `O`'s kernel (or one
/// per [`MAX_TENSORS_PER_LAUNCH`] tensors, fewer where the device binds fewer buffers). Each
/// element is computed as [`step`] computes it. The parts come back in the order they came.
pub(crate) fn step_many<O: FusedStep<S>, const S: usize>(
    parts: Vec<(O::Coefficients, Part<S>)>,
) -> Vec<Part<S>> {
    // Groups in order of first appearance; a model's parameters make a handful.
    let mut groups: Vec<((O::Coefficients, [bool; S], usize), Vec<usize>)> = Vec::new();
    for (index, (c, part)) in parts.iter().enumerate() {
        let key = (*c, part.kept(), part.vector_size());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(index),
            None => groups.push((key, vec![index])),
        }
    }
    for ((c, kept, vector_size), members) in &groups {
        let client = &parts[members[0]].1.theta.client;
        let per_tensor = 2 + kept.iter().filter(|&&k| k).count();
        let bindings = client.properties().hardware.max_bindings as usize;
        let most = (bindings.saturating_sub(RESERVED_BINDINGS) / per_tensor)
            .clamp(1, MAX_TENSORS_PER_LAUNCH);
        for chunk in members.chunks(most) {
            let tensors = chunk.iter().map(|&i| &parts[i].1);
            let units: usize = tensors.clone().map(|p| p.theta.meta.num_elements() / vector_size).sum();
            if units == 0 {
                continue;
            }
            let cube_dim = CubeDim::new(client, units);
            let geometry = Geometry {
                client: client.clone(),
                cube_count: cubecl::calculate_cube_count_elemwise(client, units, cube_dim),
                cube_dim,
                vector_size: *vector_size,
            };
            let buffer = |t: &CubeTensor| t.clone().into_buffer_arg();
            let state = std::array::from_fn(|slot| {
                tensors.clone().filter_map(|p| p.state[slot].as_ref().map(buffer)).collect()
            });
            LAUNCHES.with(|n| n.set(n.get() + 1));
            O::launch(
                c,
                geometry,
                tensors.clone().map(|p| buffer(&p.theta)).collect(),
                tensors.map(|p| buffer(&p.grad)).collect(),
                state,
                *kept,
            );
        }
    }
    parts.into_iter().map(|(_, part)| part).collect()
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

/// The CubeCL primitive of the int tensor `tensor`, contiguous, in a buffer the kernel may write
/// (its own when no one else holds it, else a copy); the tensor back if it is not a CubeCL int
/// tensor without autodiff.
pub(crate) fn take_int_mut<const D: usize>(tensor: Tensor<D, Int>) -> Result<CubeTensor, Tensor<D, Int>> {
    let dispatch = tensor.into_dispatch();
    #[allow(unreachable_patterns)]
    let tensor = match dispatch {
        DispatchTensor {
            kind: DispatchTensorKind::Cube(BackendTensor::Int(tensor)),
            autodiff: DispatchAutodiffContext::Disabled,
        } => tensor,
        dispatch => return Err(Tensor::from_dispatch(dispatch)),
    };
    let tensor = if tensor.is_contiguous() {
        tensor
    } else {
        into_contiguous(tensor)
    };
    Ok(if tensor.can_mut() { tensor } else { tensor.copy() })
}

/// Back into an int [`Tensor`].
pub(crate) fn into_int_tensor<const D: usize>(tensor: CubeTensor) -> Tensor<D, Int> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Cube(BackendTensor::Int(tensor)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
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

/// An optimizer's CubeCL kernel: the function `$name<N: Size>` that the caller's
/// `#[cube(launch)]` (written first, then the doc comment) compiles. Its buffers are sequences
/// of vectors of `N` f32 elements, θ's and the gradient's, then the slots' (written in place),
/// then come the kernel's own arguments (its scalars and `#[comptime]` options). A launch lays
/// its tensors end to end and each unit steps the element at its position: the kernel runs
/// `$body` for element `$i` of tensor `$k` (a comptime index, since CubeCL indexes a sequence
/// only with one), and nothing where the position is past the last element.
///
/// A macro rather than a `#[cube]` helper, which could not hand the body tensor `k` out of a
/// sequence: it expands before `#[cube]` reads the function. The attribute is the caller's
/// because `#[cube]` binds its `scope` variable with the attribute's hygiene, and the body
/// (the caller's tokens) must see it.
macro_rules! kernel {
    (
        $hash:tt $cube:tt
        $(#[doc = $doc:expr])*
        fn $name:ident($theta:ident, $grad:ident, [$($slot:ident),+], $($arg:tt)*)
        for ($k:ident, $i:ident) { $($body:tt)* }
    ) => {
        $(#[doc = $doc])*
        $hash $cube
        #[allow(clippy::too_many_arguments)]
        fn $name<N: Size>(
            $theta: &mut Sequence<Box<[Vector<f32, N>]>>,
            $grad: &Sequence<Box<[Vector<f32, N>]>>,
            $($slot: &mut Sequence<Box<[Vector<f32, N>]>>,)+
            $($arg)*
        ) {
            let pos = ABSOLUTE_POS;
            // 0, where the first tensor starts. Not the literal `0usize`: `#[cube]` expands a
            // mutable local's literal start with the literal's hygiene, this macro's, where the
            // caller's `scope` is not visible.
            let mut start = pos - pos;
            #[unroll]
            for $k in 0..$theta.len() {
                let end = start + (&$theta[$k]).len();
                if pos >= start && pos < end {
                    let $i = pos - start;
                    $($body)*
                }
                start = end;
            }
        }
    };
}
pub(crate) use kernel;

/// The launch geometry of an elementwise kernel: one unit per vector of elements, over every
/// tensor of the launch.
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
