//! Checkpoints of a training run: the model (with its parameter ids, which key the optimizer's
//! state), the optimizer's state, and where the run stood.
//!
//! Layout of a checkpoint directory:
//!
//! ```text
//! DIR/epoch-0002/                 after epoch 2
//! DIR/epoch-0003-batch-000040/    40 batches into epoch 3 (checkpoints every N steps)
//!     model.bpk, optimizer.bpk    burn's records
//!     state.json                  progress, the run's identity, the files' checksums
//! DIR/latest                      the name of the newest complete checkpoint
//! DIR/lock                        the pid of the run using the directory
//! ```
//!
//! What this module promises:
//!
//! - **Atomic writes.** A checkpoint is written under `NAME.tmp/`, synced, and renamed into
//!   place once complete; then `latest` is replaced through a rename. A run killed at any moment
//!   leaves `latest` naming a complete checkpoint (or no `latest` before the first one).
//! - **Nothing outside the directory is touched.** `latest` must hold one of the names above,
//!   naming a real directory inside DIR; anything else is an error naming the file. Only entries
//!   with those names (and their `.tmp` forms) are ever removed, by an explicit policy: a run
//!   keeps its newest `keep` checkpoints.
//! - **One run at a time.** [`Checkpointer::open`] takes an exclusive lock on `DIR/lock` (an
//!   `flock`, released by the kernel when the process ends, kill -9 included) and writes its pid
//!   there, so a second run is refused with the holder's pid. The run removes `DIR/lock` when
//!   the [`Checkpointer`] is dropped (the run ended, however); a `lock` file that a killed run
//!   left is stale by construction, since no process holds its `flock`, and the next run takes
//!   it over. A run that locked a file which was removed meanwhile (its holder ended between our
//!   open and our lock) sees that the path no longer names that file, and starts over.
//! - **Integrity.** `state.json` records the size and CRC-32 of both records, the identity of
//!   the run (model, optimizer spec, training controls, seed, batch size, shuffling, the training
//!   data's checksum)
//!   and a checksum of itself; a resume refuses a damaged file or another run's checkpoint with
//!   one line naming what differs, and checks that the counters agree with each other.

use crate::controls::{ControlsSpec, SwaPhase};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why a checkpoint directory or checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A resume was asked for without a checkpoint directory.
    #[error("resuming needs a checkpoint directory to resume from")]
    NoDirectory,
    /// The directory holds no complete checkpoint.
    #[error("{0}: no checkpoint to resume from")]
    NoCheckpoint(PathBuf),
    /// The checkpoint directory exists but is a file.
    #[error("{0}: not a directory (a checkpoint directory is created if missing)")]
    NotADirectory(PathBuf),
    /// Another run holds the directory's lock.
    #[error("{dir} is in use by another adamlab run ({holder})")]
    Locked {
        /// The checkpoint directory.
        dir: PathBuf,
        /// `pid 1234`, as the lock file says.
        holder: String,
    },
    /// A new run was pointed at the checkpoints of an earlier one.
    #[error("{dir} holds the checkpoints of an earlier run (latest: {latest})")]
    HoldsCheckpoints {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The newest checkpoint there.
        latest: String,
    },
    /// `latest` does not hold the name of one of the directory's checkpoints.
    #[error(
        "{path}: does not name a checkpoint of this directory (it holds {found}; a name such as \
         epoch-0002 or epoch-0003-batch-000040 is expected)"
    )]
    InvalidLatest {
        /// The `latest` file.
        path: PathBuf,
        /// Its contents, quoted and escaped.
        found: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A checkpoint file is damaged or unreadable.
    #[error("{path}: damaged checkpoint ({message})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, on one line.
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

/// The settings a resumed run must share with the run it continues: everything that shapes the
/// trajectory, except the number of epochs, which a resume may extend. The caller names the model
/// and the data; [`crate::fit`] fills in the rest from the run's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The model trained, with its configuration where it is not the default (`cnn`,
    /// `residual-mlp(width=64, blocks=2)`).
    pub model: String,
    /// The optimizer and every hyper-parameter, the learning rate included.
    pub optimizer: String,
    /// The param groups, learning-rate schedule and gradient clipping
    /// ([`ControlsSpec::describe_controls`]), or `none`. Checkpoints written before the controls
    /// existed read as `none`, which they had.
    #[serde(default = "no_controls")]
    pub controls: String,
    /// The run's seed.
    pub seed: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Whether epochs are shuffled.
    pub shuffle: bool,
    /// Number of training examples (after any limit). Named for the article's images, which
    /// checkpoints of earlier versions counted.
    pub train_images: usize,
    /// A fingerprint of the training data (`crc32 1a2b3c4d` of the images and labels): other data
    /// with the same number of examples is another run.
    pub train_data: String,
}

