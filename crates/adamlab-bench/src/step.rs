//! `adamlab bench step`: the time of one optimizer step over `params` parameters split into
//! `tensors` tensors, for every backend × optimizer × size, each optimizer built from the
//! registry and stepped through its type-erased per-tensor step, as `ModuleOptimizer` runs it.

use crate::measure::{self, DeviceError, Triad};
use crate::schema::{Bench, Record};
use crate::stats::{Summary, gigabytes_per_second};
use crate::{BenchError, Observer, Target};
use adamlab_backend::BackendKind;
use adamlab_optim::fused::FUSED;
use adamlab_optim::fused::DynItem;
use adamlab_optim::{AnyOptimizer, OptimizerSpec, Value};
use burn::optim::{DynOptimizer, StateSink};
use burn::tensor::{Device, Distribution, Tensor};

/// The optimizers timed when none are given: adamlab's Adam and AdamW and burn's built-in Adam.
pub const DEFAULT_OPTIMIZERS: &[&str] = &["adam", "adamw", "burn-adam"];
/// The parameter counts timed when none are given.
pub const DEFAULT_PARAMS: &[usize] = &[100_000, 1_000_000, 10_000_000];
/// Timed steps per measurement when not given.
pub const DEFAULT_REPEATS: usize = 15;
/// Untimed steps before the timed ones when not given (wgpu compiles its kernels then).
pub const DEFAULT_WARMUP: usize = 3;

/// The most timed steps (`--repeats`) or untimed ones (`--warmup`) per measurement: a million,
/// hours of steps at a millisecond each, and 8 MB of timings. More is refused before anything is
/// allocated.
pub const MAX_REPEATS: usize = 1_000_000;
/// The most rounds (`--rounds`): a thousand whole measurements.
pub const MAX_ROUNDS: usize = 1_000;
/// The most tensors the parameters are split into (`--tensors`): a hundred thousand. Each tensor
/// costs the step bookkeeping of its own (704 bytes in one allocation alone, measured), so that
/// 1e8 tensors asked for 70 GB and aborted.
pub const MAX_TENSORS: usize = 100_000;
/// What one parameter costs a step at the least, in bytes: the f32 parameter, its gradient and
/// two f32 state tensors (Adam's m and v). A parameter count whose cost exceeds the machine's
/// memory (`MemTotal` of `/proc/meminfo`) is refused before anything is allocated.
pub const MIN_BYTES_PER_PARAM: u64 = 16;

/// Refuses `--repeats` or `--warmup` beyond [`MAX_REPEATS`], naming the bound.
pub(crate) fn check_repeats(repeats: usize, warmup: usize) -> Result<(), BenchError> {
    for (flag, n) in [("--repeats", repeats), ("--warmup", warmup)] {
        if n > MAX_REPEATS {
            return Err(BenchError::Invalid(format!(
                "{flag} {n}: at most {MAX_REPEATS} steps per measurement (adamlab_bench::step::MAX_REPEATS)"
            )));
        }
    }
    Ok(())
}

/// Refuses a parameter count whose step cannot fit in `memory` bytes (at least
/// [`MIN_BYTES_PER_PARAM`] each), naming both; `None` (memory unknown) refuses only counts whose
/// bytes overflow.
pub fn check_params_fit(params: usize, memory: Option<u64>) -> Result<(), BenchError> {
    let need = (params as u64).checked_mul(MIN_BYTES_PER_PARAM);
    let fits = match (need, memory) {
        (None, _) => false,
        (Some(need), Some(memory)) => need <= memory,
        (Some(_), None) => true,
    };
    if fits {
        return Ok(());
    }
    let need = need.map_or_else(|| "more than 2^64 bytes".to_string(), |b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64));
    let memory = memory.map_or_else(String::new, |m| format!(", more than this machine's {:.1} GiB of memory", m as f64 / (1u64 << 30) as f64));
    Err(BenchError::Invalid(format!(
        "--params {params}: a step over {params} parameters needs at least {need} ({MIN_BYTES_PER_PARAM} bytes \
         each: the parameter, its gradient and two state tensors in f32){memory}"
    )))
}

/// Registry entries named `burn-NAME` are burn's own optimizers.
pub(crate) const BURN_PREFIX: &str = "burn-";
/// Bytes of one f32.
const F32_BYTES: u64 = 4;

