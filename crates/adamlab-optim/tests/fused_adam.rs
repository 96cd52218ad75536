//! The fused Adam step against its tensor-op reference ([`Adam::reference_step`]), on every
//! backend compiled in, for every option and on edge cases: random values, zeros, tiny and huge
//! values, gradients that flip sign, AMSGrad's maximum, `maximize`, a clone of θ kept alive
//! elsewhere, and transposed (non-contiguous) parameters.
//!
//! Tolerances:
//! - flex and ndarray: **bit for bit** (NaN matching NaN). The CPU kernel evaluates the
//!   reference's operations in the same order on the same f32 values, and Rust never fuses a
//!   multiply and an add, so there is no rounding difference to allow for.
//! - wgpu: atol 1e-6 + rtol 1e-5, the replay fixtures' tolerance against torch. The fused kernel
//!   is one shader where the reference is a dozen: a GPU's shader compiler may contract `a·b + c`
//!   into one fused multiply-add, and Vulkan lets division and square root be a few ulps off,
//!   so on a GPU the two may differ by f32 rounding. On llvmpipe (this machine's software
//!   Vulkan) they measured bit for bit equal in every case here.
//!
//! [`Adam::reference_step`]: adamlab_optim::Adam::reference_step

// burn deprecates ndarray in favour of flex; adamlab tests both on purpose.
#![allow(deprecated)]

use adamlab_backend::{BackendKind, compiled, device};
use adamlab_optim::{AdamConfig, AdamState};
use burn::optim::Optimizer;
use burn::tensor::{Device, Tensor, TensorData};

/// Rows and columns of the parameter: not a multiple of any vector width, and more than two of
/// the CPU kernel's 16 Ki-element chunks, so that the parallel split and the tails both run.
const SHAPE: [usize; 2] = [131, 257];
const STEPS: usize = 4;

/// Every option of Adam and AdamW, one configuration each and all at once.
fn configs() -> Vec<(&'static str, AdamConfig)> {
    vec![
        ("default", AdamConfig::new()),
        ("l2-weight-decay", AdamConfig::new().with_weight_decay(0.1)),
        ("adamw", AdamConfig::adamw().with_weight_decay(0.1)),
        ("amsgrad", AdamConfig::new().with_amsgrad(true)),
        ("maximize", AdamConfig::new().with_maximize(true)),
        (
            "amsgrad-adamw-maximize",
            AdamConfig::adamw().with_amsgrad(true).with_maximize(true),
        ),
        (
            "amsgrad-l2",
            AdamConfig::new().with_amsgrad(true).with_weight_decay(0.5),
        ),
        (
            "betas-0-0.5-eps-1e-3",
            AdamConfig::new()
                .with_beta1(0.0)
                .with_beta2(0.5)
                .with_eps(1e-3),
        ),
    ]
}

/// A deterministic stream of values in [-1, 1) (xorshift), so that no test depends on a seed
/// the backends interpret differently.
struct Values(u64);

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
struct Case {
    name: &'static str,
    theta: Vec<f32>,
    grads: Vec<Vec<f32>>,
}

fn cases() -> Vec<Case> {
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
            // g² overflows to ∞ from ~1.8e19 on: v = ∞, and m/√v goes to zero or NaN.
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
            name: "amsgrad-maximum",
            theta: random_theta,
            // Large gradients, then small ones: v falls below its running maximum.
            grads: (0..STEPS)
                .map(|step| values.vec(len, |_, x| x * if step < 2 { 100.0 } else { 1e-3 }))
                .collect(),
        },
    ]
}

/// How θ and the gradients are laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// Row-major, as created.
    Contiguous,
    /// The transpose of a row-major tensor: a strided view.
    Transposed,
    /// Row-major, with a clone of θ kept alive during each step.
    Shared,
}

fn tensor(values: &[f32], layout: Layout, device: &Device) -> Tensor<2> {
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

fn host(tensor: &Tensor<2>) -> Vec<f32> {
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
        BackendKind::Wgpu => {
            actual == expected
                || (actual.is_nan() && expected.is_nan())
                || (actual - expected).abs() <= 1e-6 + 1e-5 * expected.abs()
        }
    }
}

