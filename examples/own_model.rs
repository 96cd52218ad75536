//! A model of your own, trained by adamlab's loop: a residual MLP (not in the library) on the
//! Fashion-MNIST images, with every control `adamlab train` has and the same meaning for each flag:
//! `--optimizer SPEC`, `--lr-schedule SPEC`, `--clip-grad-norm MAX`, `--epochs N`,
//! `--checkpoint-dir DIR`, `--checkpoint-every N`, `--resume`, `--save FILE`, `--metrics-out FILE`.
//! A run killed at any moment and continued with `--resume` ends with the same `--save` bytes and
//! journal as an uninterrupted one.
//!
//! `cargo run --release --example own_model -- --epochs 2 --optimizer 'adamw(lr=1e-3)'`
//!
//! The model side is burn-train's contract (`TrainStep`, `InferenceStep`), so the same definition
//! also trains in burn's `Learner` (see `examples/learner.rs`).

use adamlab::backend::default_device;
use adamlab::data::paths::{self, Named};
use adamlab::data::{DEFAULT_DATA_DIR, MnistBatch, MnistDataset, Split};
use adamlab::models::pytorch::save_pytorch_safetensors;
use adamlab::optim::OptimizerSpec;
use adamlab::optim::clip::Clip;
use adamlab::optim::schedule::ScheduleSpec;
use adamlab::train::checkpoint::{Checkpointer, Mode};
use adamlab::train::classification;
use adamlab::train::controls::ControlsSpec;
use adamlab::train::fit::{self, EpochReport, Fit, Model, Observer, ObserverError, RunConfig, Start, StepReport, TrainData};
use adamlab::train::journal::Journal;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// A residual MLP for 28×28 images: `x → relu(input(x))`, then `blocks` times
/// `x → x + fc2(relu(fc1(x)))`, then a linear head to the classes.
#[derive(Config, Debug)]
pub struct ResidualMlpConfig {
    /// Width of the hidden layers.
    #[config(default = 64)]
    pub width: usize,
    /// Residual blocks.
    #[config(default = 2)]
    pub blocks: usize,
}

/// One residual block.
#[derive(Module, Debug)]
pub struct Block {
    fc1: Linear,
    fc2: Linear,
}

/// The model.
#[derive(Module, Debug)]
pub struct ResidualMlp {
    input: Linear,
    blocks: Vec<Block>,
    head: Linear,
    relu: Relu,
}

impl ResidualMlpConfig {
    /// The model on `device`.
    pub fn init(&self, device: &Device) -> ResidualMlp {
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        ResidualMlp {
            input: linear(28 * 28, self.width),
            blocks: (0..self.blocks)
                .map(|_| Block { fc1: linear(self.width, self.width), fc2: linear(self.width, self.width) })
                .collect(),
            head: linear(self.width, 10),
            relu: Relu::new(),
        }
    }
}

