//! Every fused step against its tensor-op reference: one table over the registry. An optimizer
//! with a fused step is one with the `fused` keyword; [`FUSED_SPECS`] lists the configurations
//! that exercise every option of each (one at a time and together), and the test suite adds
//! every replay fixture's spec of those optimizers.
//!
//! Each spec is built twice through the registry, with `fused=true` and `fused=false` (which
//! takes the reference step), and both are stepped through burn's type-erased per-tensor step
//! over the data sets of [`cases`]: random values, zeros, tiny and huge values (g² underflows
//! and overflows, sums go to ∞ and NaN), gradients that flip sign, large then small gradients;
//! in three [`Layout`]s (contiguous, transposed, and with a clone of θ kept alive, which the
//! fused step must not write into), at lr 1e-2, and once at lr 20 (where a decay factor
//! `1 − lr·λ` goes negative). θ and every state leaf (tensors and the step count) are compared
//! after every step.
//!
//! How closely ([`Agreement`]):
//! - flex and ndarray: **bit for bit** (NaN matching NaN). The CPU loop evaluates the reference's
//!   operations in the same order on the same f32 values, and Rust never fuses a multiply and an
//!   add, so there is no rounding difference to allow for.
//! - wgpu: atol 1e-6 + rtol 1e-5, the replay fixtures' tolerance against torch. A fused kernel
//!   is one shader where the reference is several: a GPU's shader compiler may contract `a·b + c`
//!   into one fused multiply-add, and Vulkan lets division and square root be a few ulps off,
//!   so on a GPU the two may differ by f32 rounding. On llvmpipe (this machine's software
//!   Vulkan) they measured bit for bit equal in every case here. On an H100 (NVIDIA's Vulkan
//!   driver, 2026-12-06) this table failed: the driver contracts `a·b + c` into fused
//!   multiply-adds, which moved θ by up to 1.4e-5 relative at lr 20 (over this tolerance), RMSprop's
//!   momentum buffer by 1e-3 relative where centering subtracts nearly equal numbers, and the
//!   point where huge values overflow (∞ in one step, 1.3e36 in the other; NaN from the
//!   reference's square root of a cancelled difference, a finite value from the kernel's). The
//!   replays against torch passed there (`adamlab verify --backend wgpu`, 215 checks before its
//!   time limit). So on a hardware GPU the two steps agree to the rounding of fused
//!   multiply-adds, which a cancellation or an overflow can amplify without bound; CI runs this
//!   table on llvmpipe only.

use std::sync::Arc;

use adamlab_optim::fused::{DynItem, launches};
use adamlab_optim::{OptimizerEntry, OptimizerSpec, Value};
use burn::optim::{DynOptimizer, DynState, StateSink};
use burn::tensor::kind::BridgeTensor;
use burn::tensor::{DType, Device, Tensor, TensorData};