/// The first element where `actual` and `expected` disagree, for the failure message.
fn first_difference(backend: BackendKind, actual: &[f32], expected: &[f32]) -> Option<String> {
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

fn state_tensors(state: &AdamState<2>) -> Vec<(&'static str, Vec<f32>)> {
    let mut tensors = vec![
        ("exp_avg", host(&state.exp_avg)),
        ("exp_avg_sq", host(&state.exp_avg_sq)),
    ];
    if let Some(v_max) = &state.max_exp_avg_sq {
        tensors.push(("max_exp_avg_sq", host(v_max)));
    }
    tensors
}

/// Steps `config` fused and by the reference over `case` on `device`, comparing θ and every
/// state tensor after every step. Returns one line per disagreement.
fn compare(
    backend: BackendKind,
    device: &Device,
    (config_name, config): &(&str, AdamConfig),
    case: &Case,
    layout: Layout,
    lr: f64,
) -> Vec<String> {
    let fused = config.clone().with_fused(true).build().unwrap();
    let reference = config.clone().with_fused(false).build().unwrap();
    let mut failures = Vec::new();
    let mut fail = |what: String| {
        failures.push(format!(
            "{backend}/{config_name}/{}/{layout:?}/lr {lr}: {what}",
            case.name
        ))
    };

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
        (theta_reference, state_reference) = reference.reference_step(
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
        if let Some(diff) = first_difference(backend, &host(&theta_fused), &host(&theta_reference))
        {
            fail(format!("step {step}: θ: {diff}"));
        }
        let (fused_state, reference_state): (&AdamState<2>, &AdamState<2>) = (
            state_fused.as_ref().unwrap(),
            state_reference.as_ref().unwrap(),
        );
        assert_eq!(fused_state.step, reference_state.step);
        let (actual, expected) = (state_tensors(fused_state), state_tensors(reference_state));
        let names = |t: &[(&'static str, Vec<f32>)]| t.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        if names(&actual) != names(&expected) {
            fail(format!(
                "step {step}: state {:?}, reference {:?}",
                names(&actual),
                names(&expected)
            ));
            continue;
        }
        for ((name, a), (_, e)) in actual.iter().zip(&expected) {
            if let Some(diff) = first_difference(backend, a, e) {
                fail(format!("step {step}: {name}: {diff}"));
            }
        }
    }
    failures
}

fn devices() -> Vec<(BackendKind, Device)> {
    compiled()
        .into_iter()
        .filter_map(|kind| device(kind).ok().map(|device| (kind, device)))
        .collect()
}

#[test]
fn fused_adam_equals_the_reference_step_for_every_option_edge_case_and_layout() {
    let mut failures = Vec::new();
    let cases = cases();
    for (backend, device) in devices() {
        for config in &configs() {
            for case in &cases {
                for layout in [Layout::Contiguous, Layout::Transposed, Layout::Shared] {
                    failures.extend(compare(backend, &device, config, case, layout, 1e-2));
                }
            }
            // A learning rate large enough for AdamW's factor 1 − lr·λ to go negative.
            failures.extend(compare(
                backend,
                &device,
                config,
                &cases[0],
                Layout::Contiguous,
                20.0,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A state written by the reference step (or loaded from a record) resumes under the fused
/// step with the same numbers, and the other way round: the two share one state format.
#[test]
fn fused_and_reference_steps_resume_each_others_state() {
    let cases = cases();
    let case = &cases[0];
    for (backend, device) in devices() {
        for (name, config) in configs() {
            let fused = config.clone().with_fused(true).build().unwrap();
            let reference = config.clone().with_fused(false).build().unwrap();
            let grad = |i: usize| tensor(&case.grads[i], Layout::Contiguous, &device);
            let theta = tensor(&case.theta, Layout::Contiguous, &device);
            let (theta, state) = reference.step(1e-2, theta, grad(0), None);
            let (theta, state) = fused.step(1e-2, theta, grad(1), state);
            let (theta_a, state_a) = reference.step(1e-2, theta.clone(), grad(2), state.clone());
            let (theta_b, state_b) = fused.step(1e-2, theta, grad(2), state);
            let diff = first_difference(backend, &host(&theta_b), &host(&theta_a));
            assert!(diff.is_none(), "{backend}/{name}: {}", diff.unwrap());
            assert_eq!(state_a.unwrap().step, state_b.unwrap().step);
        }
    }
}

/// Where the buffers of a CPU tensor live, to tell an in-place update from a copy.
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

/// On flex and ndarray, once the state exists, a fused step writes θ, m, v and v_max into the
/// buffers they came in (no allocation), and copies θ only while a clone of it is alive.
#[test]
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn fused_cpu_step_updates_unshared_buffers_in_place_and_copies_shared_ones() {
    let cases = cases();
    let case = &cases[0];
    let mut checked = 0;
    for (backend, device) in devices() {
        if !matches!(backend, BackendKind::Flex | BackendKind::Ndarray) {
            continue;
        }
        let adam = AdamConfig::new().with_amsgrad(true).build().unwrap();
        let grad = |i: usize| tensor(&case.grads[i], Layout::Contiguous, &device);
        let theta = tensor(&case.theta, Layout::Contiguous, &device);
        let (theta, state) = adam.step(1e-2, theta, grad(0), None);
        let state = state.unwrap();
        let addresses = |theta: &Tensor<2>, state: &AdamState<2>| {
            [
                Some(theta),
                Some(&state.exp_avg),
                Some(&state.exp_avg_sq),
                state.max_exp_avg_sq.as_ref(),
            ]
            .map(|t| buffer_address(t.expect("amsgrad keeps four tensors")))
        };
        let before = addresses(&theta, &state);
        assert!(
            before.iter().all(Option::is_some),
            "{backend}: not a CPU tensor"
        );
        let (theta, state) = adam.step(1e-2, theta, grad(1), Some(state));
        let state = state.unwrap();
        assert_eq!(
            addresses(&theta, &state),
            before,
            "{backend}: θ, m, v, v_max moved"
        );

        let kept = theta.clone();
        let (theta, state) = adam.step(1e-2, theta, grad(2), Some(state));
        let after = addresses(&theta, state.as_ref().unwrap());
        assert_ne!(
            after[0], before[0],
            "{backend}: θ is shared, so it must be copied"
        );
        assert_eq!(
            after[1..],
            before[1..],
            "{backend}: the state is not shared"
        );
        assert_eq!(
            buffer_address(&kept),
            before[0],
            "{backend}: the clone keeps its buffer"
        );
        checked += 1;
    }
    assert!(checked > 0, "no CPU backend compiled in");
}

/// Tensors no kernel takes (f64, autodiff) step through the reference: the same numbers as
/// `fused=false`, and no panic.
#[test]
fn fused_adam_falls_back_to_the_reference_step_on_f64_and_autodiff_tensors() {
    let cases = cases();
    let case = &cases[0];
    for (backend, device) in devices() {
        let fused = AdamConfig::new().with_amsgrad(true).build().unwrap();
        let reference = AdamConfig::new()
            .with_amsgrad(true)
            .with_fused(false)
            .build()
            .unwrap();
        let f64_tensor = |values: &[f32]| {
            let values: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
            Tensor::<2>::from_data(TensorData::new(values, SHAPE), &device)
        };
        let autodiff = device.clone().autodiff();
        let autodiff_tensor = |values: &[f32]| tensor(values, Layout::Contiguous, &autodiff);
        let makers: [(&str, &dyn Fn(&[f32]) -> Tensor<2>); 2] =
            [("f64", &f64_tensor), ("autodiff", &autodiff_tensor)];
        for (what, make) in makers {
            if what == "f64" && !device.supports_dtype(burn::tensor::DType::F64) {
                continue;
            }
            let (mut a, mut b) = (make(&case.theta), make(&case.theta));
            let (mut state_a, mut state_b) = (None, None);
            for grad in &case.grads {
                (a, state_a) = fused.step(1e-2, a, make(grad), state_a.take());
                (b, state_b) = reference.step(1e-2, b, make(grad), state_b.take());
            }
            assert_eq!(a.dtype(), b.dtype(), "{backend}/{what}");
            let (a, b) = (a.to_data().convert::<f32>(), b.to_data().convert::<f32>());
            assert_eq!(a, b, "{backend}/{what}: the fallback is the reference step");
        }
    }
}
