//! The fused optimizer steps: one trait an optimizer implements once, one dispatch, and the
//! drivers that run it on each kind of backend.
//!
//! A fused step reads each parameter's θ, gradient and state once and writes θ and the state
//! back in place, in one pass over memory, where the tensor-op reference step makes a dozen
//! passes into fresh allocations. An optimizer with a fused step implements [`FusedStep`] in its
//! `kernel.rs`, beside its reference: the scalars of a step (its coefficients), the update of
//! one element, and the CubeCL kernel that computes the same update. Everything else is here,
//! written once:
//!
//! - [`step`] is the optimizer's whole `Optimizer::step`: the `fused` keyword, the learning-rate
//!   check, and [`kernel_for`], which says which driver the step's tensors can take:
//!   [`Kernel::Cpu`] for f32 tensors of Flex or NdArray, [`Kernel::Cube`] for f32 tensors of
//!   the CubeCL backend (wgpu), `None` for anything else (another backend or dtype, autodiff
//!   tensors, tensors on different devices), and the optimizer then runs its reference step.
//! - [`cpu`]: f32 slices of Flex and NdArray tensors, in place when the buffer is not shared,
//!   and the parallel, vectorised loop calling [`FusedStep::element`] on them.
//! - [`cube`]: CubeCL tensors ready for an in-place elementwise kernel, and its launch.
//!
//! Only the backends compiled into this crate (its `flex`, `ndarray`, `wgpu` features) have
//! kernels; burn's `fusion` feature must stay off for the CubeCL one (with it, a wgpu tensor is
//! a fusion handle, not a `CubeTensor`, and the step falls back to the reference).

#[cfg(any(feature = "flex", feature = "ndarray"))]
pub(crate) mod cpu;
#[cfg(cube_kernels)]
pub(crate) mod cube;

#[cfg(any(feature = "flex", feature = "ndarray", cube_kernels))]
use burn::backend::DispatchDevice;
use std::any::Any;

use burn::optim::{DynOptimizer, DynState, LearningRate, Optimizer};
use burn::tensor::kind::BridgeTensor;
use burn::tensor::{DType, Device, Tensor};

use crate::hyper::check_learning_rate;

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
    #[cfg(cube_kernels)]
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

#[cfg(any(feature = "flex", feature = "ndarray", cube_kernels))]
fn kernel_of(device: &burn::tensor::Device) -> Option<Kernel> {
    // Other backends may be compiled into burn by other crates; they take the reference path.
    #[allow(unreachable_patterns)]
    match device.as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => Some(Kernel::Cpu),
        #[cfg(feature = "ndarray")]
        DispatchDevice::NdArray(_) => Some(Kernel::Cpu),
        #[cfg(cube_kernels)]
        DispatchDevice::Cube(_) => Some(Kernel::Cube),
        _ => None,
    }
}

#[cfg(not(any(feature = "flex", feature = "ndarray", cube_kernels)))]
fn kernel_of(_device: &burn::tensor::Device) -> Option<Kernel> {
    None
}

/// An optimizer whose step is one elementwise pass: for each element, θ, its gradient and its
/// values in up to `S` state buffers (the *slots*, in a fixed order) go in, θ and the buffers
/// come out. Implemented once per fused optimizer, in its `kernel.rs`; [`step`] does the rest.
pub(crate) trait FusedStep<const S: usize>: Optimizer {
    /// The scalars of one step, as the reference hands them to its tensor ops (each computed in
    /// f64 and rounded once to f32), and the switches of the configuration. Tensors whose
    /// coefficients are equal can share a launch ([`step_many_dyn`]).
    type Coefficients: Copy + Send + Sync + PartialEq;

    /// Whether the configuration asks for the fused step (its `fused` keyword). Written by
    /// [`keyword_and_reference!`], as is [`reference`](Self::reference).
    fn fused(&self) -> bool;

    /// Whether this configuration's step can run on `kernel` (else the reference runs): every
    /// kernel unless the optimizer says otherwise.
    fn runs_on(&self, _kernel: Kernel) -> bool {
        true
    }

    /// The tensor-op reference step, which the fused step must equal.
    fn reference<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> Stepped<Self, D>;

    /// The buffers `state` holds, by slot.
    fn buffers<const D: usize>(state: &Self::State<D>) -> [Option<&Tensor<D>>; S];

