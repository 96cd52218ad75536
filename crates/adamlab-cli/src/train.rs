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
use adamlab_optim::{OptimizerSpec, Value};
use adamlab_train::{epoch_line, mlp};
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
    let spec = optimizer_spec(args, default_lr)?;
    check_flags(args)?;
    let epochs = args.epochs.unwrap_or(default_epochs);
    let (device, described) = resolve_device(&args.backend)?;
    match args.model {
        ModelArg::Cnn => train_cnn(args, spec, epochs, device, &described),
        ModelArg::Mlp => train_mlp(args, spec, epochs, device, &described),
    }
}

/// The optimizer spec of `--optimizer`, with `--lr` and the Adam-era flags (`--beta1`, `--eps`,
/// …) folded in as the keywords they stand for, and the model's learning rate when none is given.
pub fn optimizer_spec(args: &TrainArgs, default_lr: f64) -> Result<OptimizerSpec, CliError> {
    let mut spec = OptimizerSpec::parse(&args.optimizer)?;
    if let Some(lr) = args.lr {
        if spec.is_given("lr") {
            return Err(CliError::Usage(format!(
                "the learning rate is given twice, in --optimizer '{}' and --lr: give it once",
                args.optimizer
            )));
        }
        spec = spec.with("lr", Value::Number(lr))?;
    } else if !spec.is_given("lr") {
        spec = spec.with("lr", Value::Number(default_lr))?;
    }
    if args.beta1.is_some() || args.beta2.is_some() {
        // An optimizer without `betas` refuses the keyword below, naming the ones it has.
        let (beta1, beta2) = if spec.args().values().contains_key("betas") {
            spec.args().pair("betas")
        } else {
            (0.9, 0.999)
        };
        let betas = Value::Tuple(vec![
            Value::Number(args.beta1.unwrap_or(beta1)),
            Value::Number(args.beta2.unwrap_or(beta2)),
        ]);
        spec = spec.with("betas", betas)?;
    }
    let flags = [
        ("eps", args.eps.map(Value::Number)),
        ("weight_decay", args.weight_decay.map(Value::Number)),
        ("amsgrad", args.amsgrad.then_some(Value::Bool(true))),
        ("maximize", args.maximize.then_some(Value::Bool(true))),
    ];
    for (keyword, value) in flags {
        if let Some(value) = value {
            spec = spec.with(keyword, value)?;
        }
    }
    Ok(spec)
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
    spec: OptimizerSpec,
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
        optimizer: spec,
    };
    println!(
        "training the article's CNN on {} images from {} with {} (lr {}), batch {}, {epochs} epoch(s), on {described}",
        train_set.len(),
        args.data.data_dir.display(),
        config.optimizer,
        config.optimizer.lr(),
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
    spec: OptimizerSpec,
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
    let lab = spec.build()?;
    let mut optimizer = lab.module_optimizer();
    let lr = spec.lr();
    // stderr: stdout carries exactly the article's ten lines.
    eprintln!("training the article's MLP with {spec} (lr {lr}) for {epochs} epochs on {described}");
    let mut metrics = open_metrics(args.metrics_out.as_deref(), false)?;
    let mut write_error = None;
    let model = mlp::train(model, &mut optimizer, lr, epochs, |epoch, loss| {
        if let Some(line) = epoch_line(epoch, epochs, loss) {
            println!("{line}");
        }
        if let Some(out) = &mut metrics {
            let line = serde_json::json!({"epoch": epoch, "step": epoch, "loss": loss, "lr": lr});
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
    let model = adamlab_optim::eval_weights(&*lab, &optimizer, model);
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