/// The configurations of the fused optimizers: every option, one at a time and together, with
/// the values that reach each form of their arithmetic (torch's two lerp forms, ε = 0, the
/// layouts of RMSprop's state, AMSGrad, Nesterov).
pub const FUSED_SPECS: &[&str] = &[
    "adam",
    "adam(weight_decay=0.1)",
    "adamw(weight_decay=0.1)",
    "adam(amsgrad=true)",
    "adam(maximize=true)",
    "adamw(amsgrad=true, maximize=true)",
    "adam(amsgrad=true, weight_decay=0.5)",
    "adam(betas=(0.0, 0.5), eps=1e-3)",
    "adam(state_dtype=bf16)",
    "adamw(state_dtype=bf16, amsgrad=true, maximize=true)",
    "adam(state_dtype=bf16, amsgrad=true, weight_decay=0.5)",
    "sgd",
    "sgd(weight_decay=0.1)",
    "sgd(maximize=true)",
    "sgd(momentum=0.9)",
    "sgd(momentum=0.9, dampening=0.3)",
    "sgd(momentum=0.9, nesterov=true)",
    "sgd(momentum=0.9, nesterov=true, weight_decay=0.5, maximize=true)",
    "sgd(momentum=0.5, dampening=0.5, weight_decay=0.01)",
    "lion",
    "lion(weight_decay=0.1)",
    // lion-pytorch's initial lr, by which the decoupled decay divides λ, is the spec's lr.
    "lion(lr=3e-3, weight_decay=1e-3, decoupled_weight_decay=true)",
    "lion(betas=(0.5, 0.5), weight_decay=0.5)",
    "lion(betas=(0.0, 0.99))",
    "adagrad",
    "adagrad(lr_decay=0.5)",
    "adagrad(weight_decay=0.1)",
    "adagrad(initial_accumulator_value=0.1, eps=1e-3)",
    "adagrad(eps=0.0)",
    "adagrad(lr_decay=0.01, weight_decay=0.5, initial_accumulator_value=1.0, maximize=true)",
    "rmsprop",
    "rmsprop(alpha=0.9, weight_decay=0.1, maximize=true, eps=0.0)",
    "rmsprop(centered=true)",
    // 1 − α ≥ 0.5: torch's lerp takes its other form.
    "rmsprop(centered=true, alpha=0.3)",
    "rmsprop(momentum=0.9)",
    "rmsprop(centered=true, momentum=0.9, weight_decay=0.1)",
    "rmsprop(centered=true, alpha=0.5, momentum=0.5, weight_decay=0.5, eps=1e-3, maximize=true)",
    "adamax",
    "adamax(weight_decay=0.1)",
    "adamax(weight_decay=0.1, maximize=true)",
    // 1 − β₁ ≥ 0.5: torch's lerp takes its other form.
    "adamax(betas=(0.3, 0.999))",
    "adamax(eps=0.0)",
    "adamax(betas=(0.5, 0.9), eps=1e-3, weight_decay=0.5, maximize=true)",
    // Four steps reach the momentum steps and the unrectified ones (ρₜ < t: a rectified step
    // needs t ≥ 6; adabelief's kernel.rs compares those).
    "adabelief",
    "adabelief(weight_decay=0.1)",
    "adabelief(weight_decay=0.1, fixed_decay=true)",
    "adabelief(weight_decay=0.5, weight_decouple=false)",
    "adabelief(degenerated_to_sgd=false, weight_decay=0.1)",
    "adabelief(rectify=false)",
    "adabelief(rectify=false, amsgrad=true, eps=0.0)",
    "adabelief(amsgrad=true)",
    "adabelief(betas=(0.0, 0.5), eps=1e-3, weight_decay=0.5, weight_decouple=false, rectify=false, amsgrad=true)",
    // 8-bit moments (the parameter's 33 667 elements pass min_8bit_size), then f32 ones.
    "adam8bit(betas=(0.5, 0.9), eps=1e-3, weight_decay=0.5)",
    "adamw8bit(min_8bit_size=40000)",
    "lion8bit(betas=(0.5, 0.9), weight_decay=0.5)",
    "lion8bit(min_8bit_size=40000)",
];

/// Whether `entry` has a fused step: it takes the `fused` keyword.
pub fn has_fused_step(entry: &OptimizerEntry) -> bool {
    entry.params.iter().any(|p| p.name == "fused")
}

/// How closely a fused step must follow its reference on a backend (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    /// Bit for bit, NaN matching NaN: the CPU backends.
    Bits,
    /// atol 1e-6 + rtol 1e-5: a GPU, whose shader compiler may contract `a·b + c`.
    F32Rounding,
}

impl Agreement {
    fn agree(self, actual: f32, expected: f32) -> bool {
        let bits = actual.to_bits() == expected.to_bits() || (actual.is_nan() && expected.is_nan());
        match self {
            Self::Bits => bits,
            Self::F32Rounding => bits || (actual - expected).abs() <= 1e-6 + 1e-5 * expected.abs(),
        }
    }