    /// The coefficients of the coming step and the buffers it updates in place: exactly those
    /// the reference's state would hold after it, zeros (or the reference's initial values)
    /// where they start at this step.
    fn prepare<const D: usize>(
        &self,
        lr: LearningRate,
        theta: &Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Self::Coefficients, Buffers<D, S>);

    /// The state after the step, from the buffers [`prepare`](Self::prepare) gave, updated.
    fn state<const D: usize>(buffers: Buffers<D, S>) -> Option<Self::State<D>>;

    /// One element's step: θ and the slots' values after it, from θ, g and the values before.
    /// `KEPT` says which slots the step keeps ([`keeps`]); a slot it does not keep holds 0 and
    /// what is returned for it is dropped. The arithmetic is the reference's, operation for
    /// operation and in its order, so that the CPU loop equals the reference bit for bit.
    fn element<const KEPT: u32>(
        c: &Self::Coefficients,
        theta: f32,
        grad: f32,
        state: [f32; S],
    ) -> (f32, [f32; S]);

    /// Launches the optimizer's CubeCL kernel, which computes [`element`](Self::element) on
    /// every element of the tensors θ, `grad` and the slots hold (one buffer per tensor, in the
    /// same order in each; a slot that `kept` says is not kept holds no buffer, and the kernel
    /// must not touch it).
    #[cfg(cube_kernels)]
    fn launch(
        c: &Self::Coefficients,
        geometry: cube::Geometry,
        theta: cube::Buffers,
        grad: cube::Buffers,
        state: [cube::Buffers; S],
        kept: [bool; S],
    );
}

/// The two [`FusedStep`] methods that every fused optimizer would write alike, written inside
/// its `impl FusedStep`: [`fused`](FusedStep::fused) reads the `fused` keyword of the
/// optimizer's `config` field, and [`reference`](FusedStep::reference) is its inherent
/// `reference_step`, the tensor-op step its documentation shows.
macro_rules! keyword_and_reference {
    () => {
        fn fused(&self) -> bool {
            self.config.fused
        }

        fn reference<const D: usize>(
            &self,
            lr: ::burn::optim::LearningRate,
            theta: ::burn::tensor::Tensor<D>,
            grad: ::burn::tensor::Tensor<D>,
            state: Option<Self::State<D>>,
        ) -> $crate::fused::Stepped<Self, D> {
            self.reference_step(lr, theta, grad, state)
        }
    };
}
pub(crate) use keyword_and_reference;