/// What to time.
#[derive(Debug, Clone)]
pub struct StepConfig {
    /// The backends, each with its device.
    pub targets: Vec<Target>,
    /// The optimizers.
    pub optimizers: Vec<OptimizerSpec>,
    /// Parameter counts.
    pub params: Vec<usize>,
    /// The parameters are split into this many tensors (≥ 1).
    pub tensors: usize,
    /// Step all the tensors with one call ([`AnyOptimizer::step_many_dyn`]: one kernel launch
    /// for many tensors on a GPU backend) rather than one call per tensor, as a training step
    /// through burn's `ModuleOptimizer` does.
    pub multi_tensor: bool,
    /// Untimed steps.
    pub warmup: usize,
    /// Timed steps (≥ 1).
    pub repeats: usize,
    /// The whole measurement, adamlab's rows then PyTorch's, this many times in turn (≥ 1); each
    /// row keeps the median of its rounds' medians ([`merge_rounds`]).
    pub rounds: usize,
}

impl StepConfig {
    /// Checks what a user can get wrong: zero repeats, zero tensors, more tensors than
    /// parameters, empty lists, and sizes that cannot fit: repeats or warmup beyond
    /// [`MAX_REPEATS`], rounds beyond [`MAX_ROUNDS`], tensors beyond [`MAX_TENSORS`], parameters
    /// beyond the machine's memory ([`check_params_fit`]).
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.repeats == 0 {
            return Err(BenchError::Invalid("--repeats must be at least 1".into()));
        }
        if self.rounds == 0 {
            return Err(BenchError::Invalid("--rounds must be at least 1".into()));
        }
        check_repeats(self.repeats, self.warmup)?;
        if self.rounds > MAX_ROUNDS {
            return Err(BenchError::Invalid(format!(
                "--rounds {}: at most {MAX_ROUNDS} rounds (adamlab_bench::step::MAX_ROUNDS)",
                self.rounds
            )));
        }
        let memory = crate::machine::memory_bytes();
        for &params in &self.params {
            check_params_fit(params, memory)?;
        }
        if self.tensors == 0 {
            return Err(BenchError::Invalid("--tensors must be at least 1".into()));
        }
        if self.tensors > MAX_TENSORS {
            return Err(BenchError::Invalid(format!(
                "--tensors {}: at most {MAX_TENSORS} tensors (adamlab_bench::step::MAX_TENSORS)",
                self.tensors
            )));
        }
        if let Some(&params) = self.params.iter().find(|&&p| p < self.tensors) {
            return Err(BenchError::Invalid(format!(
                "{params} parameters cannot be split into {} tensors",
                self.tensors
            )));
        }
        if self.targets.is_empty() || self.optimizers.is_empty() || self.params.is_empty() {
            return Err(BenchError::Invalid("nothing to measure: a list is empty".into()));
        }
        Ok(())
    }
}

/// Whose code a spec runs: `burn` for burn's built-ins (`burn-NAME`); for an optimizer with a
/// fused kernel (its entry has the `fused` keyword), `adamlab-fused` (the default, the kernel on
/// flex, ndarray and wgpu) or `adamlab-reference` (`fused=false`, the tensor-op step); else
/// `adamlab`, the tensor-op step of an optimizer that has no kernel.
pub fn implementation(spec: &OptimizerSpec) -> &'static str {
    if spec.name().starts_with(BURN_PREFIX) {
        return "burn";
    }
    match spec.args().values().get(FUSED.name) {
        Some(Value::Bool(false)) => "adamlab-reference",
        Some(_) => "adamlab-fused",
        None => "adamlab",
    }
}

/// Bytes of state the optimizer keeps per parameter element: one step on a rank-1 parameter of
/// 65,536 elements (large enough for the 8-bit optimizers' blockwise states, which keep f32 below
/// 4,096 elements), then its state flattened, each tensor counted at the dtype it is held in (u8
/// codes 1 byte, f32 4). Scalars such as a step count are left out.
pub fn state_bytes_per_param(optimizer: &dyn DynOptimizer, lr: f64, device: &Device) -> f64 {
    const LEN: usize = 1 << 16;
    let theta = Tensor::<1>::ones([LEN], device).into_bridge();
    let grad = Tensor::<1>::ones([LEN], device).mul_scalar(0.5).into_bridge();
    let (_, state) = optimizer.step_dyn(1, lr, theta, grad, None);
    let Some(state) = state else { return 0.0 };
    let mut sink = StateSink::default();
    optimizer.state_flatten("probe", &state, &mut sink);
    let bytes: usize = sink
        .tensors
        .iter()
        .filter(|(_, data)| data.num_elements() > 1)
        .map(|(_, data)| data.num_elements() * data.dtype().size())
        .sum();
    bytes as f64 / LEN as f64
}

