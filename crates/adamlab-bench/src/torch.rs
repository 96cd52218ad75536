//! PyTorch side by side: `tools/bench/torch_bench.py`, compiled into the binary, run with the
//! Python of `ADAMLAB_TORCH_PYTHON` (else `python3`) on the same optimizers, sizes, batch sizes and
//! thread count, its records read back into the same schema.
//!
//! Which torch class runs an optimizer comes from the registry: an entry whose reference is
//! `torch.optim.NAME (…)` runs `torch.optim.NAME` with the spec's keywords (those the class
//! takes). Other optimizers have no PyTorch rows.

use crate::schema::Record;
use crate::{BenchError, Observer};
use adamlab_backend::BackendKind;
use adamlab_optim::{OptimizerSpec, Value};
use serde_json::{Map, Value as Json, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// The script, as the repository holds it.
pub const SCRIPT: &str = include_str!("../../../tools/bench/torch_bench.py");
/// The workload models in PyTorch, written beside the script (which imports them).
pub const MODELS: &str = include_str!("../../../tools/reference/models.py");
/// The variable naming the Python to run.
pub const PYTHON_ENV: &str = "ADAMLAB_TORCH_PYTHON";

/// A Python that imports torch.
#[derive(Debug, Clone, PartialEq)]
pub struct Torch {
    /// The interpreter.
    pub python: String,
    /// `torch.__version__`.
    pub version: String,
}

impl Torch {
    /// The Python of `ADAMLAB_TORCH_PYTHON`, else `python3`, if it imports torch; else one line
    /// saying why not.
    pub fn find() -> Result<Self, String> {
        let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".to_string());
        let output = Command::new(&python)
            .args(["-c", "import torch; print(torch.__version__)"])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("no PyTorch rows: cannot run `{python}` ({err}); set {PYTHON_ENV}"))?;
        if !output.status.success() {
            return Err(format!(
                "no PyTorch rows: `{python}` cannot import torch; set {PYTHON_ENV} to a Python that can"
            ));
        }
        Ok(Self {
            python,
            version: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        })
    }

    /// Runs the script on `config`, passing each record to `finish` (to derive figures) and then
    /// to `observer` as it arrives. Its progress lines go to `observer` as notes.
    pub fn run(
        &self,
        config: &Json,
        finish: &dyn Fn(&mut Record),
        observer: &mut dyn Observer,
    ) -> Result<Vec<Record>, BenchError> {
        // A folder of its own: the script and the models it imports.
        let dir = std::env::temp_dir().join(format!("adamlab-torch-bench-{}", std::process::id()));
        let script = dir.join("torch_bench.py");
        let io = |path: &std::path::Path, e: std::io::Error| BenchError::Torch(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        std::fs::write(&script, SCRIPT).map_err(|e| io(&script, e))?;
        std::fs::write(dir.join("models.py"), MODELS).map_err(|e| io(&dir, e))?;
        let mut child = Command::new(&self.python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::Torch(format!("cannot run {}: {e}", self.python)))?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(config.to_string().as_bytes())
            .map_err(|e| BenchError::Torch(e.to_string()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let errors = std::thread::spawn(move || {
            BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>()
        });
        let mut records = Vec::new();
        for line in BufReader::new(child.stdout.take().expect("stdout is piped")).lines() {
            let line = line.map_err(|e| BenchError::Torch(e.to_string()))?;
            let mut record: Record = serde_json::from_str(&line)
                .map_err(|e| BenchError::Torch(format!("unreadable record `{line}`: {e}")))?;
            finish(&mut record);
            observer.measured(&record);
            records.push(record);
        }
        let status = child.wait().map_err(|e| BenchError::Torch(e.to_string()))?;
        let stderr = errors.join().unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        for line in stderr.iter().filter(|l| l.contains("skipped")) {
            observer.note(line);
        }
        if !status.success() {
            let last = stderr.last().cloned().unwrap_or_else(|| status.to_string());
            return Err(BenchError::Torch(last));
        }
        Ok(records)
    }
}

/// PyTorch's rows for `config`: every optimizer with a torch.optim reference, at every size, for
/// each of torch's implementations. Bytes per parameter come from adamlab's rows of the same spec
/// in `ours` (the least bytes are the algorithm's, not the implementation's).
pub fn step(
    torch: &Torch,
    config: &crate::step::StepConfig,
    threads: usize,
    ours: &[Record],
    triad_gbps: Option<f64>,
    observer: &mut dyn Observer,
) -> Result<Vec<Record>, BenchError> {
    let optimizers = optimizers_json(&config.optimizers);
    if optimizers.is_empty() {
        observer.note("no PyTorch rows: none of the optimizers has a torch.optim reference");
        return Ok(Vec::new());
    }
    let script_config = json!({
        "bench": "step",
        "devices": torch_devices(config.targets.iter().map(|t| t.backend)),
        "threads": threads,
        "warmup": config.warmup,
        "repeats": config.repeats,
        "optimizers": optimizers,
        "params": config.params,
        "tensors": config.tensors,
    });
    let finish = |record: &mut Record| {
        let bytes = ours
            .iter()
            .find(|r| r.optimizer == record.optimizer && r.bytes_per_param.is_some())
            .and_then(|r| r.bytes_per_param);
        if let Some(bytes) = bytes {
            // CUDA's memory is not the host's: no fraction of the host triad there.
            let triad = triad_gbps.filter(|_| record.backend == "torch");
            crate::step::derive_bandwidth(record, bytes, triad);
        }
    };
    observer.started("PyTorch");
    torch.run(&script_config, &finish, observer)
}

/// PyTorch's rows for `config`: the same models, optimizers (those with a torch.optim
/// reference), batch sizes and thread count.
pub fn train(
    torch: &Torch,
    config: &crate::train::TrainConfig,
    threads: usize,
    observer: &mut dyn Observer,
) -> Result<Vec<Record>, BenchError> {
    let optimizers = optimizers_json(&config.optimizers);
    if optimizers.is_empty() {
        observer.note("no PyTorch rows: none of the optimizers has a torch.optim reference");
        return Ok(Vec::new());
    }
    let models: Vec<&str> = config.models.iter().map(|m| m.name()).collect();
    let script_config = json!({
        "bench": "train",
        "devices": torch_devices(config.targets.iter().map(|t| t.backend)),
        "threads": threads,
        "warmup": config.warmup,
        "repeats": config.repeats,
        "optimizers": optimizers,
        "models": models,
        "batch_sizes": config.batch_sizes,
    });
    observer.started("PyTorch");
    torch.run(&script_config, &|_| {}, observer)
}

/// The torch devices that match `backends`: the CPU for the CPU backends, CUDA for wgpu (the
/// script skips CUDA, and says so, where torch has none). A GPU run compared with torch on the
/// CPU, or the reverse, would put two machines' numbers in one ratio.
pub fn torch_devices(backends: impl IntoIterator<Item = BackendKind>) -> Vec<&'static str> {
    let (mut cpu, mut gpu) = (false, false);
    for backend in backends {
        match backend {
            BackendKind::Ndarray | BackendKind::Flex => cpu = true,
            BackendKind::Wgpu | BackendKind::Cuda => gpu = true,
        }
    }
    [(cpu, "cpu"), (gpu, "cuda")].into_iter().filter(|&(wanted, _)| wanted).map(|(_, d)| d).collect()
}

/// The Python modules whose optimizer classes the script runs: torch's own, and bitsandbytes'
/// (its 8-bit optimizers run on the CPU too, where the script's Python can import it).
pub const REFERENCE_MODULES: [&str; 2] = ["torch.optim", "bitsandbytes.optim"];

/// The Python module and class of a spec's reference, `torch.optim.NAME (…)` → (`torch.optim`,
/// `NAME`), `bitsandbytes.optim.NAME (…)` likewise; `None` for a reference in no module of
/// [`REFERENCE_MODULES`].
pub fn reference_class(spec: &OptimizerSpec) -> Option<(&'static str, &'static str)> {
    let reference = spec.entry().reference;
    let path = reference.split_whitespace().next()?;
    REFERENCE_MODULES.into_iter().find_map(|module| {
        let name = path.strip_prefix(module)?.strip_prefix('.')?;
        let identifier = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        identifier.then_some((module, name))
    })
}

/// Keywords of adamlab's own that no torch class takes: specs that differ only in them are one
/// PyTorch measurement (`adamw(state_dtype=bf16)` is torch's f32 AdamW, measured once, as
/// `adamw`), and reports compare each of them with it. (`bf16_stochastic_round` and its `seed`
/// act on bfloat16 parameters only; the benches step f32 ones.)
pub(crate) const ADAMLAB_ONLY: [&str; 4] = ["fused", "state_dtype", "bf16_stochastic_round", "seed"];

/// The optimizers of `specs` that PyTorch has, as the script's configuration lists them.
///
/// adamlab's `fused` keyword chooses adamlab's step, not torch's (PyTorch's side always runs its
/// fused, foreach and for-loop steps): it is not passed on, and specs that differ only by it (`adam`
/// and `adam(fused=false)`) give PyTorch's rows once; so does `state_dtype`. The rows are labelled
/// with what PyTorch ran: the spec without those keywords (`adam(amsgrad=true, fused=false)` →
/// `adam(amsgrad=true)`).
pub fn optimizers_json(specs: &[OptimizerSpec]) -> Vec<Json> {
    let mut seen: Vec<(&'static str, Map<String, Json>)> = Vec::new();
    specs
        .iter()
        .filter_map(|spec| {
            let (module, class) = reference_class(spec)?;
            let kwargs: Map<String, Json> = spec
                .args()
                .values()
                .iter()
                .filter(|(name, _)| !ADAMLAB_ONLY.contains(name))
                .map(|(name, value)| (name.to_string(), to_json(value)))
                .collect();
            if seen.iter().any(|(c, k)| *c == class && *k == kwargs) {
                return None;
            }
            seen.push((class, kwargs.clone()));
            Some(json!({
                "spec": crate::report::configuration(&spec.to_string()),
                "reference": spec.entry().reference,
                "module": module,
                "class": class,
                "kwargs": kwargs,
            }))
        })
        .collect()
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::Number(x) => json!(x),
        Value::Bool(b) => json!(b),
        Value::Tuple(values) => Json::Array(values.iter().map(to_json).collect()),
        Value::None => Json::Null,
        Value::Name(name) => json!(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_runs_on_the_device_kind_of_the_backends() {
        use BackendKind::*;
        assert_eq!(torch_devices([Flex, Ndarray]), ["cpu"]);
        assert_eq!(torch_devices([Wgpu]), ["cuda"]);
        assert_eq!(torch_devices([Wgpu, Flex]), ["cpu", "cuda"]);
        assert!(torch_devices([]).is_empty());
    }

    #[test]
    fn reference_classes_come_from_the_registry_reference() {
        for entry in adamlab_optim::registry() {
            let spec = OptimizerSpec::parse(entry.name).unwrap();
            let expected = ["torch.optim.", "bitsandbytes.optim."].iter().any(|m| entry.reference.starts_with(m));
            assert_eq!(reference_class(&spec).is_some(), expected, "{}", entry.name);
        }
        let spec = OptimizerSpec::parse("adamw8bit").unwrap();
        assert_eq!(reference_class(&spec), Some(("bitsandbytes.optim", "AdamW8bit")));
        assert_eq!(optimizers_json(&[spec])[0]["module"], "bitsandbytes.optim");
    }

    #[test]
    fn the_configuration_carries_every_keyword_with_python_values() {
        let specs = [OptimizerSpec::parse("adamw(betas=(0.8, 0.9), amsgrad=true)").unwrap()];
        let json = optimizers_json(&specs);
        assert_eq!(json.len(), 1);
        assert_eq!(json[0]["spec"], "adamw(betas=(0.8, 0.9), amsgrad=true)");
        assert_eq!(json[0]["kwargs"]["betas"], json!([0.8, 0.9]));
        assert_eq!(json[0]["kwargs"]["amsgrad"], json!(true));
        assert_eq!(json[0]["kwargs"]["lr"], json!(0.001));
    }

    #[test]
    fn specs_that_differ_only_in_the_fused_switch_are_timed_once_by_pytorch() {
        let specs = ["adam", "adam(fused=false)", "adam(amsgrad=true, fused=false)", "sgd"]
            .map(|s| OptimizerSpec::parse(s).unwrap());
        let json = optimizers_json(&specs);
        let listed: Vec<_> = json.iter().map(|o| o["spec"].as_str().unwrap()).collect();
        assert_eq!(listed, ["adam", "adam(amsgrad=true)", "sgd"]);
        assert!(json.iter().all(|o| o["kwargs"].get("fused").is_none()), "{json:?}");
        let specs = ["adamw", "adamw(state_dtype=bf16)"].map(|s| OptimizerSpec::parse(s).unwrap());
        let listed: Vec<_> = optimizers_json(&specs).iter().map(|o| o["spec"].as_str().unwrap().to_string()).collect();
        assert_eq!(listed, ["adamw"], "bfloat16 moments are adamlab's: torch's AdamW is timed once");
        // Alone, it still gives torch's rows the name of what torch ran.
        let alone = [OptimizerSpec::parse("adamw(state_dtype=bf16)").unwrap()];
        assert_eq!(optimizers_json(&alone)[0]["spec"], "adamw");
    }

    #[test]
    fn the_script_is_the_repositorys() {
        assert!(SCRIPT.contains("def bench_step(config)") && SCRIPT.contains("torch-fused"));
        for model in ["class CharGPT", "class SoftmaxRegression", "class Rosenbrock", "class Quadratic"] {
            assert!(MODELS.contains(model), "{model}");
        }
    }
}