impl RunIdentity {
    /// The identity of a run of `model` (its name and configuration) trained with `controls`, on
    /// `examples` training examples whose contents `fingerprint` identifies.
    pub fn new(
        model: impl Into<String>,
        controls: &ControlsSpec,
        (seed, batch_size, shuffle): (u64, usize, bool),
        examples: usize,
        fingerprint: impl Into<String>,
    ) -> Self {
        Self {
            model: model.into(),
            optimizer: controls.optimizer.canonical(),
            controls: controls.describe_controls().unwrap_or_else(no_controls),
            seed,
            batch_size,
            shuffle,
            train_images: examples,
            train_data: fingerprint.into(),
        }
    }

    fn first_difference(&self, other: &Self) -> Option<(&'static str, String, String)> {
        let fields = [
            ("model", self.model.clone(), other.model.clone()),
            ("optimizer", self.optimizer.clone(), other.optimizer.clone()),
            (
                "training controls",
                self.controls.clone(),
                other.controls.clone(),
            ),
            ("seed", self.seed.to_string(), other.seed.to_string()),
            (
                "batch size",
                self.batch_size.to_string(),
                other.batch_size.to_string(),
            ),
            (
                "shuffle",
                self.shuffle.to_string(),
                other.shuffle.to_string(),
            ),
            (
                "training examples",
                self.train_images.to_string(),
                other.train_images.to_string(),
            ),
            (
                "training data",
                self.train_data.clone(),
                other.train_data.clone(),
            ),
        ];
        fields.into_iter().find(|(_, a, b)| a != b)
    }
}

fn no_controls() -> String {
    "none".into()
}

/// Where a run stands. A checkpoint taken here continues exactly where the run would have.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// Batches done in the epoch in progress (0 at an epoch's end).
    pub batch: usize,
    /// Optimizer steps taken over the whole run.
    pub step: usize,
    /// Sum of the step losses of the epoch in progress (0 at an epoch's end): a resumed epoch
    /// reports the same mean training loss as the uninterrupted one.
    pub epoch_loss_sum: f64,
    /// Steps skipped over the whole run, their loss or gradients not finite (counted in `step`;
    /// they did not move the optimizer or the schedule).
    pub skipped: usize,
    /// Of those, the ones in the epoch in progress (0 at an epoch's end).
    pub epoch_skipped: usize,
}

/// A restored checkpoint.
pub struct Checkpoint<M> {
    /// The model, with the parameter ids the optimizer's state refers to.
    pub model: M,
    /// The further copies of the model the run keeps (its weight EMA, Lookahead's slow weights),
    /// by name, as the loader asked for them.
    pub extras: BTreeMap<&'static str, M>,
    /// The epoch metrics a `reduce-on-plateau` schedule was fed, oldest first (else empty).
    pub metrics: Vec<f64>,
    /// SWA's learning rates, once averaging had begun.
    pub swa: Option<SwaPhase>,
    /// The optimizer with its state.
    pub optimizer: ModuleOptimizer,
    /// Where the run stood.
    pub progress: Progress,
}

/// How a run uses its checkpoint directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new run: the directory must not hold another run's checkpoints.
    Fresh,
    /// A new run that replaces the checkpoints the directory holds.
    Overwrite,
    /// Continue from the directory's latest checkpoint.
    Resume,
}

/// The name of a checkpoint: `epoch-0002` after epoch 2, `epoch-0003-batch-000040` 40 batches
/// into epoch 3. Ordered as the run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Name {
    /// Epochs completed.
    epochs_done: usize,
    /// Batches done in the next epoch.
    batch: usize,
}

impl Name {
    fn of(progress: &Progress) -> Self {
        Self {
            epochs_done: progress.epoch,
            batch: progress.batch,
        }
    }