/// The least bytes one step must move per f32 parameter: read θ and g, write θ (12), and read
/// and write the state: `12 + 2·state`, rounded. Adam's two f32 moments give 28; 8-bit moments
/// (two u8 codes and two f32 absmax per 256 elements) 16.
pub fn bytes_per_param(state_bytes: f64) -> u64 {
    3 * F32_BYTES + (2.0 * state_bytes).round() as u64
}

/// Fills a step record's bandwidth from its median time and bytes per parameter, and its
/// fraction of the triad's bandwidth when one was measured.
pub fn derive_bandwidth(record: &mut Record, bytes_per_param: u64, triad_gbps: Option<f64>) {
    record.bytes_per_param = Some(bytes_per_param);
    let (Some(params), Some(median)) = (record.params, record.median_ms) else {
        return;
    };
    record.bandwidth_gbps = gigabytes_per_second(bytes_per_param as f64 * params as f64, median);
    record.bandwidth_fraction = match (record.bandwidth_gbps, triad_gbps) {
        (Some(gbps), Some(triad)) if triad > 0.0 => Some(gbps / triad),
        _ => None,
    };
}

/// The triad as a record.
pub fn triad_record(triad: &Triad, threads: usize) -> Record {
    let mut record = Record::new(Bench::Triad, "host", format!("host memory ({threads} threads)"))
        .with_timing(&triad.summary, 1);
    record.params = Some(triad.len as u64);
    record.bandwidth_gbps = Some(triad.gigabytes_per_second());
    record
}

/// One row per measurement out of several rounds of the same rows: the median of the rounds'
/// medians, the least minimum, the greatest maximum, every timed step counted, the largest extra
/// memory, and the bandwidth of the merged median. A drift of the machine's speed between
/// adamlab's rows and PyTorch's (minutes apart in one round) then weighs on both sides alike.
/// One round is returned as it is.
pub fn merge_rounds(rounds: Vec<Vec<Record>>, triad_gbps: Option<f64>) -> Vec<Record> {
    let count = rounds.len();
    let mut rounds = rounds.into_iter();
    let Some(first) = rounds.next() else { return Vec::new() };
    if count == 1 {
        return first;
    }
    let key = |r: &Record| {
        (r.backend.clone(), r.optimizer.clone(), r.implementation.clone(), r.params, r.tensors)
    };
    let mut merged: Vec<(Record, Vec<Record>)> = first.into_iter().map(|r| (r, Vec::new())).collect();
    for record in rounds.flatten() {
        match merged.iter_mut().find(|(first, _)| key(first) == key(&record)) {
            Some((_, others)) => others.push(record),
            // A row only a later round has (PyTorch refused it once): kept as it is.
            None => merged.push((record, Vec::new())),
        }
    }
    merged
        .into_iter()
        .map(|(mut record, others)| {
            if others.is_empty() {
                return record;
            }
            let all: Vec<&Record> = std::iter::once(&record).chain(&others).collect();
            let medians: Vec<f64> = all.iter().filter_map(|r| r.median_ms).collect();
            let min = all.iter().filter_map(|r| r.min_ms).reduce(f64::min);
            let max = all.iter().filter_map(|r| r.max_ms).reduce(f64::max);
            let repeats = all.iter().filter_map(|r| r.repeats).sum();
            let extra = all.iter().filter_map(|r| r.step_extra_mib).reduce(f64::max);
            let rounds = all.len();
            record.median_ms = Summary::of(&medians).map(|s| s.median);
            record.min_ms = min;
            record.max_ms = max;
            record.repeats = Some(repeats);
            record.step_extra_mib = extra;
            if let Some(bytes) = record.bytes_per_param {
                // Against the triad only where the round's row was (host memory).
                let triad = triad_gbps.filter(|_| record.bandwidth_fraction.is_some());
                derive_bandwidth(&mut record, bytes, triad);
            }
            record.note = Some(format!("median of {rounds} rounds' medians"));
            record
        })
        .collect()
}

