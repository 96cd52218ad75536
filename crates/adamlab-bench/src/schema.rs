//! The JSON that every bench writes and `adamlab bench report` reads: one file per run, holding
//! the command, the machine and one record per measurement. `docs/bench-schema.md` documents
//! every field; [`SCHEMA_VERSION`] changes whenever a field changes meaning or is removed
//! (adding an optional field does not change it).

use crate::load::SideLoad;
use crate::machine::Machine;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The value of the `schema` field: what kind of file this is.
pub const SCHEMA_NAME: &str = "adamlab-bench";
/// The version of the schema this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;
/// The most a bench file may hold: 64 MiB, some hundred thousand records. A larger file, a device
/// or a FIFO is refused before it is read.
pub const MAX_BENCH_FILE_BYTES: adamlab_data::files::Bound =
    adamlab_data::files::Bound::new(64 << 20, "a bench file");

/// One bench run: what was run, where, and every measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchFile {
    /// Always [`SCHEMA_NAME`].
    pub schema: String,
    /// [`SCHEMA_VERSION`] of the writer.
    pub version: u32,
    /// The command line that produced the file, as it would be typed (`adamlab bench step …`).
    pub command: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// One record per measurement, in the order they were taken.
    pub records: Vec<Record>,
    /// The machine's load over each side of the run (adamlab's measurements, PyTorch's), in the
    /// order they ran ([`crate::load`]); empty in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load: Vec<SideLoad>,
}

/// What a record measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bench {
    /// The host's streaming bandwidth: `a = b + s·c` over f32 arrays.
    Triad,
    /// One optimizer step over `params` parameters in `tensors` tensors.
    Step,
    /// One training step of a model on a batch: forward, backward, optimizer step.
    Train,
    /// One epoch of the optimizer shoot-out: real training, then test accuracy and loss.
    Optimizers,
}

impl Bench {
    /// The name used in the JSON and in `adamlab bench NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Triad => "triad",
            Self::Step => "step",
            Self::Train => "train",
            Self::Optimizers => "optimizers",
        }
    }
}

/// One measurement. Fields that do not apply to its bench are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What was measured.
    pub bench: Bench,
    /// `ndarray`, `flex`, `wgpu`; `torch` for PyTorch's rows; `host` for the triad.
    pub backend: String,
    /// The device in words: `flex (CPU)`, `wgpu (llvmpipe … on Vulkan)`, `cpu (2 threads)`.
    pub device: String,
    /// The optimizer spec, as `--optimizer` takes it (`adam`, `adamw(weight_decay=0.1)`).
    pub optimizer: Option<String>,
    /// The registry's reference implementation of the optimizer (`torch.optim.Adam (torch 2.15)`).
    pub reference: Option<String>,
    /// Whose code ran: `adamlab-fused`, `adamlab-reference` (the same optimizer with
    /// `fused=false`), `adamlab` (an optimizer without a kernel), `burn`, `torch-fused`,
    /// `torch-foreach`, `torch-forloop`.
    pub implementation: Option<String>,
    /// The model trained: `cnn` or `mlp`.
    pub model: Option<String>,
    /// Parameters updated per step.
    pub params: Option<u64>,
    /// Tensors the parameters are split into.
    pub tensors: Option<u64>,
    /// Images (or samples) per step.
    pub batch_size: Option<u64>,
    /// Untimed steps before the timed ones.
    pub warmup: Option<u64>,
    /// Timed steps.
    pub repeats: Option<u64>,
    /// Median time of one step (or one triad), milliseconds.
    pub median_ms: Option<f64>,
    /// Fastest timed step, milliseconds.
    pub min_ms: Option<f64>,
    /// Slowest timed step, milliseconds.
    pub max_ms: Option<f64>,
    /// The least bytes a step must move per parameter (see docs/bench-schema.md).
    pub bytes_per_param: Option<u64>,
    /// `bytes_per_param · params` over `median_ms`, GB/s (for the triad: its own bandwidth).
    pub bandwidth_gbps: Option<f64>,
    /// `bandwidth_gbps` as a fraction of the triad's, measured in the same run.
    pub bandwidth_fraction: Option<f64>,
    /// `batch_size` over the median training step.
    pub images_per_second: Option<f64>,
    /// Median forward pass (loss included), milliseconds.
    pub forward_ms: Option<f64>,
    /// Median backward pass, milliseconds.
    pub backward_ms: Option<f64>,
    /// Median optimizer step, milliseconds.
    pub step_ms: Option<f64>,
    /// Peak resident memory of the process during the measurement, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Step: the peak resident memory during the timed steps above the resident memory just
    /// before them (parameters, gradients and state already allocated), MiB: what a step
    /// allocates on top of what it must keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_extra_mib: Option<f64>,
    /// Seed of the weights and the data order (shoot-out).
    pub seed: Option<u64>,
    /// Learning rate used.
    pub lr: Option<f64>,
    /// The epoch this record closes (1-based, shoot-out).
    pub epoch: Option<u64>,
    /// Mean training loss over the epoch.
    pub train_loss: Option<f64>,
    /// Test loss after the epoch.
    pub test_loss: Option<f64>,
    /// Test accuracy after the epoch, as a fraction.
    pub test_accuracy: Option<f64>,
    /// Wall-clock seconds from the start of the run to the end of this epoch's evaluation.
    pub wall_s: Option<f64>,
    /// Anything the numbers need said: a diverged run, a skipped measurement.
    pub note: Option<String>,
    /// Shoot-out: `tune` (a run of the learning-rate grid, scored on the validation split) or
    /// `run` (a run at the tuned rate, evaluated on the test split as it goes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Shoot-out: optimizer steps taken when the metric was measured (0: the initial weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// Shoot-out: what `metric` is (`test accuracy`, `validation loss`, `distance to the
    /// optimum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Shoot-out: the workload's metric at `step` (absent when it is not finite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<f64>,
    /// Shoot-out: seconds spent in training steps up to `step` (evaluations not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_s: Option<f64>,
    /// Shoot-out: bytes of the optimizer's state after one step, serialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_bytes: Option<u64>,
}