    /// The name `text` stands for, if it is exactly one this module writes.
    fn parse(text: &str) -> Option<Self> {
        let number = |digits: &str| {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<usize>().ok())
                .flatten()
        };
        let rest = text.strip_prefix("epoch-")?;
        let name = match rest.split_once("-batch-") {
            None => Self {
                epochs_done: number(rest)?,
                batch: 0,
            },
            Some((epoch, batch)) => Self {
                epochs_done: number(epoch)?.checked_sub(1)?,
                batch: number(batch).filter(|&b| b > 0)?,
            },
        };
        let written = name.epochs_done > 0 || name.batch > 0;
        (written && name.to_string() == text).then_some(name)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.batch == 0 {
            write!(f, "epoch-{:04}", self.epochs_done)
        } else {
            write!(
                f,
                "epoch-{:04}-batch-{:06}",
                self.epochs_done + 1,
                self.batch
            )
        }
    }
}

/// `state.json`: the checkpoint's progress, identity and file checksums, with a checksum of
/// itself.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    /// CRC-32 of `state` serialised compactly.
    crc32: String,
    state: State,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// The layout's version.
    format: u32,
    epoch: u64,
    batch: u64,
    step: u64,
    /// The bits of the f64 [`Progress::epoch_loss_sum`] (JSON numbers may not round-trip).
    epoch_loss_sum_bits: u64,
    /// [`Progress::skipped`] (absent before skipping existed: none).
    #[serde(default)]
    skipped: u64,
    /// [`Progress::epoch_skipped`].
    #[serde(default)]
    epoch_skipped: u64,
    /// The bits of [`Checkpoint::metrics`].
    #[serde(default)]
    metrics_bits: Vec<u64>,
    /// [`Checkpoint::swa`], its rates as bits.
    #[serde(default)]
    swa: Option<SwaRecord>,
    identity: RunIdentity,
    files: BTreeMap<String, FileSum>,
}

const FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SwaRecord {
    lrs_bits: Vec<u64>,
    steps: u64,
    schedule_steps: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileSum {
    bytes: u64,
    crc32: String,
}

impl FileSum {
    fn of(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.len() as u64,
            crc32: crc32(bytes),
        }
    }
}

fn crc32(bytes: &[u8]) -> String {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    format!("{:08x}", crc.sum())
}

/// Writes and reads the checkpoints of one directory, holding its lock while it lives.
#[derive(Debug)]
pub struct Checkpointer {
    dir: PathBuf,
    keep: usize,
    /// The lock: it lasts as long as this handle, and removes `DIR/lock` when dropped.
    _lock: Lock,
}

const LATEST: &str = "latest";
const LOCK: &str = "lock";
const MODEL: &str = "model.bpk";
/// The file of a further copy of the model: `ema.bpk`, `lookahead.bpk`.
fn extra_file(name: &str) -> String {
    format!("{name}.bpk")
}
const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "state.json";

impl Checkpointer {
    /// Opens `dir` (created if missing) for a run: takes its lock, checks `latest`, removes what
    /// a killed run left half-written, and applies `mode`: a fresh run refuses a directory that
    /// holds checkpoints, an overwriting one removes them, a resume removes any checkpoint newer
    /// than `latest` (written after it by a run killed before it could update `latest`) and
    /// requires one to resume from. Keeps the newest `keep` (at least 1) checkpoints when saving.
    pub fn open(dir: impl Into<PathBuf>, mode: Mode, keep: usize) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        if std::fs::metadata(&dir).is_ok_and(|m| !m.is_dir()) {
            return Err(CheckpointError::NotADirectory(dir));
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lock = lock(&dir)?;
        let checkpointer = Self {
            dir,
            keep: keep.max(1),
            _lock: lock,
        };
        let entries = checkpointer.entries()?;
        for tmp in &entries.partial {
            checkpointer.remove(tmp)?;
        }
        let latest = match mode {
            Mode::Overwrite => None,
            Mode::Fresh | Mode::Resume => checkpointer.latest()?,
        };
        // Without `latest`, the newest complete checkpoint: one renamed into place by a run
        // killed before it could write `latest`.
        let resume_point = latest.or_else(|| entries.complete.last().copied());
        match mode {
            Mode::Fresh => {
                if let Some(newest) = resume_point {
                    return Err(CheckpointError::HoldsCheckpoints {
                        dir: checkpointer.dir,
                        latest: newest.to_string(),
                    });
                }
            }
            Mode::Overwrite => {
                let latest_path = checkpointer.dir.join(LATEST);
                if std::fs::symlink_metadata(&latest_path).is_ok_and(|m| !m.is_dir()) {
                    std::fs::remove_file(&latest_path).map_err(io(&latest_path))?;
                }
                for name in &entries.complete {
                    checkpointer.remove(&name.to_string())?;
                }
            }
            Mode::Resume => {
                let Some(resume_point) = resume_point else {
                    return Err(CheckpointError::NoCheckpoint(checkpointer.dir));
                };
                for name in entries.complete.iter().filter(|name| **name > resume_point) {
                    checkpointer.remove(&name.to_string())?;
                }
            }
        }
        Ok(checkpointer)
    }

