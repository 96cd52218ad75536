//! What the fused-step tests share (every `tests/fused_*.rs`): the data sets and
//! edge cases, the parameter layouts, the comparison of a fused step with its tensor-op
//! reference, and the in-place and fallback checks. Each test file says, through [`Fusable`],
//! how to build its optimizer fused and not, and what its state holds.
//!
//! Tolerances:
//! - flex and ndarray: **bit for bit** (NaN matching NaN). The CPU kernels evaluate the
//!   reference's operations in the same order on the same f32 values, and Rust never fuses a
//!   multiply and an add, so there is no rounding difference to allow for.
//! - wgpu: atol 1e-6 + rtol 1e-5, the replay fixtures' tolerance against torch. A fused kernel
//!   is one shader where the reference is several: a GPU's shader compiler may contract `a·b + c`
//!   into one fused multiply-add, and Vulkan lets division and square root be a few ulps off,
//!   so on a GPU the two may differ by f32 rounding. On llvmpipe (this machine's software
//!   Vulkan) they measured bit for bit equal in every case here.

// burn deprecates ndarray in favour of flex; adamlab tests both on purpose.
#![allow(deprecated)]

use adamlab_backend::{BackendKind, compiled, device};
use burn::optim::Optimizer;
use burn::tensor::{Device, Tensor, TensorData};

/// Rows and columns of the parameter: not a multiple of any vector width, and more than two of
/// the CPU kernel's 16 Ki-element chunks, so that the parallel split and the tails both run.
pub const SHAPE: [usize; 2] = [131, 257];
/// Steps per comparison: the first (the state starts) and three with a state.
pub const STEPS: usize = 4;

/// The state of an optimizer under test, for 2-d parameters.
pub type State<F> = <<F as Fusable>::Optimizer as Optimizer>::State<2>;

/// An optimizer with a fused step and a tensor-op reference step, as the tests see it.
pub trait Fusable: Clone {
    /// The optimizer.
    type Optimizer: Optimizer;
    /// The optimizer, with its `fused` switch set to `fused`.
    fn build(&self, fused: bool) -> Self::Optimizer;
    /// The tensor-op reference step, called directly (not through the switch).
    fn reference_step(
        optimizer: &Self::Optimizer,
        lr: f64,
        theta: Tensor<2>,
        grad: Tensor<2>,
        state: Option<State<Self>>,
    ) -> (Tensor<2>, Option<State<Self>>);
    /// The tensors of a state, named as torch's state dict names them.
    fn state_tensors(state: &State<Self>) -> Vec<(&'static str, Tensor<2>)>;
    /// The step count a state keeps, for optimizers that keep one.
    fn step_count(_state: &State<Self>) -> Option<usize> {
        None
    }
}

/// A deterministic stream of values in [-1, 1) (xorshift), so that no test depends on a seed
/// the backends interpret differently.
pub struct Values(u64);

impl Values {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn vec(&mut self, len: usize, f: impl Fn(usize, f32) -> f32) -> Vec<f32> {
        (0..len).map(|i| f(i, self.next())).collect()
    }
}

/// One data set: θ₀ and the gradient of each step, row-major over [`SHAPE`].
pub struct Case {
    pub name: &'static str,
    pub theta: Vec<f32>,
    pub grads: Vec<Vec<f32>>,
}

/// The data sets: random values, then the edge cases.
pub fn cases() -> Vec<Case> {
    let len = SHAPE[0] * SHAPE[1];
    let mut values = Values(0x9e37_79b9_7f4a_7c15);
    let random_grads = |scale: f32, values: &mut Values| {
        (0..STEPS)
            .map(|_| values.vec(len, |_, x| x * scale))
            .collect::<Vec<_>>()
    };
    let random_theta = values.vec(len, |_, x| x * 2.0);
    vec![
        Case {
            name: "random",
            theta: random_theta.clone(),
            grads: random_grads(1.0, &mut values),
        },
        Case {
            name: "zeros",
            theta: values.vec(len, |i, x| if i % 3 == 0 { 0.0 } else { x }),
            grads: (0..STEPS)
                .map(|step| {
                    values.vec(len, |i, x| if (i + step) % 2 == 0 { 0.0 } else { -0.0 * x })
                })
                .collect(),
        },
        Case {
            name: "tiny",
            theta: random_theta.clone(),
            // Down to f32's subnormals: g² underflows to zero, and ε dominates √v.
            grads: (0..STEPS)
                .map(|step| {
                    values.vec(len, |i, x| x * [1e-20, 1e-30, 1e-38, 1e-42][(i + step) % 4])
                })
                .collect(),
        },
        Case {
            name: "huge",
            theta: values.vec(len, |i, x| x * [1.0, 1e20, 3e38][i % 3]),
            // g² overflows to ∞ from ~1.8e19 on, and sums of huge values overflow: ∞ and NaN.
            grads: (0..STEPS)
                .map(|step| values.vec(len, |i, x| x * [1e10, 1e19, 1e30, 3.4e38][(i + step) % 4]))
                .collect(),
        },
        Case {
            name: "sign-flips",
            theta: random_theta.clone(),
            grads: {
                let g = values.vec(len, |_, x| x);
                (0..STEPS)
                    .map(|step| {
                        g.iter()
                            .map(|x| if step % 2 == 0 { *x } else { -*x })
                            .collect()
                    })
                    .collect()
            },
        },
        Case {
            name: "large-then-small",
            theta: random_theta,
            // Large gradients, then small ones: Adam's v falls below its running maximum
            // (AMSGrad), momentum buffers outweigh the gradient.
            grads: (0..STEPS)
                .map(|step| values.vec(len, |_, x| x * if step < 2 { 100.0 } else { 1e-3 }))
                .collect(),
        },
    ]
}

/// How θ and the gradients are laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layout {
    /// Row-major, as created.
    Contiguous,
    /// The transpose of a row-major tensor: a strided view.
    Transposed,
    /// Row-major, with a clone of θ kept alive during each step.
    Shared,
}

