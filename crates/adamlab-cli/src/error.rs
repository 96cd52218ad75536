//! Everything that ends a command early, each shown as one line.

use adamlab_backend::BackendError;
use adamlab_data::DataError;
use adamlab_models::pytorch::WeightsError;
use adamlab_train::checkpoint::CheckpointError;
use adamlab_train::fit::TrainError;
use adamlab_train::controls::ControlsError;
use adamlab_optim::SpecError;
use std::path::PathBuf;

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The backend is not compiled in or has no device.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// An optimizer spec that cannot be used.
    #[error(transparent)]
    Optimizer(#[from] SpecError),
    /// The dataset is missing or corrupt.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The fortunes corpus is missing or unreadable.
    #[error(transparent)]
    Corpus(#[from] adamlab_data::fortunes::CorpusError),
    /// Weights could not be read or written.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A schedule, clipping or param group that cannot be used, or a run its schedule cannot
    /// span.
    #[error(transparent)]
    Controls(#[from] ControlsError),
    /// A checkpoint could not be used: the library's reason, then what to do in flags.
    #[error("{error}{}", checkpoint_advice(.error))]
    Checkpoint {
        /// What the library found.
        #[from]
        error: CheckpointError,
    },
    /// An option does not apply, or a value is out of range.
    #[error("{0}")]
    Usage(String),
    /// An output (`--save`, `--metrics-out`) cannot be written.
    #[error("{flag} {}: {source}", path.display())]
    Output {
        /// The option naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The metrics journal could not be written during the run.
    #[error("{0}")]
    Metrics(String),
    /// Training stopped (a non-finite loss).
    #[error(transparent)]
    TrainingFailed(TrainError),
    /// A run that failed after training some steps, and where their weights went.
    #[error("{error}; {kept}")]
    Stopped {
        /// Why the run stopped.
        error: Box<CliError>,
        /// Where the weights are: `the weights after step 12 are in FILE`.
        kept: String,
    },
    /// `verify` found deviations.
    #[error("{0} check(s) failed")]
    VerificationFailed(usize),
    /// A benchmark failed while running (the device, or PyTorch's side).
    #[error(transparent)]
    BenchFailed(adamlab_bench::BenchError),
}

/// What the user can do about a checkpoint error, in `adamlab train`'s flags (the library's
/// errors name no flags).
fn checkpoint_advice(err: &CheckpointError) -> &'static str {
    match err {
        CheckpointError::NoDirectory => ": --resume needs --checkpoint-dir",
        CheckpointError::NotADirectory(_) => ": --checkpoint-dir needs a directory",
        CheckpointError::Locked { .. } => ": wait for it to end, or use another --checkpoint-dir",
        CheckpointError::HoldsCheckpoints { .. } => {
            ": continue it with --resume, choose another --checkpoint-dir, or replace them with \
             --overwrite"
        }
        CheckpointError::InvalidLatest { .. } => ": remove it, or start over with --overwrite",
        CheckpointError::NoCheckpoint(_)
        | CheckpointError::Io { .. }
        | CheckpointError::Corrupt { .. }
        | CheckpointError::Mismatch { .. } => "",
    }
}

impl From<TrainError> for CliError {
    fn from(err: TrainError) -> Self {
        match err {
            TrainError::Optimizer(e) => Self::Optimizer(e),
            TrainError::Controls(e) => Self::Controls(e),
            TrainError::Checkpoint(error) => Self::Checkpoint { error },
            TrainError::Observer(e) => Self::Metrics(e.to_string()),
            TrainError::Invalid(message) => Self::Usage(message),
            failed @ TrainError::NonFiniteLoss { .. } => Self::TrainingFailed(failed),
        }
    }
}