    /// Refuses `dir` when another run holds its lock, creating nothing: a run checks this before
    /// its slow preparations (reading the data), and takes the lock with [`Checkpointer::open`]
    /// only once they succeed, so that a run refused for them leaves no lock file behind.
    pub fn check_not_locked(dir: &Path) -> Result<(), CheckpointError> {
        let path = dir.join(LOCK);
        let Ok(file) = File::open(&path) else {
            // No lock file (or none we can open): `open` will tell.
            return Ok(());
        };
        match file.try_lock() {
            // Nobody holds it (a killed run's stale file): released as `file` closes.
            Ok(()) => Ok(()),
            Err(err) => Err(lock_failed(dir, &path, err)),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The checkpoint directories and partial writes (`NAME.tmp`) in the directory, by name;
    /// anything else there is not ours and is left alone.
    fn entries(&self) -> Result<Entries, CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut entries = Entries::default();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            // A symlink is never ours, even when it points at a directory.
            if !entry.file_type().map_err(io)?.is_dir() {
                continue;
            }
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(name) = Name::parse(&file_name) {
                entries.complete.push(name);
            } else if let Some(name) = file_name.strip_suffix(".tmp").and_then(Name::parse) {
                entries.partial.push(format!("{name}.tmp"));
            }
        }
        entries.complete.sort();
        Ok(entries)
    }

    /// Removes the checkpoint (or partial write) `name`, one of [`Checkpointer::entries`].
    fn remove(&self, name: &str) -> Result<(), CheckpointError> {
        let path = self.dir.join(name);
        std::fs::remove_dir_all(&path).map_err(|source| CheckpointError::Io { path, source })
    }

    /// The checkpoint `latest` names, validated: `None` when there is no `latest` file.
    fn latest(&self) -> Result<Option<Name>, CheckpointError> {
        let path = self.dir.join(LATEST);
        let invalid = |bytes: &[u8]| CheckpointError::InvalidLatest {
            path: path.clone(),
            found: format!("{:?}", String::from_utf8_lossy(bytes)),
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid(&bytes))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let name = Name::parse(text).ok_or_else(|| invalid(&bytes))?;
        let is_dir = std::fs::symlink_metadata(self.dir.join(text)).is_ok_and(|m| m.is_dir());
        if !is_dir {
            return Err(CheckpointError::InvalidLatest {
                path: path.clone(),
                found: format!("{text:?}, which is not a checkpoint directory here"),
            });
        }
        Ok(Some(name))
    }