/// An optimizer's `impl Optimizer`, and its [`EvalWeights`](crate::registry::EvalWeights) (the
/// weights trained). `step` checks the learning rate, then is [`step`] (the fused step where the
/// configuration and the tensors allow it, else the inherent `reference_step`), or, for an
/// optimizer written only with tensor operations (`unfused`), its `reference_step`, or a step of
/// its own written in the call; `to_device` moves the state's tensor fields (named after the state
/// type; a tensor or an optional one, see [`ToDevice`]) and keeps the others, or is a function of
/// the optimizer's.
///
/// - `impl_optimizer!(Sgd, SgdState { momentum_buffer })`
/// - `impl_optimizer!(NAdam, NAdamState { exp_avg, exp_avg_sq }, unfused)`
/// - `impl_optimizer!(Adam, AdamState, to_device = Adam::state_to_device, step =
///   /// doc
///   |adam, lr, theta, grad, state| …)`
macro_rules! impl_optimizer {
    ($optimizer:ident, $state:ident { $($tensor:ident),+ $(,)? }) => {
        $crate::fused::impl_optimizer!(@impl $optimizer, $state, { $($tensor),+ },
            /// One step for one parameter tensor: the fused step where the configuration and
            /// the tensors allow it, else the reference step (see
            /// [`fused::step`](crate::fused::step)); the optimizer's documentation gives the
            /// update rule.
            |optimizer, lr, theta, grad, state| $crate::fused::step(optimizer, lr, theta, grad, state)
        );
    };
    ($optimizer:ident, $state:ident { $($tensor:ident),+ $(,)? }, unfused) => {
        $crate::fused::impl_optimizer!(@impl $optimizer, $state, { $($tensor),+ },
            /// One step for one parameter tensor: the optimizer's `reference_step`, written with
            /// tensor operations (it has no fused step); its documentation gives the update rule.
            |optimizer, lr, theta, grad, state| optimizer.reference_step(lr, theta, grad, state)
        );
    };
    (
        $optimizer:ident, $state:ident, to_device = $to_device:path, step =
        $(#[$doc:meta])* |$o:ident, $lr:ident, $theta:ident, $grad:ident, $st:ident| $step:expr
    ) => {
        $crate::fused::impl_optimizer!(@impl $optimizer, $state, $to_device,
            $(#[$doc])* |$o, $lr, $theta, $grad, $st| $step
        );
    };
    (@impl $optimizer:ident, $state:ident, $to_device:tt,
        $(#[$doc:meta])*
        |$o:ident, $lr:ident, $theta:ident, $grad:ident, $st:ident| $step:expr
    ) => {
        impl $crate::registry::EvalWeights for $optimizer {}

        impl ::burn::optim::Optimizer for $optimizer {
            type State<const D: usize> = $state<D>;

            $(#[$doc])*
            ///
            /// # Panics
            /// If `lr` is negative or not finite: burn's optimizer interface cannot return an
            /// error, so callers that take the learning rate from a user check it first with
            /// [`check_learning_rate`](crate::check_learning_rate).
            fn step<const D: usize>(
                &self,
                lr: ::burn::optim::LearningRate,
                theta: ::burn::tensor::Tensor<D>,
                grad: ::burn::tensor::Tensor<D>,
                state: Option<Self::State<D>>,
            ) -> $crate::fused::Stepped<Self, D> {
                if let Err(err) = $crate::check_learning_rate(lr) {
                    panic!("{err}");
                }
                let ($o, $lr, $theta, $grad, $st) = (self, lr, theta, grad, state);
                $step
            }

            #[allow(clippy::needless_update)]
            fn to_device<const D: usize>(
                state: Self::State<D>,
                device: &::burn::tensor::Device,
            ) -> Self::State<D> {
                $crate::fused::impl_optimizer!(@to_device $state, state, device, $to_device)
            }
        }
    };
    (@to_device $state:ident, $s:ident, $d:ident, { $($tensor:ident),+ }) => {
        $state {
            $($tensor: $crate::fused::ToDevice::to_device($s.$tensor, $d),)+
            ..$s
        }
    };
    (@to_device $state:ident, $s:ident, $d:ident, $to_device:path) => {
        $to_device($s, $d)
    };
}
pub(crate) use impl_optimizer;

/// A field of an optimizer's state that [`Optimizer::to_device`] moves: a tensor, or an
/// optional one.
pub(crate) trait ToDevice {
    /// This field on `device`.
    fn to_device(self, device: &Device) -> Self;
}

impl<const D: usize> ToDevice for Tensor<D> {
    fn to_device(self, device: &Device) -> Self {
        Tensor::to_device(self, device)
    }
}

impl<T: ToDevice> ToDevice for Option<T> {
    fn to_device(self, device: &Device) -> Self {
        self.map(|t| t.to_device(device))
    }
}

/// The state buffers of one fused step, by slot, and the step's number.
pub(crate) struct Buffers<const D: usize, const S: usize> {
    /// The step taken, t = 1, 2, … (optimizers that keep no count ignore it).
    pub step: usize,
    /// The buffers, by slot: `None` where this step keeps none.
    pub tensors: [Option<Tensor<D>>; S],
}

/// Whether the set of slots `kept` (bit k for slot k) holds `slot`.
#[inline(always)]
pub(crate) const fn keeps(kept: u32, slot: usize) -> bool {
    kept >> slot & 1 == 1
}

/// One step of `optimizer` for one parameter tensor: the fused kernel its tensors can take when
/// the configuration's `fused` keyword asks for it, else its tensor-op reference step. Every
/// fused optimizer's `Optimizer::step` is this, after [`impl_optimizer!`]'s check of the
/// learning rate.
pub(crate) fn step<O: FusedStep<S>, const S: usize, const D: usize>(
    optimizer: &O,
    lr: LearningRate,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: Option<O::State<D>>,
) -> Stepped<O, D> {
    if !optimizer.fused() {
        return optimizer.reference(lr, theta, grad, state);
    }
    match kernel_of_step::<O, S, D>(&theta, &grad, state.as_ref()).filter(|&k| optimizer.runs_on(k)) {
        #[cfg(any(feature = "flex", feature = "ndarray"))]
        Some(Kernel::Cpu) => {
            let (c, buffers) = optimizer.prepare(lr, &theta, state);
            let (theta, tensors) = cpu::step::<O, S, D>(c, theta, grad, buffers.tensors);
            let state = O::state(Buffers {
                step: buffers.step,
                tensors,
            });
            (theta, state)
        }
        #[cfg(cube_kernels)]
        Some(Kernel::Cube) => {
            let (c, buffers) = optimizer.prepare(lr, &theta, state);
            let part = cube::Part::new(theta, grad, buffers.tensors);
            let (theta, tensors) = cube::step::<O, S>(c, part).into_tensors();
            let state = O::state(Buffers {
                step: buffers.step,
                tensors,
            });
            (theta, state)
        }
        None => optimizer.reference(lr, theta, grad, state),
    }
}

/// The kernel that can step θ, its gradient and its state.
fn kernel_of_step<O: FusedStep<S>, const S: usize, const D: usize>(
    theta: &Tensor<D>,
    grad: &Tensor<D>,
    state: Option<&O::State<D>>,
) -> Option<Kernel> {
    let buffers = state.map_or([None; S], O::buffers);
    kernel_for([Some(theta), Some(grad)].into_iter().chain(buffers).flatten())
}

/// How many kernel launches the fused steps made on the calling thread so far (on CubeCL
/// backends; the CPU loop launches nothing). A step launches on the thread that calls it, so a
/// test or a benchmark reads the launches of its own steps as a difference of two calls.
pub fn launches() -> usize {
    #[cfg(cube_kernels)]
    return cube::LAUNCHES.with(std::cell::Cell::get);
    #[cfg(not(cube_kernels))]
    0
}

/// One parameter of a type-erased multi-tensor step ([`AnyOptimizer::step_many_dyn`]): its
/// rank, θ, its gradient and its state, as [`DynOptimizer::step_dyn`] takes them.
///
/// [`AnyOptimizer::step_many_dyn`]: crate::AnyOptimizer::step_many_dyn
pub struct DynItem {
    /// The parameter's rank.
    pub rank: usize,
    /// θ.
    pub theta: BridgeTensor,
    /// The gradient.
    pub grad: BridgeTensor,
    /// The state, `None` before the first step.
    pub state: Option<DynState>,
}

/// θ and the state after a type-erased step.
pub type DynStepped = (BridgeTensor, Option<DynState>);

/// One step of `optimizer` (behind `dyn`) for many parameters of any rank, each as [`step`]
/// steps it, but on the CubeCL backend those that share coefficients in one launch
/// ([`cube::step_many`]) where [`step`] launches once per tensor: `Ok` when
/// `optimizer` is one of this crate's fused optimizers, else the items back, for the caller to
/// step one by one.
///
/// The list of fused optimizers is here, once: an optimizer that implements [`FusedStep`] adds
/// its type to it.
pub(crate) fn step_many_dyn(
    optimizer: &dyn Any,
    lr: LearningRate,
    items: Vec<DynItem>,
) -> Result<Vec<DynStepped>, Vec<DynItem>> {
    macro_rules! fused {
        ($($optimizer:ty),+) => {$(
            if let Some(optimizer) = optimizer.downcast_ref::<$optimizer>() {
                return Ok(dyn_many(optimizer, lr, items));
            }
        )+};
    }
    multi_tensor_optimizers!(fused);
    Err(items)
}

/// Calls the macro `$then` with the optimizers that have a multi-tensor step ([`step_many_dyn`]):
/// the list, once. (The 8-bit optimizers' kernels step one tensor per launch.)
macro_rules! multi_tensor_optimizers {
    ($then:ident) => {
        $then!(
            crate::adabelief::AdaBelief,
            crate::adam::Adam,
            crate::sgd::Sgd,
            crate::lion::Lion,
            crate::adagrad::Adagrad,
            crate::rmsprop::RmsProp,
            crate::adamax::Adamax
        )
    };
}
use multi_tensor_optimizers;

/// Whether `optimizer` has a multi-tensor step: [`step_many_dyn`] shares launches between its
/// tensors on CubeCL devices rather than handing them back to be stepped one by one.
pub(crate) fn has_multi_tensor_step(optimizer: &dyn Any) -> bool {
    macro_rules! any_of {
        ($($optimizer:ty),+) => { false $(|| optimizer.is::<$optimizer>())+ };
    }
    multi_tensor_optimizers!(any_of)
}

/// [`step_many_dyn`] for `O`: the parameters whose tensors the CubeCL kernel
/// takes share launches whatever their rank (the kernel sees flat buffers); the others are
/// stepped one by one.
fn dyn_many<O: FusedStep<S>, const S: usize>(
    optimizer: &O,
    lr: LearningRate,
    items: Vec<DynItem>,
) -> Vec<DynStepped> {
    if let Err(err) = check_learning_rate(lr) {
        panic!("{err}");
    }
    let one_by_one = |item: DynItem| optimizer.step_dyn(item.rank, lr, item.theta, item.grad, item.state);
    #[cfg(cube_kernels)]
    if optimizer.fused() {
        /// An item's way through the step: stepped already, or a part of the shared launches.
        enum Slot {
            Done(DynStepped),
            Launched { rank: usize, step: usize },
        }
        let mut parts = Vec::new();
        let slots: Vec<Slot> = items
            .into_iter()
            .map(|DynItem { rank, theta, grad, state }| {
                // The tensors and the state move into their rank's types (no clone: a state
                // still shared would be copied by `downcast`, and its buffers then by the kernel).
                macro_rules! ranks {
                    ($($d:literal)+) => {
                        match rank {
                            $($d => {
                                let theta = Tensor::<$d>::from_bridge(theta);
                                let grad = Tensor::<$d>::from_bridge(grad);
                                let state = state.map(|s| s.downcast::<O::State<$d>>());
                                let kernel = kernel_of_step::<O, S, $d>(&theta, &grad, state.as_ref());
                                if kernel.filter(|&k| optimizer.runs_on(k)) != Some(Kernel::Cube) {
                                    // The optimizer's own step: Adam's has a loop for bfloat16 moments.
                                    let (theta, state) = optimizer.step(lr, theta, grad, state);
                                    return Slot::Done((theta.into_bridge(), state.map(|s| DynState::create(s, $d))));
                                }
                                let (c, buffers) = optimizer.prepare(lr, &theta, state);
                                parts.push((c, cube::Part::new(theta, grad, buffers.tensors)));
                                Slot::Launched { rank: $d, step: buffers.step }
                            })+
                            _ => Slot::Done(one_by_one(DynItem { rank, theta, grad, state })),
                        }
                    };
                }
                ranks!(1 2 3 4 5 6 7 8)
            })
            .collect();
        let mut parts = cube::step_many::<O, S>(parts).into_iter();
        return slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Done(stepped) => stepped,
                Slot::Launched { rank, step } => {
                    let part = parts.next().expect("one part per launched item");
                    macro_rules! ranks {
                        ($($d:literal)+) => {
                            match rank {
                                $($d => {
                                    let (theta, tensors) = part.into_tensors::<$d>();
                                    let state = O::state(Buffers { step, tensors });
                                    (theta.into_bridge(), state.map(|s| DynState::create(s, $d)))
                                })+
                                _ => unreachable!("only ranks 1 to 8 are launched"),
                            }
                        };
                    }
                    ranks!(1 2 3 4 5 6 7 8)
                }
            })
            .collect();
    }
    items.into_iter().map(one_by_one).collect()
}

/// θ and the state after a step of `O`.
pub(crate) type Stepped<O, const D: usize> = (Tensor<D>, Option<<O as Optimizer>::State<D>>);

/// The CPU driver's memory: every fused optimizer updates its buffers in place, and copies θ
/// only while a clone of it is alive. (That the fused steps compute the reference's numbers is
/// tested over the registry by `adamlab_verify::fused`, on every backend.)
#[cfg(all(test, any(feature = "flex", feature = "ndarray")))]
mod tests {
    // burn deprecates ndarray in favour of flex; adamlab tests both on purpose.
    #![allow(deprecated)]

    use super::FusedStep;
    use adamlab_backend::{BackendKind, compiled, device};
    use burn::backend::{BackendTensor, DispatchTensorKind};
    use burn::tensor::{Device, Tensor, TensorData};

    /// Rows and columns: more than two of the CPU loop's chunks, so that the parallel split runs.
    const SHAPE: [usize; 2] = [131, 257];

    /// Where the buffer of a CPU tensor lives, to tell an in-place update from a copy; `None` on
    /// other backends.
    fn buffer_address(tensor: &Tensor<2>) -> Option<usize> {
        #[allow(unreachable_patterns)]
        match tensor.clone().into_dispatch().kind {
            #[cfg(feature = "flex")]
            DispatchTensorKind::Flex(BackendTensor::Float(t)) => Some(t.bytes().as_ptr() as usize),
            #[cfg(feature = "ndarray")]
            DispatchTensorKind::NdArray(BackendTensor::Float(
                burn::backend::ndarray::NdArrayTensor::F32(storage),
            )) => Some(storage.view().as_ptr() as usize),
            _ => None,
        }
    }

    fn values(device: &Device, seed: f32) -> Tensor<2> {
        let len = SHAPE[0] * SHAPE[1];
        let values: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        Tensor::from_data(TensorData::new(values, SHAPE), device)
    }

    /// On flex and ndarray, once the state exists, a fused step of `optimizer` (which must keep
    /// a state) writes θ and every state tensor into the buffers they came in (no allocation),
    /// and copies θ only while a clone of it is alive.
    fn assert_in_place<O: FusedStep<S>, const S: usize>(name: &str, optimizer: O) {
        let mut checked = 0;
        for backend in compiled() {
            if !matches!(backend, BackendKind::Flex | BackendKind::Ndarray) {
                continue;
            }
            let device = device(backend).unwrap();
            let grad = |i: usize| values(&device, i as f32 + 1.0);
            let (theta, state) = optimizer.step(1e-2, values(&device, 0.0), grad(0), None);
            let state = state.unwrap_or_else(|| panic!("{name} keeps no state"));
            // θ first, then the state's buffers.
            let addresses = |theta: &Tensor<2>, state: &O::State<2>| {
                let mut addresses = vec![buffer_address(theta)];
                addresses.extend(O::buffers(state).into_iter().flatten().map(buffer_address));
                addresses
            };
            let before = addresses(&theta, &state);
            assert!(
                before.len() > 1 && before.iter().all(Option::is_some),
                "{backend}/{name}: not CPU tensors, or no state tensor"
            );
            let (theta, state) = optimizer.step(1e-2, theta, grad(1), Some(state));
            let state = state.unwrap();
            assert_eq!(
                addresses(&theta, &state),
                before,
                "{backend}/{name}: θ or a state tensor moved"
            );

            let kept = theta.clone();
            let (theta, state) = optimizer.step(1e-2, theta, grad(2), Some(state));
            let after = addresses(&theta, &state.unwrap());
            assert_ne!(
                after[0], before[0],
                "{backend}/{name}: θ is shared, so it must be copied"
            );
            assert_eq!(
                after[1..],
                before[1..],
                "{backend}/{name}: the state is not shared"
            );
            assert_eq!(
                buffer_address(&kept),
                before[0],
                "{backend}/{name}: the clone keeps its buffer"
            );
            checked += 1;
        }
        assert!(checked > 0, "no CPU backend compiled in");
    }

    /// One configuration per fused optimizer, each keeping all of its buffers.
    #[test]
    fn the_cpu_step_updates_unshared_buffers_in_place_and_copies_shared_ones() {
        use crate::{adabelief, adagrad, adam, adamax, lion, rmsprop, sgd};
        let adam = adam::AdamConfig::new().with_amsgrad(true).build().unwrap();
        assert_in_place("adam(amsgrad=true)", adam);
        // bfloat16 moments: Flex's bfloat16 loop, NdArray's f32 one.
        let adam_bf16 = adam::AdamConfig::new()
            .with_amsgrad(true)
            .with_state_dtype(adam::StateDtype::Bf16);
        assert_in_place("adam(amsgrad=true, state_dtype=bf16)", adam_bf16.build().unwrap());
        let sgd = sgd::SgdConfig::new().with_momentum(0.9).with_nesterov(true);
        assert_in_place("sgd(momentum=0.9, nesterov=true)", sgd.build().unwrap());
        let lion = lion::LionConfig::new()
            .with_weight_decay(0.1)
            .build()
            .unwrap();
        assert_in_place("lion(weight_decay=0.1)", lion);
        let adagrad = adagrad::AdagradConfig::new()
            .with_weight_decay(0.1)
            .build()
            .unwrap();
        assert_in_place("adagrad(weight_decay=0.1)", adagrad);
        let rmsprop = rmsprop::RmsPropConfig::new()
            .with_centered(true)
            .with_momentum(0.9);
        assert_in_place(
            "rmsprop(centered=true, momentum=0.9)",
            rmsprop.build().unwrap(),
        );
        let adamax = adamax::AdamaxConfig::new()
            .with_weight_decay(0.1)
            .build()
            .unwrap();
        assert_in_place("adamax(weight_decay=0.1)", adamax);
        let adabelief = adabelief::AdaBeliefConfig::new()
            .with_amsgrad(true)
            .build()
            .unwrap();
        assert_in_place("adabelief(amsgrad=true)", adabelief);
    }
}