/// Times every backend × optimizer × size of `config`, reporting each record to `observer` as
/// it is measured. `triad_gbps` is the host bandwidth the fractions refer to.
pub fn run(
    config: &StepConfig,
    triad_gbps: Option<f64>,
    observer: &mut dyn Observer,
) -> Result<Vec<Record>, BenchError> {
    config.validate()?;
    observer.planned(config.targets.len() * config.optimizers.len() * config.params.len());
    let mut records = Vec::new();
    for target in &config.targets {
        // The process's RSS counts the CPU backends' tensors; the host triad is a row's yardstick
        // only where its tensors live in host memory: not on a hardware GPU.
        let host_memory = !matches!(target.backend, BackendKind::Wgpu | BackendKind::Cuda);
        let host_bandwidth = host_memory
            || (target.backend == BackendKind::Wgpu && adamlab_backend::wgpu_hardware_adapter().is_none());
        for spec in &config.optimizers {
            let optimizer = spec.build()?;
            let bytes = bytes_per_param(state_bytes_per_param(&*optimizer.dyn_optimizer(), spec.lr(), &target.device));
            for &params in &config.params {
                observer.started(&format!("{} {spec} {params}", target.backend));
                let (times, extra_mib) =
                    time_step(&*optimizer, spec.lr(), &target.device, host_memory, params, config)?;
                let summary = Summary::of(&times).expect("repeats ≥ 1");
                let mut record = Record::new(Bench::Step, target.backend.name(), &target.description)
                    .with_timing(&summary, config.warmup);
                record.optimizer = Some(spec.to_string());
                record.reference = Some(spec.entry().reference.to_string());
                record.implementation = Some(match implementation(spec) {
                    "adamlab-fused" if config.multi_tensor => "adamlab-fused-multi-tensor".into(),
                    other => other.to_string(),
                });
                record.params = Some(params as u64);
                record.tensors = Some(config.tensors as u64);
                record.lr = Some(spec.lr());
                record.step_extra_mib = extra_mib;
                derive_bandwidth(&mut record, bytes, triad_gbps.filter(|_| host_bandwidth));
                observer.measured(&record);
                records.push(record);
            }
        }
    }
    Ok(records)
}

/// The sizes of `tensors` tensors holding `params` parameters: equal, the remainder spread over
/// the first ones.
pub fn split(params: usize, tensors: usize) -> Vec<usize> {
    (0..tensors)
        .map(|i| params / tensors + usize::from(i < params % tensors))
        .collect()
}