    /// Saves a checkpoint at `progress`, then points `latest` at it and removes the checkpoints
    /// beyond the newest `keep`.
    pub fn save<M: Module>(
        &self,
        model: &M,
        extras: &[(&'static str, &M)],
        optimizer: &ModuleOptimizer,
        (metrics, swa): (&[f64], Option<&SwaPhase>),
        identity: &RunIdentity,
        progress: &Progress,
    ) -> Result<(), CheckpointError> {
        let name = Name::of(progress);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let done = self.dir.join(name.to_string());
        if std::fs::symlink_metadata(&tmp).is_ok() {
            self.remove(&format!("{name}.tmp"))?;
        }
        let written = self.write_checkpoint(&tmp, model, extras, optimizer, (metrics, swa), identity, progress);
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        written?;
        if std::fs::symlink_metadata(&done).is_ok() {
            self.remove(&name.to_string())?;
        }
        std::fs::rename(&tmp, &done).map_err(|source| CheckpointError::Io {
            path: done.clone(),
            source,
        })?;
        let latest = self.dir.join(LATEST);
        adamlab_models::pytorch::write_atomically(&latest, name.to_string().as_bytes()).map_err(
            |err| CheckpointError::Io {
                path: latest,
                source: std::io::Error::other(err.to_string()),
            },
        )?;
        self.prune(name)
    }

    fn write_checkpoint<M: Module>(
        &self,
        tmp: &Path,
        model: &M,
        extras: &[(&'static str, &M)],
        optimizer: &ModuleOptimizer,
        (metrics, swa): (&[f64], Option<&SwaPhase>),
        identity: &RunIdentity,
        progress: &Progress,
    ) -> Result<(), CheckpointError> {
        let unserialisable = |path: PathBuf| {
            move |err: burn::store::RecordError| CheckpointError::Corrupt {
                path,
                message: one_line(&err.to_string()),
            }
        };
        std::fs::create_dir(tmp).map_err(|source| CheckpointError::Io {
            path: tmp.to_path_buf(),
            source,
        })?;
        let model_bytes = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(unserialisable(tmp.join(MODEL)))?;
        let optimizer_bytes = optimizer
            .into_bytes()
            .map_err(unserialisable(tmp.join(OPTIMIZER)))?;
        let mut extra_bytes = Vec::with_capacity(extras.len());
        for (name, extra) in extras {
            let file = extra_file(name);
            let bytes = (*extra)
                .clone()
                .into_record()
                .into_bytes()
                .map_err(unserialisable(tmp.join(&file)))?;
            extra_bytes.push((file, bytes));
        }
        let mut files = vec![(MODEL, &model_bytes[..]), (OPTIMIZER, &optimizer_bytes[..])];
        files.extend(extra_bytes.iter().map(|(file, bytes)| (file.as_str(), &bytes[..])));
        let state = State {
            format: FORMAT,
            epoch: progress.epoch as u64,
            batch: progress.batch as u64,
            step: progress.step as u64,
            epoch_loss_sum_bits: progress.epoch_loss_sum.to_bits(),
            skipped: progress.skipped as u64,
            epoch_skipped: progress.epoch_skipped as u64,
            metrics_bits: metrics.iter().map(|m| m.to_bits()).collect(),
            swa: swa.map(|phase| SwaRecord {
                lrs_bits: phase.lrs.iter().map(|lr| lr.to_bits()).collect(),
                steps: phase.steps as u64,
                schedule_steps: phase.schedule_steps as u64,
            }),
            identity: identity.clone(),
            files: files
                .iter()
                .map(|(name, bytes)| (name.to_string(), FileSum::of(bytes)))
                .collect(),
        };
        let compact = serde_json::to_vec(&state).expect("the state serialises");
        let file = StateFile {
            crc32: crc32(&compact),
            state,
        };
        let json = serde_json::to_vec_pretty(&file).expect("the state serialises");
        files.push((STATE, &json[..]));
        for (i, (name, bytes)) in files.into_iter().enumerate() {
            let path = tmp.join(name);
            write_synced(&path, bytes).map_err(|source| CheckpointError::Io { path, source })?;
            if i == 0 {
                pause_for_tests();
            }
        }
        Ok(())
    }

    /// Keeps `newest` and the `keep - 1` checkpoints before it; removes the older ones.
    fn prune(&self, newest: Name) -> Result<(), CheckpointError> {
        let older: Vec<Name> = self
            .entries()?
            .complete
            .into_iter()
            .filter(|name| *name < newest)
            .collect();
        let excess = older.len().saturating_sub(self.keep - 1);
        for name in &older[..excess] {
            self.remove(&name.to_string())?;
        }
        Ok(())
    }

    /// Loads the latest checkpoint (the newest one, should a kill have left no `latest`) into
    /// `template` (a freshly built model), `extras` (templates of the further copies the run keeps)
    /// and `optimizer` (a fresh one, as configured), after checking the files' checksums, that it
    /// comes from a run with the same `identity`, and that its counters fit `batches` per epoch
    /// taken `accumulate` at a time per optimizer step.
    pub fn load_latest<M: Module>(
        &self,
        template: M,
        extras: Vec<(&'static str, M)>,
        optimizer: ModuleOptimizer,
        identity: &RunIdentity,
        (batches, accumulate): (usize, usize),
    ) -> Result<Checkpoint<M>, CheckpointError> {
        let name = match self.latest()? {
            Some(name) => name,
            None => self
                .entries()?
                .complete
                .pop()
                .ok_or_else(|| CheckpointError::NoCheckpoint(self.dir.clone()))?,
        };
        let dir = self.dir.join(name.to_string());
        let state_path = dir.join(STATE);
        let corrupt = |path: &Path, message: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let bytes = read_file(&state_path)?;
        let file: StateFile = serde_json::from_slice(&bytes)
            .map_err(|err| corrupt(&state_path, format!("not a state file: {err}")))?;
        let state = file.state;
        let compact = serde_json::to_vec(&state).expect("the state serialises");
        if crc32(&compact) != file.crc32 {
            return Err(corrupt(
                &state_path,
                "its checksum does not match its contents".into(),
            ));
        }
        if state.format != FORMAT {
            return Err(corrupt(
                &state_path,
                format!(
                    "layout version {}, this adamlab reads version {FORMAT}",
                    state.format
                ),
            ));
        }
        if let Some((field, saved, current)) = state.identity.first_difference(identity) {
            return Err(CheckpointError::Mismatch {
                path: state_path,
                field,
                saved,
                current,
            });
        }
        let progress = checked_progress(&state, batches, accumulate, name)
            .map_err(|message| corrupt(&state_path, message))?;
        if state.metrics_bits.len() > progress.epoch {
            let message = format!("{} epoch metrics after {} epochs", state.metrics_bits.len(), progress.epoch);
            return Err(corrupt(&state_path, message));
        }
        if let Some(swa) = &state.swa {
            let rates_ok = swa.lrs_bits.iter().all(|&bits| {
                let lr = f64::from_bits(bits);
                lr.is_finite() && lr >= 0.0
            });
            if !rates_ok || swa.steps > state.epoch || swa.schedule_steps > state.step {
                let message = format!(
                    "an SWA state of {} SWALR steps from schedule step {} at epoch {}, step {}",
                    swa.steps, swa.schedule_steps, state.epoch, state.step
                );
                return Err(corrupt(&state_path, message));
            }
        }
        let mut records = BTreeMap::new();
        let extra_files: Vec<String> = extras.iter().map(|(name, _)| extra_file(name)).collect();
        let files = [MODEL, OPTIMIZER].into_iter().chain(extra_files.iter().map(String::as_str));
        for file in files {
            let path = dir.join(file);
            let recorded = state.files.get(file).ok_or_else(|| {
                corrupt(&state_path, format!("it records no checksum for {file}"))
            })?;
            let bytes = read_file(&path)?;
            let found = FileSum::of(&bytes);
            if found.bytes != recorded.bytes {
                let message = format!(
                    "{} bytes, the checkpoint recorded {}",
                    found.bytes, recorded.bytes
                );
                return Err(corrupt(&path, message));
            }
            if found.crc32 != recorded.crc32 {
                let message = format!(
                    "CRC-32 {}, the checkpoint recorded {}",
                    found.crc32, recorded.crc32
                );
                return Err(corrupt(&path, message));
            }
            records.insert(file, bytes);
        }
        let unreadable = |path: PathBuf| {
            move |err: burn::store::RecordError| CheckpointError::Corrupt {
                path,
                message: one_line(&err.to_string()),
            }
        };
        let model_path = dir.join(MODEL);
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(
            records.remove(MODEL).unwrap_or_default(),
        ))
        .map_err(unreadable(model_path.clone()))?;
        let model = template
            .try_load_record(record)
            .map_err(unreadable(model_path))?;
        let optimizer_path = dir.join(OPTIMIZER);
        let optimizer = optimizer
            .from_bytes(Bytes::from_bytes_vec(
                records.remove(OPTIMIZER).unwrap_or_default(),
            ))
            .map_err(unreadable(optimizer_path))?;
        let mut loaded = BTreeMap::new();
        for ((name, template), file) in extras.into_iter().zip(&extra_files) {
            let path = dir.join(file);
            let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(
                records.remove(file.as_str()).unwrap_or_default(),
            ))
            .map_err(unreadable(path.clone()))?;
            loaded.insert(name, template.try_load_record(record).map_err(unreadable(path))?);
        }
        Ok(Checkpoint {
            model,
            extras: loaded,
            metrics: state.metrics_bits.iter().map(|&bits| f64::from_bits(bits)).collect(),
            swa: state.swa.as_ref().map(|record| SwaPhase {
                lrs: record.lrs_bits.iter().map(|&bits| f64::from_bits(bits)).collect(),
                steps: record.steps as usize,
                schedule_steps: record.schedule_steps as usize,
            }),
            optimizer,
            progress,
        })
    }
}

/// The environment variable that holds every checkpoint write this many milliseconds after its
/// first file: a kill -9 test then lands inside a write for certain instead of by luck. Unset in
/// real runs.
pub const PAUSE_FOR_TESTS_ENV: &str = "ADAMLAB_TEST_CHECKPOINT_PAUSE_MS";

fn pause_for_tests() {
    if let Some(ms) = std::env::var(PAUSE_FOR_TESTS_ENV).ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

#[derive(Debug, Default)]
struct Entries {
    /// Complete checkpoints, oldest first.
    complete: Vec<Name>,
    /// `NAME.tmp` directories a killed run left.
    partial: Vec<String>,
}

/// The held lock of a checkpoint directory: the open, `flock`ed `DIR/lock`, removed on drop
/// while still locked, so that no other run can take a lock on a file about to disappear
/// without noticing (see [`lock`]).
#[derive(Debug)]
struct Lock {
    file: File,
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Only the file this run locked: never one another run has put there since.
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `path` still names the open `file` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Takes the exclusive lock on `dir/lock` and writes this process's pid there.
fn lock(dir: &Path) -> Result<Lock, CheckpointError> {
    let path = dir.join(LOCK);
    let io = |source| CheckpointError::Io {
        path: path.clone(),
        source,
    };
    // The holder removes the file as it ends: a lock taken on a file no longer at `path` guards
    // nothing, so take it again on the file that is (a few tries: each means a run just ended).
    let mut tries = 0;
    let mut file = loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) if same_file(&file, &path) => break file,
            Ok(()) if tries < 100 => tries += 1,
            Ok(()) => {
                return Err(io(std::io::Error::other(
                    "the lock file kept being replaced while this run took it",
                )));
            }
            Err(err) => return Err(lock_failed(dir, &path, err)),
        }
    };
    file.set_len(0).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(Lock { file, path })
}

/// The error of a lock held by another run (with its pid, as its lock file says), or of the
/// lock call itself.
fn lock_failed(dir: &Path, path: &Path, err: TryLockError) -> CheckpointError {
    match err {
        TryLockError::WouldBlock => {
            // The holder writes its pid right after locking: give it a moment to.
            let mut holder = String::new();
            for _ in 0..20 {
                holder.clear();
                let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut holder));
                if !holder.trim().is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let holder = match holder.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "pid unknown".to_string(),
            };
            CheckpointError::Locked {
                dir: dir.to_path_buf(),
                holder,
            }
        }
        TryLockError::Error(source) => CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// The progress `state` records, if its counters agree: the batch within an epoch of `batches`,
/// the step count equal to the epochs and batches done, the epoch's loss sum finite.
fn checked_progress(state: &State, batches: usize, accumulate: usize, name: Name) -> Result<Progress, String> {
    let per_step = if accumulate > 1 { format!(", {accumulate} per step") } else { String::new() };
    let counters = format!(
        "epoch {}, batch {}, step {} with {batches} batches per epoch{per_step}",
        state.epoch, state.batch, state.step
    );
    let fits = |n: u64| usize::try_from(n).ok();
    let (Some(epoch), Some(batch), Some(step), Some(skipped), Some(epoch_skipped)) = (
        fits(state.epoch),
        fits(state.batch),
        fits(state.step),
        fits(state.skipped),
        fits(state.epoch_skipped),
    ) else {
        return Err(format!("counters out of range ({counters})"));
    };
    // Checkpoints fall between optimizer steps: a whole number of steps into the epoch.
    let steps_per_epoch = batches.div_ceil(accumulate.max(1));
    let expected_step = epoch
        .checked_mul(steps_per_epoch)
        .and_then(|s| s.checked_add(batch / accumulate.max(1)));
    if batch >= batches || !batch.is_multiple_of(accumulate.max(1)) || expected_step != Some(step) {
        return Err(format!("counters that disagree ({counters})"));
    }
    if skipped > step || epoch_skipped > skipped || (batch == 0 && epoch_skipped != 0) {
        return Err(format!(
            "{skipped} skipped step(s), {epoch_skipped} of them in the epoch, at step {step}"
        ));
    }
    let epoch_loss_sum = f64::from_bits(state.epoch_loss_sum_bits);
    if !epoch_loss_sum.is_finite() || (batch == 0 && epoch_loss_sum != 0.0) {
        return Err(format!(
            "an epoch loss sum of {epoch_loss_sum} at batch {batch}"
        ));
    }
    let progress = Progress {
        epoch,
        batch,
        step,
        epoch_loss_sum,
        skipped,
        epoch_skipped,
    };
    if Name::of(&progress) != name {
        return Err(format!(
            "counters of another checkpoint than {name} ({counters})"
        ));
    }
    Ok(progress)
}

fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `message` on one line: burn's errors may span several or hold debug structures.
fn one_line(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_round_trip_and_order_as_the_run_goes() {
        let names = [
            "epoch-0001",
            "epoch-0002-batch-000001",
            "epoch-0002-batch-000040",
            "epoch-0002",
            "epoch-12345",
        ];
        let parsed: Vec<Name> = names.iter().map(|n| Name::parse(n).unwrap()).collect();
        for (name, text) in parsed.iter().zip(names) {
            assert_eq!(name.to_string(), text);
        }
        assert!(parsed.is_sorted(), "{parsed:?}");
    }

    fn state(epoch: u64, batch: u64, step: u64) -> State {
        State {
            format: FORMAT,
            epoch,
            batch,
            step,
            epoch_loss_sum_bits: if batch == 0 { 0 } else { 1.5f64.to_bits() },
            skipped: 0,
            epoch_skipped: 0,
            metrics_bits: Vec::new(),
            swa: None,
            identity: RunIdentity {
                model: "cnn".into(),
                optimizer: "adam".into(),
                controls: no_controls(),
                seed: 0,
                batch_size: 32,
                shuffle: true,
                train_images: 256,
                train_data: "crc32 00000000".into(),
            },
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn counters_must_agree_with_each_other_and_with_the_name() {
        let batches = 8;
        let at = |epoch, batch| Name {
            epochs_done: epoch,
            batch,
        };
        assert!(checked_progress(&state(2, 0, 16), batches, 1, at(2, 0)).is_ok());
        assert!(checked_progress(&state(2, 3, 19), batches, 1, at(2, 3)).is_ok());
        // 8 batches 3 at a time: 3 steps per epoch, checkpoints after batches 3 and 6.
        assert!(checked_progress(&state(2, 6, 8), batches, 3, at(2, 6)).is_ok());
        let mut skipping = state(2, 3, 19);
        (skipping.skipped, skipping.epoch_skipped) = (4, 1);
        assert!(checked_progress(&skipping, batches, 1, at(2, 3)).is_ok());
        let mut too_many = state(2, 3, 19);
        too_many.skipped = 20;
        let mut left_in_epoch = state(2, 0, 16);
        (left_in_epoch.skipped, left_in_epoch.epoch_skipped) = (1, 1);
        let refused = [
            (state(u64::MAX, 0, 16), 1, at(2, 0), "disagree"),
            (state(u64::MAX, 0, u64::MAX), 1, at(2, 0), "disagree"),
            (state(2, 8, 24), 1, at(2, 8), "disagree"),
            (state(2, 0, 17), 1, at(2, 0), "disagree"),
            (state(1, 0, 8), 1, at(2, 0), "another checkpoint"),
            (state(2, 4, 8), 3, at(2, 4), "disagree"),
            (state(2, 3, 19), 3, at(2, 3), "disagree"),
            (too_many, 1, at(2, 3), "skipped"),
            (left_in_epoch, 1, at(2, 0), "skipped"),
        ];
        for (state, accumulate, name, expected) in refused {
            let message = checked_progress(&state, batches, accumulate, name).unwrap_err();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn anything_but_a_canonical_checkpoint_name_is_refused() {
        let refused = [
            "",
            ".",
            "..",
            "/tmp",
            "epoch-",
            "epoch-1",
            "epoch-0000",
            "epoch-0001/..",
            "../epoch-0001",
            "epoch-0001.tmp",
            "epoch-0001-batch-000000",
            "epoch-0000-batch-000001",
            "epoch-+001",
            "epoch-0001-batch-1",
            " epoch-0001",
            "epoch-0001 ",
            "epoch-99999999999999999999999",
        ];
        for text in refused {
            assert_eq!(Name::parse(text), None, "{text:?}");
        }
    }
}