pub fn tensor(values: &[f32], layout: Layout, device: &Device) -> Tensor<2> {
    let [rows, cols] = SHAPE;
    match layout {
        Layout::Transposed => {
            // Stored as [cols, rows], so that its transpose holds `values` in row-major order.
            let mut stored = vec![0.0; values.len()];
            for r in 0..rows {
                for c in 0..cols {
                    stored[c * rows + r] = values[r * cols + c];
                }
            }
            Tensor::<2>::from_data(TensorData::new(stored, [cols, rows]), device).transpose()
        }
        Layout::Contiguous | Layout::Shared => {
            Tensor::<2>::from_data(TensorData::new(values.to_vec(), SHAPE), device)
        }
    }
}

pub fn host(tensor: &Tensor<2>) -> Vec<f32> {
    tensor.to_data().try_to_vec::<f32>().expect("f32 tensor")
}

/// The bit patterns of a tensor's values, to compare NaN with NaN.
fn bits(tensor: &Tensor<2>) -> Vec<u32> {
    host(tensor).iter().map(|x| x.to_bits()).collect()
}

/// Whether `actual` is `expected` within the backend's tolerance (see the module's doc).
fn agree(backend: BackendKind, actual: f32, expected: f32) -> bool {
    match backend {
        BackendKind::Flex | BackendKind::Ndarray => {
            actual.to_bits() == expected.to_bits() || (actual.is_nan() && expected.is_nan())
        }
        BackendKind::Wgpu | BackendKind::Cuda => {
            actual == expected
                || (actual.is_nan() && expected.is_nan())
                || (actual - expected).abs() <= 1e-6 + 1e-5 * expected.abs()
        }
    }
}

/// The first element where `actual` and `expected` disagree, for the failure message.
pub fn first_difference(backend: BackendKind, actual: &[f32], expected: &[f32]) -> Option<String> {
    assert_eq!(actual.len(), expected.len());
    let mismatches = actual
        .iter()
        .zip(expected)
        .filter(|(a, e)| !agree(backend, **a, **e))
        .count();
    let (index, (a, e)) = actual
        .iter()
        .zip(expected)
        .enumerate()
        .find(|(_, (a, e))| !agree(backend, **a, **e))?;
    Some(format!(
        "{mismatches} differ; first at {index}: fused {a:e}, reference {e:e}"
    ))
}

/// The largest |fused − reference| over finite pairs of elements, to report how close the two
/// are where they are not required to be equal bit for bit.
fn max_deviation(actual: &[f32], expected: &[f32]) -> f32 {
    actual
        .iter()
        .zip(expected)
        .filter(|(a, e)| a.is_finite() && e.is_finite())
        .map(|(a, e)| (a - e).abs())
        .fold(0.0, f32::max)
}

fn host_state<F: Fusable>(state: &State<F>) -> Vec<(&'static str, Vec<f32>)> {
    F::state_tensors(state)
        .iter()
        .map(|(name, t)| (*name, host(t)))
        .collect()
}

/// What one comparison found: one line per disagreement, and the largest deviation seen.
#[derive(Default)]
pub struct Comparison {
    pub failures: Vec<String>,
    pub max_deviation: f32,
}