    /// The first element where `actual` and `expected` disagree, with the number that do.
    fn first_difference(self, actual: &[f32], expected: &[f32]) -> Option<String> {
        if actual.len() != expected.len() {
            return Some(format!(
                "{} elements, the reference {}",
                actual.len(),
                expected.len()
            ));
        }
        let disagree = |(a, e): &(&f32, &f32)| !self.agree(**a, **e);
        let mismatches = actual.iter().zip(expected).filter(disagree).count();
        let (index, (a, e)) = actual
            .iter()
            .zip(expected)
            .enumerate()
            .find(|(_, pair)| disagree(pair))?;
        Some(format!(
            "{mismatches} differ; first at {index}: fused {a:e}, reference {e:e}"
        ))
    }
}

/// Rows and columns of the parameter: not a multiple of any vector width, and more than two of
/// the CPU loop's 16 Ki-element chunks, so that the parallel split and the tails both run.
pub const SHAPE: [usize; 2] = [131, 257];
/// Steps per comparison: the first (the state starts) and three with a state.
pub const STEPS: usize = 4;

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
pub struct Case {
    /// What it exercises.
    pub name: &'static str,
    /// θ₀.
    pub theta: Vec<f32>,
    /// The gradient of each step.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
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
    tensor
        .to_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 values")
}

/// The bit patterns of a tensor's values, to compare NaN with NaN.
fn bits(tensor: &Tensor<2>) -> Vec<u32> {
    host(tensor).iter().map(|x| x.to_bits()).collect()
}

/// `spec` built with `fused=true` and with `fused=false` (its reference step), as burn's
/// type-erased per-tensor step.
fn fused_and_reference(spec: &OptimizerSpec) -> Result<[Arc<dyn DynOptimizer>; 2], String> {
    let build = |fused: bool| {
        spec.with("fused", Value::Bool(fused))
            .and_then(|spec| spec.build())
            .map(|optimizer| optimizer.dyn_optimizer())
            .map_err(|err| format!("{spec}: fused={fused}: {err}"))
    };
    Ok([build(true)?, build(false)?])
}

/// One step of `optimizer` on a parameter of rank 2.
fn step(
    optimizer: &dyn DynOptimizer,
    lr: f64,
    theta: Tensor<2>,
    grad: Tensor<2>,
    state: Option<DynState>,
) -> (Tensor<2>, Option<DynState>) {
    let (theta, state) = optimizer.step_dyn(2, lr, theta.into_bridge(), grad.into_bridge(), state);
    (Tensor::from_bridge(theta), state)
}

/// A state's leaves: its tensors' values and its scalars (the step count), by name.
fn leaves(
    optimizer: &dyn DynOptimizer,
    state: &Option<DynState>,
) -> (Vec<(String, Vec<f32>)>, Vec<(String, Option<f64>)>) {
    let mut sink = StateSink::default();
    if let Some(state) = state {
        optimizer.state_flatten("", state, &mut sink);
    }
    let tensors = sink
        .tensors
        .into_iter()
        .map(|(name, data)| {
            (
                name,
                data.convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32 values"),
            )
        })
        .collect();
    let scalars = sink
        .scalars
        .into_iter()
        .map(|(name, scalar)| (name, f64::try_from(scalar).ok()))
        .collect();
    (tensors, scalars)
}

