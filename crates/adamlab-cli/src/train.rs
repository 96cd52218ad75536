//! `adamlab train`.

use crate::args::{BackendArgs, ModelArg, TrainArgs};
use crate::error::CliError;
use crate::progress::Reporter;
use adamlab_backend::{default_backend, describe, device};
use adamlab_data::{MnistDataset, Split};
use adamlab_models::pytorch::{load_pytorch_safetensors, save_pytorch_safetensors};
use adamlab_models::{CnnConfig, MlpConfig};
use adamlab_train::checkpoint::Checkpointer;
use adamlab_train::classifier::{self, RunConfig, Start};
use adamlab_train::{OptimizerSettings, epoch_line, mlp};
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

/// The article's defaults per model: (learning rate, epochs).
const CNN_DEFAULTS: (f64, usize) = (1e-3, 2);
const MLP_DEFAULTS: (f64, usize) = (0.01, 100);

/// The backend the user asked for, or the default one, with its description.
pub fn resolve_device(args: &BackendArgs) -> Result<(Device, String), CliError> {
    let kind = match args.backend {
        Some(kind) => kind,
        None => default_backend()?,
    };
    Ok((device(kind)?, describe(kind)))
}

/// Runs `adamlab train`.
pub fn run(args: &TrainArgs) -> Result<(), CliError> {
    let (default_lr, default_epochs) = match args.model {
        ModelArg::Cnn => CNN_DEFAULTS,
        ModelArg::Mlp => MLP_DEFAULTS,
    };
    let settings = OptimizerSettings {
        kind: args.optimizer.into(),
        lr: args.lr.unwrap_or(default_lr),
        beta1: args.beta1,
        beta2: args.beta2,
        eps: args.eps,
        weight_decay: args.weight_decay,
        amsgrad: args.amsgrad,
        maximize: args.maximize,
    };
    settings.validate()?;
    check_flags(args)?;
    let epochs = args.epochs.unwrap_or(default_epochs);
    let (device, described) = resolve_device(&args.backend)?;
    match args.model {
        ModelArg::Cnn => train_cnn(args, settings, epochs, device, &described),
        ModelArg::Mlp => train_mlp(args, settings, epochs, device, &described),
    }
}

/// Flags that contradict each other or the model, refused before any work starts.
fn check_flags(args: &TrainArgs) -> Result<(), CliError> {
    match args.model {
        ModelArg::Cnn => {
            if args.batch_size == 0 {
                return Err(CliError::Usage("--batch-size must be at least 1".into()));
            }
            if args.resume && args.init.is_some() {
                return Err(CliError::Usage(
                    "--resume continues from the checkpoint's weights: drop --init".into(),
                ));
            }
        }
        ModelArg::Mlp => {
            let cnn_only = [
                (args.checkpoint_dir.is_some(), "--checkpoint-dir"),
                (args.limit_train.is_some(), "--limit-train"),
                (args.limit_test.is_some(), "--limit-test"),
                (args.no_shuffle, "--no-shuffle"),
            ];
            if let Some((_, flag)) = cnn_only.iter().find(|(set, _)| *set) {
                return Err(CliError::Usage(format!(
                    "{flag} applies to --model cnn; the MLP trains on the article's two points"
                )));
            }
        }
    }
    Ok(())
}

fn train_cnn(
    args: &TrainArgs,
    settings: OptimizerSettings,
    epochs: usize,
    device: Device,
    described: &str,
) -> Result<(), CliError> {
    let mut train_set = MnistDataset::load(&args.data.data_dir, Split::Train)?;
    if let Some(n) = args.limit_train {
        train_set = train_set.truncated(n);
    }
    let mut test_set = MnistDataset::load(&args.data.data_dir, Split::Test)?;
    if let Some(n) = args.limit_test {
        test_set = test_set.truncated(n);
    }
    let start = if args.resume {
        Start::Resume
    } else if let Some(path) = &args.init {
        let model = CnnConfig::new().init(&device.clone().autodiff());
        Start::Weights(Box::new(load_pytorch_safetensors(model, path)?))
    } else {
        Start::Seeded
    };
    let config = RunConfig {
        epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        shuffle: !args.no_shuffle,
        optimizer: settings,
    };
    println!(
        "training the article's CNN on {} images from {} with {} (lr {}), batch {}, {epochs} epoch(s), on {described}",
        train_set.len(),
        args.data.data_dir.display(),
        config.optimizer.kind,
        config.optimizer.lr,
        config.batch_size,
    );
    let checkpointer = args.checkpoint_dir.as_ref().map(Checkpointer::new);
    let mut reporter = Reporter::new(epochs, open_metrics(args.metrics_out.as_deref(), args.resume)?);
    let model = classifier::train(
        &device,
        Arc::new(train_set),
        Arc::new(test_set),
        &config,
        start,
        checkpointer.as_ref(),
        &mut reporter,
    );
    finish_metrics(reporter, args.metrics_out.as_deref())?;
    let model = model?;
    if let Some(path) = &args.save {
        save_pytorch_safetensors(&model, path)?;
        println!("saved the weights to {}", path.display());
    }
    Ok(())
}

fn train_mlp(
    args: &TrainArgs,
    settings: OptimizerSettings,
    epochs: usize,
    device: Device,
    described: &str,
) -> Result<(), CliError> {
    let device = device.autodiff();
    device.seed(args.seed);
    let mut model = MlpConfig::new().init(&device);
    if let Some(path) = &args.init {
        model = load_pytorch_safetensors(model, path)?;
    }
    let mut optimizer = settings.build()?;
    // stderr: stdout carries exactly the article's ten lines.
    eprintln!(
        "training the article's MLP with {} (lr {}) for {epochs} epochs on {described}",
        settings.kind, settings.lr
    );
    let mut metrics = open_metrics(args.metrics_out.as_deref(), false)?;
    let mut write_error = None;
    let model = mlp::train(model, &mut optimizer, settings.lr, epochs, |epoch, loss| {
        if let Some(line) = epoch_line(epoch, epochs, loss) {
            println!("{line}");
        }
        if let Some(out) = &mut metrics {
            let line = serde_json::json!({"epoch": epoch, "step": epoch, "loss": loss});
            if let Err(err) = writeln!(out, "{line}") {
                write_error.get_or_insert(err);
            }
        }
    });
    if let Some(path) = &args.metrics_out {
        let flushed = metrics.map_or(Ok(()), |mut out| out.flush());
        if let Some(source) = write_error.or(flushed.err()) {
            return Err(CliError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    if let Some(path) = &args.save {
        save_pytorch_safetensors(&model, path)?;
        eprintln!("saved the weights to {}", path.display());
    }
    Ok(())
}

/// Opens the metrics file: truncated for a new run, appended to when resuming.
fn open_metrics(path: Option<&Path>, append: bool) -> Result<Option<Box<dyn Write>>, CliError> {
    let Some(path) = path else { return Ok(None) };
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|source| CliError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(Box::new(BufWriter::new(file))))
}

fn finish_metrics(reporter: Reporter, path: Option<&Path>) -> Result<(), CliError> {
    reporter.finish().map_err(|source| CliError::Io {
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        source,
    })
}
