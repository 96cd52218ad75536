//! adamlab's benchmarks, shared by `adamlab bench` and the `cargo bench` targets:
//!
//! - [`step`]: the time of one optimizer step against the parameter count, with the bytes it
//!   must move and the fraction of the machine's streaming bandwidth ([`measure::Triad`]) it
//!   reaches;
//! - [`train`]: images per second of a training step of the article's CNN or MLP, split into
//!   forward, backward and optimizer step, with the peak resident memory;
//! - [`shootout`]: the optimizer shoot-out, real Fashion-MNIST training with test accuracy and
//!   loss after every epoch and the wall time;
//! - [`torch`]: the same measurements from PyTorch (`tools/bench/torch_bench.py`), in the same
//!   records;
//! - [`sides`]: a whole bench command, adamlab's side then PyTorch's, in one run;
//! - [`schema`]: the versioned JSON every run writes, with the [`machine`] it ran on and its
//!   [`load`] over each side (a busy machine makes a ratio meaningless);
//! - [`report`]: Markdown and SVG figures (plotters) from any number of those files.
//!
//! Optimizers come only from the registry (`adamlab_optim::OptimizerSpec`); no optimizer is named
//! here except the defaults.

pub mod load;
pub mod machine;
pub mod measure;
pub mod parse;
pub mod report;
pub mod schema;
pub mod shootout;
pub mod sides;
pub mod stats;
pub mod step;
pub mod torch;
pub mod train;

pub use machine::Machine;
pub use schema::{BenchFile, Record, SCHEMA_VERSION};
pub use stats::Summary;

use adamlab_backend::{BackendError, BackendKind};
use burn::tensor::Device;

/// A backend to measure, with its device and its description for the records.
#[derive(Debug, Clone)]
pub struct Target {
    /// The backend.
    pub backend: BackendKind,
    /// Its device, without autodiff.
    pub device: Device,
    /// `flex (CPU)`, `wgpu (llvmpipe … on Vulkan)`.
    pub description: String,
}

impl Target {
    /// The device of `backend`, or why it cannot be used.
    pub fn new(backend: BackendKind) -> Result<Self, BackendError> {
        Ok(Self {
            backend,
            device: adamlab_backend::device(backend)?,
            description: adamlab_backend::describe(backend),
        })
    }

    /// Every backend compiled in that has a device, in `ndarray, flex, wgpu` order.
    pub fn every_usable() -> Vec<Self> {
        adamlab_backend::compiled()
            .into_iter()
            .filter_map(|backend| Self::new(backend).ok())
            .collect()
    }
}

/// Receives progress while a bench runs: the CLI draws a progress bar and prints table rows.
pub trait Observer {
    /// The number of measurements the run will take.
    fn planned(&mut self, _total: usize) {}
    /// A measurement begins.
    fn started(&mut self, _what: &str) {}
    /// A measurement ended with this record.
    fn measured(&mut self, _record: &Record) {}
    /// A line worth telling (a skipped backend, PyTorch not found).
    fn note(&mut self, _line: &str) {}
    /// A side (adamlab's measurements or PyTorch's) ended, with the machine's load over it.
    fn load(&mut self, _side: &load::SideLoad) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {}

/// Why a bench could not run or finish. One line each.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An argument out of range, or an empty list.
    #[error("{0}")]
    Invalid(String),
    /// A backend not compiled in or without a device.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// An optimizer spec that cannot be used.
    #[error(transparent)]
    Spec(#[from] adamlab_optim::SpecError),
    /// The dataset is missing or corrupt.
    #[error(transparent)]
    Data(#[from] adamlab_data::DataError),
    /// The fortunes are missing or unreadable.
    #[error(transparent)]
    Corpus(#[from] adamlab_data::fortunes::CorpusError),
    /// A bench file cannot be read or written.
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    /// The device failed.
    #[error(transparent)]
    Device(#[from] measure::DeviceError),
    /// Training could not run.
    #[error(transparent)]
    Train(#[from] adamlab_train::fit::TrainError),
    /// PyTorch's side failed after it was found.
    #[error("PyTorch bench failed: {0}")]
    Torch(String),
    /// The report could not be written.
    #[error("report: {0}")]
    Report(String),
}

impl BenchError {
    /// Whether the user can fix it by changing the command (exit code 2) rather than the run
    /// failing (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_) | Self::Backend(_) | Self::Spec(_) | Self::Data(_) | Self::Corpus(_) | Self::Schema(_)
        )
    }
}