impl Record {
    /// A record of `bench` on `backend`/`device` with every other field empty.
    pub fn new(bench: Bench, backend: impl Into<String>, device: impl Into<String>) -> Self {
        Self {
            bench,
            backend: backend.into(),
            device: device.into(),
            optimizer: None,
            reference: None,
            implementation: None,
            model: None,
            params: None,
            tensors: None,
            batch_size: None,
            warmup: None,
            repeats: None,
            median_ms: None,
            min_ms: None,
            max_ms: None,
            bytes_per_param: None,
            bandwidth_gbps: None,
            bandwidth_fraction: None,
            images_per_second: None,
            forward_ms: None,
            backward_ms: None,
            step_ms: None,
            peak_rss_mib: None,
            step_extra_mib: None,
            seed: None,
            lr: None,
            epoch: None,
            train_loss: None,
            test_loss: None,
            test_accuracy: None,
            wall_s: None,
            note: None,
            phase: None,
            step: None,
            metric_name: None,
            metric: None,
            train_s: None,
            state_bytes: None,
        }
    }

    /// Sets the timing fields from a summary of milliseconds.
    pub fn with_timing(mut self, summary: &crate::stats::Summary, warmup: usize) -> Self {
        self.median_ms = Some(summary.median);
        self.min_ms = Some(summary.min);
        self.max_ms = Some(summary.max);
        self.repeats = Some(summary.count as u64);
        self.warmup = Some(warmup as u64);
        self
    }
}

/// A file that cannot be read as a bench file. One line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not JSON of this schema.
    #[error("{path}: not an adamlab bench file: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file was written by a newer schema.
    #[error("{path}: schema version {found} is newer than this build reads ({SCHEMA_VERSION}): update adamlab")]
    TooNew {
        /// The file.
        path: String,
        /// Its version.
        found: u32,
    },
}

impl BenchFile {
    /// A file of this build's schema version, with the load of each side of its run.
    pub fn new(command: String, machine: Machine, records: Vec<Record>, load: Vec<SideLoad>) -> Self {
        Self {
            schema: SCHEMA_NAME.to_string(),
            version: SCHEMA_VERSION,
            command,
            machine,
            records,
            load,
        }
    }

