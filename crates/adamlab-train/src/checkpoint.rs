//! Checkpoints of a training run: the model (with its parameter ids, which key the optimizer's
//! state), the optimizer's state, and where the run stood.
//!
//! Layout of a checkpoint directory:
//!
//! ```text
//! DIR/epoch-0001/{model.bpk, optimizer.bpk, state.json}
//! DIR/latest            the name of the newest complete checkpoint
//! ```
//!
//! Writes are atomic: a checkpoint is written under `epoch-NNNN.tmp/` and renamed into place
//! once complete, then `latest` is replaced through a rename. A run killed at any moment leaves
//! `latest` naming a complete checkpoint (or no `latest` at all before the first one).

use crate::classifier::RunConfig;
use adamlab_models::Cnn;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a checkpoint could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// `--resume` without `--checkpoint-dir`.
    #[error("--resume needs --checkpoint-dir: the directory to resume from")]
    NoDirectory,
    /// The directory holds no complete checkpoint.
    #[error("{0}: no checkpoint to resume from (no `latest` file)")]
    NoCheckpoint(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A checkpoint file is unreadable.
    #[error("{path}: unreadable checkpoint ({message})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint was written by a run with other settings.
    #[error(
        "{path}: the checkpoint comes from a run with {field} = {saved}, this run has {current}; \
         resume with the same settings"
    )]
    Mismatch {
        /// The checkpoint's state file.
        path: PathBuf,
        /// The setting that differs.
        field: &'static str,
        /// The checkpoint's value.
        saved: String,
        /// This run's value.
        current: String,
    },
}

/// The settings a resumed run must share with the run it continues (everything that shapes
/// the trajectory, except the number of epochs, which a resume may extend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// Images per step.
    pub batch_size: usize,
    /// The run's seed.
    pub seed: u64,
    /// Whether epochs are shuffled.
    pub shuffle: bool,
    /// Number of training images (after `--limit-train`).
    pub train_images: usize,
    /// The optimizer and its hyper-parameters.
    pub optimizer: String,
}

impl RunIdentity {
    /// The identity of a run with `config` over `train_images` images.
    pub fn of(config: &RunConfig, train_images: usize) -> Self {
        Self {
            batch_size: config.batch_size,
            seed: config.seed,
            shuffle: config.shuffle,
            train_images,
            optimizer: format!("{:?}", config.optimizer),
        }
    }

    fn first_difference(&self, other: &Self) -> Option<(&'static str, String, String)> {
        let fields = [
            ("batch size", self.batch_size.to_string(), other.batch_size.to_string()),
            ("seed", self.seed.to_string(), other.seed.to_string()),
            ("shuffle", self.shuffle.to_string(), other.shuffle.to_string()),
            ("training images", self.train_images.to_string(), other.train_images.to_string()),
            ("optimizer", self.optimizer.clone(), other.optimizer.clone()),
        ];
        fields.into_iter().find(|(_, a, b)| a != b)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    epoch: usize,
    step: usize,
    identity: RunIdentity,
}

/// A restored checkpoint.
pub struct Checkpoint {
    /// The model, with the parameter ids the optimizer's state refers to.
    pub model: Cnn,
    /// The optimizer with its state.
    pub optimizer: ModuleOptimizer,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: usize,
}

/// Writes and reads the checkpoints of one directory.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    dir: PathBuf,
}

const LATEST: &str = "latest";
const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "state.json";

impl Checkpointer {
    /// Checkpoints in `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves a checkpoint after `epoch`, then points `latest` at it and removes older ones.
    pub fn save(
        &self,
        model: &Cnn,
        optimizer: &ModuleOptimizer,
        identity: &RunIdentity,
        epoch: usize,
        step: usize,
    ) -> Result<(), CheckpointError> {
        let name = format!("epoch-{epoch:04}");
        let tmp = self.dir.join(format!("{name}.tmp"));
        let done = self.dir.join(&name);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let corrupt = |path: &Path| {
            let path = path.to_path_buf();
            move |err: burn::store::RecordError| CheckpointError::Corrupt {
                path,
                message: err.to_string(),
            }
        };
        let model_path = tmp.join(MODEL);
        model
            .clone()
            .into_record()
            .save(&model_path)
            .map_err(corrupt(&model_path))?;
        let optimizer_path = tmp.join(OPTIMIZER);
        optimizer.save(&optimizer_path).map_err(corrupt(&optimizer_path))?;
        let state = State {
            epoch,
            step,
            identity: identity.clone(),
        };
        let state_path = tmp.join(STATE);
        let json = serde_json::to_vec_pretty(&state).expect("the state serialises");
        std::fs::write(&state_path, json).map_err(io(&state_path))?;
        for file in [&model_path, &optimizer_path, &state_path] {
            std::fs::File::open(file)
                .and_then(|f| f.sync_all())
                .map_err(io(file))?;
        }
        if done.exists() {
            std::fs::remove_dir_all(&done).map_err(io(&done))?;
        }
        std::fs::rename(&tmp, &done).map_err(io(&done))?;
        let previous = self.latest_name();
        adamlab_models::pytorch::write_atomically(&self.dir.join(LATEST), name.as_bytes())
            .map_err(|err| CheckpointError::Corrupt {
                path: self.dir.join(LATEST),
                message: err.to_string(),
            })?;
        if let Some(previous) = previous.filter(|p| *p != name) {
            // The old checkpoint is no longer referenced; failing to remove it loses nothing.
            let _ = std::fs::remove_dir_all(self.dir.join(previous));
        }
        Ok(())
    }

    fn latest_name(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(LATEST))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Loads the newest complete checkpoint into `template` (a freshly built model) and
    /// `optimizer` (a fresh one, as configured), after checking that it comes from a run with
    /// the same `identity`.
    pub fn load_latest(
        &self,
        template: Cnn,
        optimizer: ModuleOptimizer,
        identity: &RunIdentity,
    ) -> Result<Checkpoint, CheckpointError> {
        let name = self
            .latest_name()
            .ok_or_else(|| CheckpointError::NoCheckpoint(self.dir.clone()))?;
        let dir = self.dir.join(name);
        let state_path = dir.join(STATE);
        let bytes = std::fs::read(&state_path).map_err(|source| CheckpointError::Io {
            path: state_path.clone(),
            source,
        })?;
        let state: State =
            serde_json::from_slice(&bytes).map_err(|err| CheckpointError::Corrupt {
                path: state_path.clone(),
                message: err.to_string(),
            })?;
        if let Some((field, saved, current)) = state.identity.first_difference(identity) {
            return Err(CheckpointError::Mismatch {
                path: state_path,
                field,
                saved,
                current,
            });
        }
        let corrupt = |path: PathBuf| {
            move |err: burn::store::RecordError| CheckpointError::Corrupt {
                path,
                message: err.to_string(),
            }
        };
        let model_path = dir.join(MODEL);
        let record = ModuleRecord::load(&model_path).map_err(corrupt(model_path.clone()))?;
        let model = template
            .try_load_record(record)
            .map_err(corrupt(model_path))?;
        let optimizer_path = dir.join(OPTIMIZER);
        let optimizer = optimizer
            .load(&optimizer_path)
            .map_err(corrupt(optimizer_path))?;
        Ok(Checkpoint {
            model,
            optimizer,
            epoch: state.epoch,
            step: state.step,
        })
    }
}