impl ResidualMlp {
    /// `[batch, 1, 28, 28]` → `[batch, 10]` logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.relu.forward(self.input.forward(images.flatten::<2>(1, 3))); // [b, width]
        for block in &self.blocks {
            x = x.clone() + block.fc2.forward(self.relu.forward(block.fc1.forward(x))); // [b, width]
        }
        self.head.forward(x) // [b, 10]
    }

    fn classify(&self, batch: MnistBatch) -> ClassificationOutput {
        let logits = self.forward(batch.images);
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl TrainStep for ResidualMlp {
    type Input = MnistBatch;
    type Output = ClassificationOutput;
    fn step(&self, batch: MnistBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.classify(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for ResidualMlp {
    type Input = MnistBatch;
    type Output = ClassificationOutput;
    fn step(&self, batch: MnistBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}

/// Train a residual MLP of your own on Fashion-MNIST with adamlab's loop.
#[derive(Parser, Debug)]
struct Args {
    /// The optimizer, as `adamlab train --optimizer` takes it.
    #[arg(long, value_name = "SPEC", default_value = "adam(lr=1e-3)")]
    optimizer: String,
    /// A learning-rate schedule, stepped once per optimizer step (`adamlab schedules` lists them).
    #[arg(long, value_name = "SPEC")]
    lr_schedule: Option<String>,
    /// Clip the gradients' total 2-norm to MAX before each step.
    #[arg(long, value_name = "MAX")]
    clip_grad_norm: Option<f64>,
    /// Epochs (to reach, when resuming).
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Images per optimizer step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed of the initial weights and of every epoch's shuffle.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N")]
    limit_test: Option<usize>,
    /// An MNIST-format directory.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Write the trained weights (safetensors).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Write one JSON line per step and per epoch.
    #[arg(long, value_name = "FILE")]
    metrics_out: Option<PathBuf>,
    /// Checkpoint after every epoch into DIR.
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Also checkpoint every N steps.
    #[arg(long, value_name = "N", requires = "checkpoint_dir")]
    checkpoint_every: Option<usize>,
    /// Continue from the latest checkpoint in --checkpoint-dir.
    #[arg(long, requires = "checkpoint_dir")]
    resume: bool,
    /// Replace the checkpoints --checkpoint-dir holds.
    #[arg(long, requires = "checkpoint_dir", conflicts_with = "resume")]
    overwrite: bool,
}

/// Epoch lines on stdout, and the journal.
struct Report {
    journal: Option<Journal>,
    epochs: usize,
}

impl Observer for Report {
    fn on_start(&mut self, progress: &adamlab::train::checkpoint::Progress) -> Result<(), ObserverError> {
        self.journal.as_mut().map_or(Ok(()), |j| j.on_start(progress))
    }
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        self.journal.as_mut().map_or(Ok(()), |j| j.on_step(report))
    }
    fn on_epoch(&mut self, report: &EpochReport) -> Result<(), ObserverError> {
        let test = report.test.expect("the run evaluates");
        println!(
            "epoch {}/{}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%",
            report.epoch,
            self.epochs,
            report.train_loss,
            test.loss,
            100.0 * test.accuracy.unwrap_or(0.0)
        );
        self.journal.as_mut().map_or(Ok(()), |j| j.on_epoch(report))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// A failure: exit code 2 for what the user can fix, 1 for a run that failed.
type Failure = (u8, String);

fn usage(err: impl std::fmt::Display) -> Failure {
    (2, err.to_string())
}

fn run(args: &Args) -> Result<(), Failure> {
    // The training controls, checked before any file is touched.
    let mut controls = ControlsSpec::optimizer(OptimizerSpec::parse(&args.optimizer).map_err(usage)?);
    controls.schedule = args.lr_schedule.as_deref().map(ScheduleSpec::parse).transpose().map_err(usage)?;
    controls.clip = args.clip_grad_norm.map(|max_norm| Clip::Norm { max_norm, norm_type: 2.0 });
    adamlab::train::controls::Controls::new(&controls).map_err(usage)?;
    // Outputs: never an input or each other; the journal and the checkpoints opened first.
    let outputs: Vec<Named> = [("--save", &args.save), ("--metrics-out", &args.metrics_out)]
        .into_iter()
        .filter_map(|(flag, path)| path.as_deref().map(|path| Named { flag, path }))
        .collect();
    let folders: Vec<Named> =
        args.checkpoint_dir.as_deref().map(|path| Named { flag: "--checkpoint-dir", path }).into_iter().collect();
    if let Some(clash) = paths::clash(&[], &outputs, &folders) {
        return Err(usage(clash));
    }
    let journal = match &args.metrics_out {
        Some(path) => Some(Journal::open(path).map_err(|e| usage(format!("--metrics-out {}: {e}", path.display())))?),
        None => None,
    };
    let mode = match (args.resume, args.overwrite) {
        (true, _) => Mode::Resume,
        (false, true) => Mode::Overwrite,
        (false, false) => Mode::Fresh,
    };
    let checkpointer = match &args.checkpoint_dir {
        Some(dir) => Some(Checkpointer::open(dir, mode, 2).map_err(usage)?),
        None => None,
    };
    // The data.
    let mut train = MnistDataset::load(&args.data_dir, Split::Train).map_err(usage)?;
    let mut test = MnistDataset::load(&args.data_dir, Split::Test).map_err(usage)?;
    if let Some(n) = args.limit_train {
        train = train.truncated(n);
    }
    if let Some(n) = args.limit_test {
        test = test.truncated(n);
    }
    let test = Arc::new(test);
    let config = ResidualMlpConfig::new();
    let init = |device: &Device| config.init(device);
    let model = Model { name: format!("residual-mlp(width={}, blocks={})", config.width, config.blocks), init: &init };
    let data: TrainData<_, _> = classification::train_data(Arc::new(train));
    let device = default_device().map_err(usage)?;
    let mut evaluate = |model: &ResidualMlp| classification::evaluate(model, &test, 256);
    let mut report = Report { journal, epochs: args.epochs };
    let trained = fit::fit(
        &device,
        model,
        &data,
        Fit {
            config: RunConfig {
                epochs: args.epochs,
                batch_size: args.batch_size,
                seed: args.seed,
                shuffle: true,
                checkpoint_every: args.checkpoint_every,
            },
            controls: &controls,
            start: if args.resume { Start::Resume } else { Start::Seeded },
            checkpointer: checkpointer.as_ref(),
            evaluate: Some(&mut evaluate),
            observer: &mut report,
        },
    );
    let (model, failure) = match trained {
        Ok(model) => (Some(model), None),
        Err(stopped) => {
            let code = if matches!(stopped.error, fit::TrainError::NonFiniteLoss { .. }) { 1 } else { 2 };
            (stopped.trained.map(|t| t.model), Some((code, stopped.error.to_string())))
        }
    };
    if let (Some(model), Some(path)) = (&model, &args.save) {
        save_pytorch_safetensors(model, path).map_err(usage)?;
    }
    failure.map_or(Ok(()), Err)
}
