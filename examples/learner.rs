//! The article's CNN on Fashion-MNIST trained by burn-train's own `Learner`, with an adamlab
//! optimizer and schedule from their specs, on one device or several.
//!
//! `cargo run --release --example learner -- --devices 2 --epochs 1 --limit-train 6000`
//!
//! `--devices N` (N > 1) on a CPU backend (or wgpu) uses burn-train's multi-device strategy on N
//! copies of the device (on a CPU, N workers sharing its cores). That strategy **sums** the
//! devices' gradients: SGD then steps N times as far as on one device (divide its lr by N to
//! match), Adam-like optimizers barely change (their update does not depend on the gradient's
//! scale, up to ε). The `Learner` applies the optimizer and the schedule; param groups and
//! gradient clipping need adamlab's own loop (`adamlab train`, `adamlab_train::fit`).
//!
//! On `--backend cuda` (built with `--features cuda`), `--devices N` uses burn-train's DDP
//! strategy on CUDA devices 0..N: a replica per GPU, gradients all-reduced through NCCL as a
//! **mean**, so the learning rate that suits one device suits N (each device sees its own batch
//! of `--batch-size`). `--ddp` takes DDP even on one GPU. This path compiles on any machine but has
//! not been run: no GPU machine was available to the project when it was written.

use adamlab::backend::{BackendKind, cuda_device, default_backend, device};
use adamlab::data::{DEFAULT_DATA_DIR, MnistBatcher, MnistDataset, Split};
use adamlab::models::CnnConfig;
use adamlab::optim::OptimizerSpec;
use adamlab::optim::schedule::ScheduleSpec;
use adamlab::train::controls::ControlsSpec;
use adamlab::train::learner::{StepLosses, learner};
use burn::data::dataloader::DataLoaderBuilder;
use burn::tensor::distributed::{DistributedConfig, ReduceOperation};
use burn::train::metric::LossMetric;
use burn::train::{ExecutionStrategy, MultiDeviceOptim, SupervisedTraining};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Train the article's CNN with burn's Learner and an adamlab optimizer.
#[derive(Parser, Debug)]
struct Args {
    /// The optimizer, as `adamlab train --optimizer` takes it.
    #[arg(long, value_name = "SPEC", default_value = "adam(lr=1e-3)")]
    optimizer: String,
    /// A learning-rate schedule, stepped once per optimizer step (`adamlab schedules`).
    #[arg(long, value_name = "SPEC")]
    lr_schedule: Option<String>,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    limit_test: usize,
    /// Images per step (per device).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Devices: more than 1 uses burn-train's multi-device strategy (DDP on cuda).
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// The backend: ndarray, flex, wgpu or cuda (default: the fastest compiled in).
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// Use burn-train's DDP strategy even on one device (cuda only).
    #[arg(long)]
    ddp: bool,
    /// An MNIST-format directory.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Where burn-train writes its logs. Default: a new folder in the temporary directory.
    #[arg(long, value_name = "DIR")]
    artifact_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.devices == 0 || args.epochs == 0 || args.batch_size == 0 {
        eprintln!("error: --devices, --epochs and --batch-size must be at least 1");
        return ExitCode::from(2);
    }
    let controls = match controls(&args) {
        Ok(controls) => controls,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let loaded = MnistDataset::load(&args.data_dir, Split::Train).and_then(|train| {
        let test = MnistDataset::load(&args.data_dir, Split::Test)?;
        Ok((train, test))
    });
    let (mut train, test) = match loaded {
        Ok(sets) => sets,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = args.limit_train {
        train = train.truncated(n);
    }
    let test = test.truncated(args.limit_test);
    let (kind, devices) = match devices(&args) {
        Ok(found) => found,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let device = devices[0].clone();
    let autodiff = device.clone().autodiff();
    autodiff.seed(0);
    let model = CnnConfig::new().init(&autodiff);
    let learner = match learner(model, &controls) {
        Ok(learner) => learner,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let train_loader = DataLoaderBuilder::new(MnistBatcher)
        .batch_size(args.batch_size)
        .shuffle(0)
        .build(train);
    let valid_loader = DataLoaderBuilder::new(MnistBatcher)
        .batch_size(256)
        .build(test);
    let (strategy, name) = if kind == BackendKind::Cuda && (args.ddp || args.devices > 1) {
        let config = DistributedConfig {
            all_reduce_op: ReduceOperation::Mean,
        };
        (ExecutionStrategy::ddp(devices, config), "DDP")
    } else if args.devices == 1 {
        (ExecutionStrategy::single(device), "single device")
    } else {
        (
            ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice),
            "multi-device",
        )
    };
    let artifact_dir = args.artifact_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("adamlab-learner-{}", std::process::id()))
    });
    println!(
        "burn's Learner: the article's CNN with {} on {} {kind} device(s) ({name}), {} epoch(s); logs in {}",
        controls.describe(),
        args.devices,
        args.epochs,
        artifact_dir.display()
    );
    let losses = StepLosses::default();
    let result = SupervisedTraining::new(&artifact_dir, train_loader, valid_loader)
        .with_training_strategy(strategy.into())
        .metric_train(losses.clone())
        .metric_valid_numeric(LossMetric::new())
        .num_epochs(args.epochs)
        .launch(learner);
    if let Some(error) = result.error {
        eprintln!("error: training failed: {error}");
        return ExitCode::FAILURE;
    }
    let losses = losses.losses();
    let tenth = (losses.len() / 10).max(1);
    let mean = |part: &[f32]| part.iter().sum::<f32>() / part.len().max(1) as f32;
    println!(
        "{} steps: mean loss {:.4} over the first tenth, {:.4} over the last",
        losses.len(),
        mean(&losses[..tenth.min(losses.len())]),
        mean(&losses[losses.len().saturating_sub(tenth)..])
    );
    ExitCode::SUCCESS
}

/// The backend and the devices `--backend`, `--devices` and `--ddp` ask for.
fn devices(args: &Args) -> Result<(BackendKind, Vec<burn::tensor::Device>), String> {
    let kind = match &args.backend {
        Some(name) => BackendKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| format!("--backend {name}: expected ndarray, flex, wgpu or cuda"))?,
        None => default_backend().map_err(|e| e.to_string())?,
    };
    if args.ddp && kind != BackendKind::Cuda {
        return Err(format!(
            "--ddp needs --backend cuda: burn-train's all-reduce runs on NCCL only (this run is on {kind})"
        ));
    }
    if kind == BackendKind::Cuda {
        let devices = (0..args.devices)
            .map(cuda_device)
            .collect::<Result<Vec<_>, _>>();
        return Ok((kind, devices.map_err(|e| e.to_string())?));
    }
    let one = device(kind).map_err(|e| e.to_string())?;
    Ok((kind, vec![one; args.devices]))
}

fn controls(args: &Args) -> Result<ControlsSpec, String> {
    let mut controls =
        ControlsSpec::optimizer(OptimizerSpec::parse(&args.optimizer).map_err(|e| e.to_string())?);
    if let Some(text) = &args.lr_schedule {
        controls.schedule = Some(ScheduleSpec::parse(text).map_err(|e| e.to_string())?);
    }
    Ok(controls)
}