    /// Parses a file's text, checking its schema name and version.
    pub fn from_json(text: &str, path: &str) -> Result<Self, SchemaError> {
        let invalid = |message: String| SchemaError::Invalid {
            path: path.to_string(),
            message,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if value.get("schema").and_then(|s| s.as_str()) != Some(SCHEMA_NAME) {
            return Err(invalid(format!("its `schema` field is not \"{SCHEMA_NAME}\"")));
        }
        let found = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if found > SCHEMA_VERSION {
            return Err(SchemaError::TooNew {
                path: path.to_string(),
                found,
            });
        }
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
    }

    /// Reads and checks a file: a regular file of at most [`MAX_BENCH_FILE_BYTES`].
    pub fn read(path: &Path) -> Result<Self, SchemaError> {
        let text = adamlab_data::files::read_to_string(path, MAX_BENCH_FILE_BYTES).map_err(|source| SchemaError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Writes the file as pretty-printed JSON.
    pub fn write(&self, path: &Path) -> Result<(), SchemaError> {
        let text = serde_json::to_string_pretty(self).expect("bench files serialise");
        std::fs::write(path, text + "\n").map_err(|source| SchemaError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    fn sample() -> BenchFile {
        let mut step = Record::new(Bench::Step, "flex", "flex (CPU)")
            .with_timing(&Summary::of(&[10.0, 12.0, 11.0]).unwrap(), 3);
        step.optimizer = Some("adamw(betas=(0.8, 0.9))".into());
        step.implementation = Some("adamlab".into());
        step.params = Some(1_000_000);
        step.tensors = Some(1);
        step.bytes_per_param = Some(28);
        step.bandwidth_gbps = Some(2.545_454_5);
        let mut epoch = Record::new(Bench::Optimizers, "ndarray", "ndarray (CPU)");
        epoch.test_accuracy = Some(0.8767);
        epoch.note = Some("a note with \"quotes\" and ünïcode".into());
        let load = crate::load::SideLoad {
            side: crate::load::TORCH.into(),
            round: 2,
            seconds: 41.5,
            load_average_start: Some([7.9, 6.5, 6.0]),
            load_average_end: Some([8.2, 6.6, 6.1]),
            cpus: Some(2),
            other_cores: Some(1.3),
            own_cores: Some(0.7),
            busy: Some(true),
        };
        BenchFile::new("adamlab bench step".into(), Machine::example(), vec![step, epoch], vec![load])
    }

    #[test]
    fn a_file_survives_a_json_round_trip_unchanged() {
        let file = sample();
        let text = serde_json::to_string_pretty(&file).unwrap();
        assert_eq!(BenchFile::from_json(&text, "mem").unwrap(), file);
    }

    #[test]
    fn a_file_round_trips_through_the_disk() {
        let path = std::env::temp_dir().join(format!("adamlab-bench-roundtrip-{}.json", std::process::id()));
        let file = sample();
        file.write(&path).unwrap();
        let back = BenchFile::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn absent_optional_fields_read_as_null_and_unknown_ones_are_ignored() {
        let text = r#"{"schema":"adamlab-bench","version":1,"command":"c","machine":MACHINE,
            "records":[{"bench":"triad","backend":"host","device":"cpu","median_ms":1.5,"future_field":3}]}"#
            .replace("MACHINE", &serde_json::to_string(&Machine::example()).unwrap());
        let file = BenchFile::from_json(&text, "mem").unwrap();
        assert_eq!(file.records[0].median_ms, Some(1.5));
        assert_eq!(file.records[0].optimizer, None);
    }

    #[test]
    fn files_written_before_the_load_was_recorded_read_with_none_and_say_so() {
        let file = BenchFile::from_json(include_str!("../tests/data/train.json"), "train.json").unwrap();
        assert!(!file.records.is_empty());
        assert!(file.load.is_empty());
        assert_eq!(crate::load::verdict(&file.load), crate::load::Verdict::NotRecorded);
        // And a file without load writes no `load` field, as before.
        let text = serde_json::to_string(&file).unwrap();
        assert!(!text.contains("\"load\""), "{text}");
    }

    #[test]
    fn files_of_another_schema_or_a_newer_version_are_refused_naming_the_file() {
        let err = BenchFile::from_json(r#"{"schema":"other"}"#, "x.json").unwrap_err().to_string();
        assert!(err.starts_with("x.json: not an adamlab bench file"), "{err}");
        let err = BenchFile::from_json(r#"{"schema":"adamlab-bench","version":99}"#, "y.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 99 is newer"), "{err}");
        assert!(BenchFile::from_json("not json", "z.json").is_err());
    }
}