/// Steps `config` fused and by the reference over `case` on `device`, comparing θ and every
/// state tensor after every step.
pub fn compare<F: Fusable>(
    backend: BackendKind,
    device: &Device,
    (config_name, config): &(&str, F),
    case: &Case,
    layout: Layout,
    lr: f64,
) -> Comparison {
    let fused = config.build(true);
    let reference = config.build(false);
    let mut found = Comparison::default();
    let mut fail = |what: String| {
        found.failures.push(format!(
            "{backend}/{config_name}/{}/{layout:?}/lr {lr}: {what}",
            case.name
        ))
    };
    let mut deviation: f32 = 0.0;

    let (mut theta_fused, mut theta_reference) = (
        tensor(&case.theta, layout, device),
        tensor(&case.theta, layout, device),
    );
    let (mut state_fused, mut state_reference) = (None, None);
    for (step, grad) in case.grads.iter().enumerate() {
        let step = step + 1;
        let alias = (layout == Layout::Shared).then(|| (theta_fused.clone(), bits(&theta_fused)));
        (theta_fused, state_fused) = fused.step(
            lr,
            theta_fused,
            tensor(grad, layout, device),
            state_fused.take(),
        );
        (theta_reference, state_reference) = F::reference_step(
            &reference,
            lr,
            theta_reference,
            tensor(grad, layout, device),
            state_reference.take(),
        );
        if let Some((alias, before)) = alias
            && bits(&alias) != before
        {
            fail(format!(
                "step {step}: the fused step wrote into a clone of θ held elsewhere"
            ));
        }
        let (actual, expected) = (host(&theta_fused), host(&theta_reference));
        deviation = deviation.max(max_deviation(&actual, &expected));
        if let Some(diff) = first_difference(backend, &actual, &expected) {
            fail(format!("step {step}: θ: {diff}"));
        }
        match (&state_fused, &state_reference) {
            (None, None) => {}
            (Some(actual), Some(expected)) => {
                if F::step_count(actual) != F::step_count(expected) {
                    fail(format!(
                        "step {step}: step count {:?}, reference {:?}",
                        F::step_count(actual),
                        F::step_count(expected)
                    ));
                }
                let (actual, expected) = (host_state::<F>(actual), host_state::<F>(expected));
                let names =
                    |t: &[(&'static str, Vec<f32>)]| t.iter().map(|(n, _)| *n).collect::<Vec<_>>();
                if names(&actual) != names(&expected) {
                    fail(format!(
                        "step {step}: state {:?}, reference {:?}",
                        names(&actual),
                        names(&expected)
                    ));
                    continue;
                }
                for ((name, a), (_, e)) in actual.iter().zip(&expected) {
                    deviation = deviation.max(max_deviation(a, e));
                    if let Some(diff) = first_difference(backend, a, e) {
                        fail(format!("step {step}: {name}: {diff}"));
                    }
                }
            }
            (actual, expected) => fail(format!(
                "step {step}: a state {}, the reference's {}",
                if actual.is_some() { "kept" } else { "dropped" },
                if expected.is_some() {
                    "kept"
                } else {
                    "dropped"
                },
            )),
        }
    }
    found.max_deviation = deviation;
    found
}

pub fn devices() -> Vec<(BackendKind, Device)> {
    compiled()
        .into_iter()
        .filter_map(|kind| device(kind).ok().map(|device| (kind, device)))
        .collect()
}

/// Every configuration × data set × layout at lr 1e-2 on every backend, and every
/// configuration on the random data at lr 20 (large enough for a decay factor `1 − lr·λ` to go
/// negative). Fails listing every disagreement; prints the largest deviation per backend.
pub fn assert_fused_equals_reference<F: Fusable>(configs: &[(&str, F)]) {
    let mut failures = Vec::new();
    let cases = cases();
    for (backend, device) in devices() {
        let mut deviation: f32 = 0.0;
        let mut record = |found: Comparison| {
            deviation = deviation.max(found.max_deviation);
            failures.extend(found.failures);
        };
        for config in configs {
            for case in &cases {
                for layout in [Layout::Contiguous, Layout::Transposed, Layout::Shared] {
                    record(compare(backend, &device, config, case, layout, 1e-2));
                }
            }
            record(compare(
                backend,
                &device,
                config,
                &cases[0],
                Layout::Contiguous,
                20.0,
            ));
        }
        println!("{backend}: largest |fused − reference| over finite values: {deviation:e}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A state written by the reference step resumes under the fused step with the same numbers,
/// and the other way round: the two share one state format.
pub fn assert_fused_and_reference_resume_each_other<F: Fusable>(configs: &[(&str, F)]) {
    let cases = cases();
    let case = &cases[0];
    for (backend, device) in devices() {
        for (name, config) in configs {
            let fused = config.build(true);
            let reference = config.build(false);
            let grad = |i: usize| tensor(&case.grads[i], Layout::Contiguous, &device);
            let theta = tensor(&case.theta, Layout::Contiguous, &device);
            let (theta, state) = reference.step(1e-2, theta, grad(0), None);
            let (theta, state) = fused.step(1e-2, theta, grad(1), state);
            let (theta_a, state_a) = reference.step(1e-2, theta.clone(), grad(2), state.clone());
            let (theta_b, state_b) = fused.step(1e-2, theta, grad(2), state);
            let diff = first_difference(backend, &host(&theta_b), &host(&theta_a));
            assert!(diff.is_none(), "{backend}/{name}: {}", diff.unwrap());
            assert_eq!(
                state_a.as_ref().map(F::step_count),
                state_b.as_ref().map(F::step_count),
                "{backend}/{name}"
            );
        }
    }
}

/// Where the buffer of a CPU tensor lives, to tell an in-place update from a copy; `None` on
/// other backends.
fn buffer_address(tensor: &Tensor<2>) -> Option<usize> {
    use burn::backend::{BackendTensor, DispatchTensorKind};
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

/// On flex and ndarray, once the state exists, a fused step of `config` (which must keep a
/// state) writes θ and every state tensor into the buffers they came in (no allocation), and
/// copies θ only while a clone of it is alive.
pub fn assert_fused_cpu_step_is_in_place<F: Fusable>(name: &str, config: &F) {
    let cases = cases();
    let case = &cases[0];
    let mut checked = 0;
    for (backend, device) in devices() {
        if !matches!(backend, BackendKind::Flex | BackendKind::Ndarray) {
            continue;
        }
        let optimizer = config.build(true);
        let grad = |i: usize| tensor(&case.grads[i], Layout::Contiguous, &device);
        let theta = tensor(&case.theta, Layout::Contiguous, &device);
        let (theta, state) = optimizer.step(1e-2, theta, grad(0), None);
        let state = state.unwrap_or_else(|| panic!("{name} keeps no state"));
        // θ first, then the state; the clones `state_tensors` makes are dropped at once.
        let addresses = |theta: &Tensor<2>, state: &State<F>| {
            let mut addresses = vec![buffer_address(theta)];
            addresses.extend(
                F::state_tensors(state)
                    .iter()
                    .map(|(_, t)| buffer_address(t)),
            );
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

/// Builds a parameter-shaped tensor from row-major values.
type MakeTensor<'a> = dyn Fn(&[f32]) -> Tensor<2> + 'a;

/// Tensors no kernel takes (f64, autodiff) step through the reference: the same numbers as
/// `fused=false`, and no panic.
pub fn assert_fallback_is_the_reference<F: Fusable>(name: &str, config: &F) {
    let cases = cases();
    let case = &cases[0];
    for (backend, device) in devices() {
        let fused = config.build(true);
        let reference = config.build(false);
        let f64_tensor = |values: &[f32]| {
            let values: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
            Tensor::<2>::from_data(TensorData::new(values, SHAPE), &device)
        };
        let autodiff = device.clone().autodiff();
        let autodiff_tensor = |values: &[f32]| tensor(values, Layout::Contiguous, &autodiff);
        let makers: [(&str, &MakeTensor); 2] =
            [("f64", &f64_tensor), ("autodiff", &autodiff_tensor)];
        for (what, make) in makers {
            // A backend without f64 (wgpu) stores it as f32, which the kernel does take.
            if make(&case.theta).dtype() != burn::tensor::DType::F64 && what == "f64" {
                continue;
            }
            let (mut a, mut b) = (make(&case.theta), make(&case.theta));
            let (mut state_a, mut state_b) = (None, None);
            for grad in &case.grads {
                (a, state_a) = fused.step(1e-2, a, make(grad), state_a.take());
                (b, state_b) = reference.step(1e-2, b, make(grad), state_b.take());
            }
            assert_eq!(a.dtype(), b.dtype(), "{backend}/{name}/{what}");
            let (a, b) = (a.to_data().convert::<f32>(), b.to_data().convert::<f32>());
            assert_eq!(
                a, b,
                "{backend}/{name}/{what}: the fallback is the reference step"
            );
        }
    }
}