/// The times of `config.repeats` steps on fresh random parameters and fixed random gradients,
/// and where the tensors live in host memory (`host_memory`: the CPU backends) what the steps allocate on top of what they keep (MiB, see
/// [`Record::step_extra_mib`]): the state is created by one untimed step first, then the peak
/// resident memory of the warm-up and timed steps is taken above the resident memory before them.
fn time_step(
    optimizer: &dyn AnyOptimizer,
    lr: f64,
    device: &Device,
    host_memory: bool,
    params: usize,
    config: &StepConfig,
) -> Result<(Vec<f64>, Option<f64>), DeviceError> {
    device.seed(0);
    let sizes = split(params, config.tensors);
    let mut thetas: Vec<Option<Tensor<1>>> = sizes
        .iter()
        .map(|&n| Some(Tensor::random([n], Distribution::Normal(0.0, 1.0), device)))
        .collect();
    let grads: Vec<Tensor<1>> = sizes
        .iter()
        .map(|&n| Tensor::random([n], Distribution::Normal(0.0, 1e-2), device))
        .collect();
    let mut states: Vec<_> = sizes.iter().map(|_| None).collect();
    let dyn_optimizer = optimizer.dyn_optimizer();
    let mut step = || {
        if config.multi_tensor {
            let items = thetas.iter_mut().zip(&grads).zip(states.iter_mut());
            let items = items.map(|((theta, grad), state)| DynItem {
                rank: 1,
                theta: theta.take().expect("every tensor is put back").into_bridge(),
                grad: grad.clone().into_bridge(),
                state: state.take(),
            });
            let stepped = optimizer.step_many_dyn(lr, items.collect());
            for ((theta, state), (next, next_state)) in thetas.iter_mut().zip(states.iter_mut()).zip(stepped) {
                *theta = Some(Tensor::from_bridge(next));
                *state = next_state;
            }
            return;
        }
        for ((theta, grad), state) in thetas.iter_mut().zip(&grads).zip(states.iter_mut()) {
            let current = theta.take().expect("every tensor is put back");
            let (next, next_state) =
                dyn_optimizer.step_dyn(1, lr, current.into_bridge(), grad.clone().into_bridge(), state.take());
            *theta = Some(Tensor::from_bridge(next));
            *state = next_state;
        }
    };
    step();
    measure::sync(device)?;
    let before = host_memory.then(measure::rss::current_mib).flatten();
    let reset = host_memory && measure::rss::reset_peak();
    let times = measure::time_on(device, config.warmup, config.repeats, step)?;
    let extra = match (before, reset.then(measure::rss::peak_mib).flatten()) {
        (Some(before), Some(peak)) => Some((peak - before).max(0.0)),
        _ => None,
    };
    Ok((times, extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quiet;

    fn spec(text: &str) -> OptimizerSpec {
        OptimizerSpec::parse(text).unwrap()
    }

    #[test]
    fn adam_keeps_two_state_tensors_and_so_moves_28_bytes_per_parameter() {
        let device = Device::flex();
        let bytes = |text: &str| {
            let s = spec(text);
            bytes_per_param(state_bytes_per_param(&*s.build().unwrap().dyn_optimizer(), s.lr(), &device))
        };
        for name in DEFAULT_OPTIMIZERS {
            assert_eq!(bytes(name), 28, "{name}");
        }
        assert_eq!(bytes("adam(amsgrad=true)"), 36, "AMSGrad keeps max(v) too");
        // Two u8 codes and 2 · 4 / 256 bytes of absmax per element: 12 + 2 · 2.03.
        assert_eq!(bytes("adamw8bit"), 16);
        assert_eq!(bytes("lion8bit"), 14);
        assert_eq!(bytes("sgd"), 12, "plain SGD keeps nothing");
    }

    #[test]
    fn every_registered_optimizer_has_a_byte_figure() {
        let device = Device::flex();
        for entry in adamlab_optim::registry() {
            let s = spec(entry.name);
            let state = state_bytes_per_param(&*s.build().unwrap().dyn_optimizer(), s.lr(), &device);
            assert!(state.is_finite() && bytes_per_param(state) >= 12, "{}: {state} bytes of state", entry.name);
        }
    }

    #[test]
    fn implementations_are_named_from_the_spec() {
        assert_eq!(implementation(&spec("adam")), "adamlab-fused");
        assert_eq!(implementation(&spec("adam(fused=false)")), "adamlab-reference");
        assert_eq!(implementation(&spec("sgd(momentum=0.9)")), "adamlab-fused");
        assert_eq!(implementation(&spec("sgd(fused=false)")), "adamlab-reference");
        assert_eq!(implementation(&spec("lion")), "adamlab-fused");
        assert_eq!(implementation(&spec("lion(fused=false)")), "adamlab-reference");
        assert_eq!(implementation(&spec("adamax")), "adamlab-fused");
        assert_eq!(implementation(&spec("nadam")), "adamlab");
        assert_eq!(implementation(&spec("burn-adam")), "burn");
    }

    #[test]
    fn parameters_split_into_tensors_keep_their_total() {
        assert_eq!(split(10, 3), [4, 3, 3]);
        assert_eq!(split(1_000_000, 1), [1_000_000]);
        assert_eq!(split(7, 7).iter().sum::<usize>(), 7);
    }

    #[test]
    fn bandwidth_is_derived_from_bytes_params_and_the_median() {
        let mut record = Record::new(Bench::Step, "flex", "flex (CPU)");
        record.params = Some(10_000_000);
        record.median_ms = Some(100.0);
        derive_bandwidth(&mut record, 28, Some(10.0));
        assert!((record.bandwidth_gbps.unwrap() - 2.8).abs() < 1e-9);
        assert!((record.bandwidth_fraction.unwrap() - 0.28).abs() < 1e-9);
    }

    #[test]
    fn a_small_run_gives_one_record_per_optimizer_and_size() {
        let config = StepConfig {
            targets: vec![Target::new(adamlab_backend::BackendKind::Flex).unwrap()],
            optimizers: vec![spec("adam"), spec("burn-adam")],
            params: vec![1000, 3000],
            tensors: 3,
            multi_tensor: false,
            warmup: 1,
            repeats: 2,
            rounds: 1,
        };
        let records = run(&config, None, &mut Quiet).unwrap();
        assert_eq!(records.len(), 4);
        let r = &records[3];
        assert_eq!((r.params, r.tensors, r.repeats), (Some(3000), Some(3), Some(2)));
        assert_eq!(r.implementation.as_deref(), Some("burn"));
        assert!(r.min_ms.unwrap() <= r.median_ms.unwrap() && r.median_ms.unwrap() <= r.max_ms.unwrap());
    }

    #[test]
    fn zero_repeats_and_too_many_tensors_are_refused() {
        let mut config = StepConfig {
            targets: vec![Target::new(adamlab_backend::BackendKind::Flex).unwrap()],
            optimizers: vec![spec("adam")],
            params: vec![10],
            tensors: 1,
            multi_tensor: false,
            warmup: 0,
            repeats: 0,
            rounds: 1,
        };
        assert!(config.validate().unwrap_err().to_string().contains("--repeats"));
        config.repeats = 1;
        config.rounds = 0;
        assert!(config.validate().unwrap_err().to_string().contains("--rounds"));
        config.rounds = 1;
        for (repeats, rounds, needle) in [
            (usize::MAX, 1, "MAX_REPEATS"),
            (100_000_000_000, 1, "MAX_REPEATS"),
            (1, usize::MAX, "MAX_ROUNDS"),
            (1, 100_000_000_000, "MAX_ROUNDS"),
        ] {
            (config.repeats, config.rounds) = (repeats, rounds);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        (config.repeats, config.rounds) = (MAX_REPEATS, MAX_ROUNDS);
        config.validate().unwrap();
        config.params = vec![1_000_000_000_000];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("--params 1000000000000") && err.contains("GiB"), "{err}");
        config.params = vec![10];
        (config.repeats, config.rounds) = (1, 1);
        config.tensors = MAX_TENSORS + 1;
        assert!(config.validate().unwrap_err().to_string().contains("MAX_TENSORS"));
        config.tensors = 11;
        assert!(config.validate().unwrap_err().to_string().contains("cannot be split"));
    }

    #[test]
    fn rounds_merge_into_one_row_each_with_the_median_of_their_medians() {
        let row = |backend: &str, median: f64, min: f64, max: f64| {
            let mut r = Record::new(Bench::Step, backend, backend);
            r.optimizer = Some("adam".into());
            r.params = Some(1_000_000);
            r.tensors = Some(1);
            (r.median_ms, r.min_ms, r.max_ms, r.repeats) = (Some(median), Some(min), Some(max), Some(5));
            derive_bandwidth(&mut r, 28, Some(10.0));
            r
        };
        let rounds = vec![
            vec![row("flex", 10.0, 9.0, 12.0), row("torch", 8.0, 7.0, 9.0)],
            vec![row("flex", 14.0, 13.0, 30.0), row("torch", 12.0, 11.0, 13.0)],
            vec![row("flex", 11.0, 8.5, 11.5), row("torch", 9.0, 8.0, 10.0)],
        ];
        let merged = merge_rounds(rounds, Some(10.0));
        assert_eq!(merged.len(), 2);
        let flex = &merged[0];
        assert_eq!((flex.median_ms, flex.min_ms, flex.max_ms, flex.repeats), (Some(11.0), Some(8.5), Some(30.0), Some(15)));
        assert!((flex.bandwidth_gbps.unwrap() - 28.0 * 1e6 / 11.0 / 1e6).abs() < 1e-9);
        assert_eq!(merged[1].median_ms, Some(9.0));
        // One round is left as it was.
        let one = merge_rounds(vec![vec![row("flex", 10.0, 9.0, 12.0)]], Some(10.0));
        assert_eq!((one[0].median_ms, one[0].note.as_deref()), (Some(10.0), None));
    }
}