/// Steps `spec` fused and by the reference over `case` in `layout` at `lr` on `device`,
/// comparing θ and every state leaf after every step; one line per disagreement.
pub fn compare(
    spec: &OptimizerSpec,
    device: &Device,
    agreement: Agreement,
    case: &Case,
    layout: Layout,
    lr: f64,
) -> Result<Vec<String>, String> {
    let [fused, reference] = fused_and_reference(spec)?;
    let mut failures = Vec::new();
    let mut fail =
        |what: String| failures.push(format!("{spec}/{}/{layout:?}/lr {lr}: {what}", case.name));
    let (mut theta_fused, mut theta_reference) = (
        tensor(&case.theta, layout, device),
        tensor(&case.theta, layout, device),
    );
    let (mut state_fused, mut state_reference) = (None, None);
    for (step_index, grad) in case.grads.iter().enumerate() {
        let n = step_index + 1;
        let alias = (layout == Layout::Shared).then(|| (theta_fused.clone(), bits(&theta_fused)));
        (theta_fused, state_fused) = step(
            &*fused,
            lr,
            theta_fused,
            tensor(grad, layout, device),
            state_fused.take(),
        );
        (theta_reference, state_reference) = step(
            &*reference,
            lr,
            theta_reference,
            tensor(grad, layout, device),
            state_reference.take(),
        );
        if let Some((alias, before)) = alias
            && bits(&alias) != before
        {
            fail(format!(
                "step {n}: the fused step wrote into a clone of θ held elsewhere"
            ));
        }
        if let Some(diff) = agreement.first_difference(&host(&theta_fused), &host(&theta_reference))
        {
            fail(format!("step {n}: θ: {diff}"));
        }
        if state_fused.is_some() != state_reference.is_some() {
            fail(format!(
                "step {n}: a state {}, the reference's {}",
                if state_fused.is_some() {
                    "kept"
                } else {
                    "dropped"
                },
                if state_reference.is_some() {
                    "kept"
                } else {
                    "dropped"
                },
            ));
            continue;
        }
        let (tensors, scalars) = leaves(&*fused, &state_fused);
        let (expected_tensors, expected_scalars) = leaves(&*reference, &state_reference);
        if scalars != expected_scalars {
            fail(format!(
                "step {n}: scalars {scalars:?}, reference {expected_scalars:?}"
            ));
        }
        let names = |t: &[(String, Vec<f32>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        if names(&tensors) != names(&expected_tensors) {
            fail(format!(
                "step {n}: state {:?}, reference {:?}",
                names(&tensors),
                names(&expected_tensors)
            ));
            continue;
        }
        for ((name, a), (_, e)) in tensors.iter().zip(&expected_tensors) {
            if let Some(diff) = agreement.first_difference(a, e) {
                fail(format!("step {n}: {name}: {diff}"));
            }
        }
    }
    Ok(failures)
}

/// The fused step of `spec` equals its reference on `device`: every data set of [`cases`] in
/// every [`Layout`] at lr 1e-2, and the random data at lr 20 (large enough for a decay factor
/// `1 − lr·λ` to go negative).
pub fn fused_equals_reference(
    spec: &OptimizerSpec,
    device: &Device,
    agreement: Agreement,
) -> Result<(), String> {
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        for layout in [Layout::Contiguous, Layout::Transposed, Layout::Shared] {
            failures.extend(compare(spec, device, agreement, case, layout, 1e-2)?);
        }
    }
    failures.extend(compare(
        spec,
        device,
        agreement,
        &cases[0],
        Layout::Contiguous,
        20.0,
    )?);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// A state written by the reference step resumes under the fused step with the same numbers,
/// and the other way round: the two share one state format.
pub fn fused_and_reference_resume_each_other(
    spec: &OptimizerSpec,
    device: &Device,
    agreement: Agreement,
) -> Result<(), String> {
    let [fused, reference] = fused_and_reference(spec)?;
    let cases = cases();
    let case = &cases[0];
    let grad = |i: usize| tensor(&case.grads[i], Layout::Contiguous, device);
    let theta = tensor(&case.theta, Layout::Contiguous, device);
    let (theta, state) = step(&*reference, 1e-2, theta, grad(0), None);
    let (theta, state) = step(&*fused, 1e-2, theta, grad(1), state);
    let (theta_a, state_a) = step(&*reference, 1e-2, theta.clone(), grad(2), state.clone());
    let (theta_b, state_b) = step(&*fused, 1e-2, theta, grad(2), state);
    if let Some(diff) = agreement.first_difference(&host(&theta_b), &host(&theta_a)) {
        return Err(format!(
            "{spec}: the fused step resumed from the reference's state: θ: {diff}"
        ));
    }
    let (scalars_a, scalars_b) = (leaves(&*reference, &state_a).1, leaves(&*fused, &state_b).1);
    if scalars_a != scalars_b {
        return Err(format!(
            "{spec}: scalars {scalars_b:?}, reference {scalars_a:?}"
        ));
    }
    Ok(())
}

/// Tensors no kernel takes (f64, autodiff) step through the reference: the same numbers as
/// `fused=false`, and no panic.
pub fn fused_falls_back_to_the_reference(
    spec: &OptimizerSpec,
    device: &Device,
) -> Result<(), String> {
    let [fused, reference] = fused_and_reference(spec)?;
    let cases = cases();
    let case = &cases[0];
    let f64_tensor = |values: &[f32]| {
        let values: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
        Tensor::<2>::from_data(TensorData::new(values, SHAPE), device)
    };
    let autodiff = device.clone().autodiff();
    let autodiff_tensor = |values: &[f32]| tensor(values, Layout::Contiguous, &autodiff);
    let makers: [(&str, &dyn Fn(&[f32]) -> Tensor<2>); 2] =
        [("f64", &f64_tensor), ("autodiff", &autodiff_tensor)];
    for (what, make) in makers {
        // A backend without f64 (wgpu) stores it as f32, which the kernel does take.
        if what == "f64" && make(&case.theta).dtype() != DType::F64 {
            continue;
        }
        let (mut a, mut b) = (make(&case.theta), make(&case.theta));
        let (mut state_a, mut state_b) = (None, None);
        for grad in &case.grads {
            (a, state_a) = step(&*fused, 1e-2, a, make(grad), state_a.take());
            (b, state_b) = step(&*reference, 1e-2, b, make(grad), state_b.take());
        }
        if a.dtype() != b.dtype() || a.to_data().convert::<f32>() != b.to_data().convert::<f32>() {
            return Err(format!(
                "{spec}/{what}: the fallback is not the reference step"
            ));
        }
    }
    Ok(())
}

/// The shapes [`multi_tensor_equals_one_by_one`] steps together: ranks 1, 2 and 4; lengths that
/// take every vector width (1, 3, 4097 take none); a transposed view; and more tensors of one
/// width than a launch takes, so that the step splits them over several launches.
fn multi_tensor_shapes() -> Vec<(Vec<usize>, bool)> {
    let mut shapes = vec![
        (vec![1], false),
        (vec![3], false),
        (vec![8], false),
        (vec![1000], false),
        (vec![4097], false),
        (vec![131, 257], false),
        (vec![7, 5], true),
        (vec![2, 3, 4, 5], false),
    ];
    shapes.extend((0..40).map(|_| (vec![64], false)));
    shapes
}

/// A tensor of `shape` (transposed when `transposed`: a strided view of its transpose) holding
/// `values`, as a type-erased tensor of its rank.
fn bridge(values: Vec<f32>, shape: &[usize], transposed: bool, device: &Device) -> BridgeTensor {
    macro_rules! ranks {
        ($($d:literal)+) => {
            match shape.len() {
                $($d => {
                    let dims: [usize; $d] = shape.try_into().expect("rank checked");
                    if transposed {
                        // Only shapes of rank 2 or more are transposed.
                        let last = dims.len() - 1;
                        let mut stored = dims;
                        stored.swap(last - 1, last);
                        let t = Tensor::<$d>::from_data(TensorData::new(values, stored), device);
                        t.swap_dims(last - 1, last).into_bridge()
                    } else {
                        Tensor::<$d>::from_data(TensorData::new(values, dims), device).into_bridge()
                    }
                })+
                rank => unreachable!("rank {rank} is not among the shapes"),
            }
        };
    }
    ranks!(1 2 4)
}

/// The values of a type-erased tensor of rank `rank`, as bit patterns.
fn bridge_bits(tensor: &BridgeTensor, rank: usize) -> Vec<u32> {
    macro_rules! ranks {
        ($($d:literal)+) => {
            match rank {
                $($d => Tensor::<$d>::from_bridge(tensor.clone()).to_data()
                    .convert::<f32>().try_to_vec::<f32>().expect("f32 values"),)+
                rank => unreachable!("rank {rank} is not among the shapes"),
            }
        };
    }
    ranks!(1 2 4).iter().map(|x| x.to_bits()).collect()
}

/// The multi-tensor step of `spec` (`AnyOptimizer::step_many_dyn`, one launch for many tensors
/// on wgpu) equals its per-tensor step bit for bit, on `device` (on the CPU backends and
/// llvmpipe; on an H100 two AdamW configurations differed in one tensor, the driver contracting
/// differently in the kernel compiled for one tensor and for many): the tensors of
/// [`multi_tensor_shapes`] stepped three times, one of them joining at the second step (a tensor
/// whose state starts there shares no launch with the others), θ and every state leaf compared
/// after each step. Where the step launches kernels (wgpu), an optimizer with a multi-tensor step
/// must launch at most one per four tensors, one without (the 8-bit optimizers, whose kernels
/// step one tensor per launch) at most one per tensor. Returns the kernel launches of the multi-tensor steps (0 on the CPU backends), so
/// that a caller can tell the kernel ran.
pub fn multi_tensor_equals_one_by_one(spec: &OptimizerSpec, device: &Device) -> Result<usize, String> {
    let fused = spec
        .with("fused", Value::Bool(true))
        .and_then(|spec| spec.build())
        .map_err(|err| format!("{spec}: {err}"))?;
    let one = fused.dyn_optimizer();
    let shapes = multi_tensor_shapes();
    let mut random = Values(0x5eed);
    let mut make = |shape: &[usize], transposed: bool, scale: f32| {
        let len = shape.iter().product();
        bridge(random.vec(len, |_, x| x * scale), shape, transposed, device)
    };
    let mut total = 0;
    let mut many: Vec<(usize, BridgeTensor, Option<DynState>)> = Vec::new();
    let mut alone: Vec<(usize, BridgeTensor, Option<DynState>)> = Vec::new();
    for (index, (shape, transposed)) in shapes.iter().enumerate() {
        // The last tensor joins at the second step.
        if index + 1 < shapes.len() {
            let theta = make(shape, *transposed, 1.0);
            many.push((shape.len(), theta.clone(), None));
            alone.push((shape.len(), theta, None));
        }
    }
    for n in 1..=3 {
        if n == 2 {
            let (shape, transposed) = shapes.last().expect("shapes");
            let theta = make(shape, *transposed, 1.0);
            many.push((shape.len(), theta.clone(), None));
            alone.push((shape.len(), theta, None));
        }
        let grads: Vec<BridgeTensor> = shapes[..many.len()]
            .iter()
            .map(|(shape, transposed)| make(shape, *transposed, 0.1))
            .collect();
        let items = many
            .drain(..)
            .zip(&grads)
            .map(|((rank, theta, state), grad)| DynItem { rank, theta, grad: grad.clone(), state })
            .collect();
        let before = launches();
        let stepped = fused.step_many_dyn(1e-2, items);
        let launched = launches() - before;
        total += launched;
        // One launch per four tensors at most where launches are shared, else one per tensor.
        let most = if fused.has_multi_tensor_step() { grads.len() / 4 } else { grads.len() };
        if launched > most {
            return Err(format!(
                "{spec}: step {n}: {launched} launches for {} tensors",
                grads.len()
            ));
        }
        many = alone
            .iter()
            .zip(stepped)
            .map(|((rank, _, _), (theta, state))| (*rank, theta, state))
            .collect();
        alone = alone
            .drain(..)
            .zip(&grads)
            .map(|((rank, theta, state), grad)| {
                let (theta, state) = one.step_dyn(rank, 1e-2, theta, grad.clone(), state);
                (rank, theta, state)
            })
            .collect();
        for (index, ((rank, a, state_a), (_, b, state_b))) in many.iter().zip(&alone).enumerate() {
            let what = format!("{spec}: step {n}: tensor {index} {:?}", shapes[index].0);
            if bridge_bits(a, *rank) != bridge_bits(b, *rank) {
                return Err(format!("{what}: θ differs"));
            }
            let (tensors_a, scalars_a) = leaves(&*one, state_a);
            let (tensors_b, scalars_b) = leaves(&*one, state_b);
            let bits = |t: Vec<(String, Vec<f32>)>| {
                t.into_iter()
                    .map(|(name, v)| (name, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()))
                    .collect::<Vec<_>>()
            };
            if scalars_a != scalars_b || bits(tensors_a) != bits(tensors_b) {
                return Err(format!("{what}: the state differs"));
            }
        }
    }
    Ok(total)
}
