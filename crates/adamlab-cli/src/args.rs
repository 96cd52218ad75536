//! The command line, as clap derives it: every `///` comment is `--help` text.

use adamlab_backend::BackendKind;
use adamlab_data::DATA_DIR_ENV;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Optimizers for burn that compute what PyTorch's compute: train, verify and benchmark them on CPU or GPU.
#[derive(Debug, Parser)]
#[command(name = "adamlab", version, about)]
pub struct Cli {
    /// What to do (default: `train`, the article's CNN on Fashion-MNIST).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// adamlab's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one of the article's models.
    Train(Box<TrainArgs>),
    /// Benchmarks: optimizer steps, training throughput, the optimizer shoot-out, side by side
    /// with PyTorch; reports with figures.
    Bench(crate::bench::BenchArgs),
    /// Report test loss and accuracy of saved CNN weights.
    Eval(EvalArgs),
    /// Check every optimizer against its reference's fixtures and burn's built-ins, on a backend.
    Verify(VerifyArgs),
    /// List every optimizer with its hyper-parameters, defaults, ranges and reference.
    Optimizers(OptimizersArgs),
    /// List every learning-rate schedule with its keywords and defaults.
    Schedules,
    /// List every model `train --model` takes, with its data, parameter count and metric.
    Models,
    /// Print text that char-gpt weights (as `train --model char-gpt --save` writes them) write
    /// after a prompt.
    Sample(crate::sample::SampleArgs),
}

/// Options shared by every command that runs on a backend.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Backend to run on. Default: wgpu on a hardware GPU when compiled in, else flex, else
    /// ndarray. wgpu needs the binary built with `--features wgpu`.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
}

/// Where the images are.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Directory of MNIST-format IDX files (train-images-idx3-ubyte[.gz], …), Fashion-MNIST or
    /// classic MNIST. Pixels are scaled to [0, 1], with no mean/std normalisation.
    #[arg(long, env = DATA_DIR_ENV, default_value = adamlab_data::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Options of `adamlab train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The model: the article's `cnn` on Fashion-MNIST, or its `mlp`, `Linear(2, 1)` on two
    /// points (one epoch is one full-batch step); or a workload beyond the article: `char-gpt`
    /// (Debian's fortune cookies, one epoch is a pass over the text), `softmax-regression`,
    /// `rosenbrock`, `quadratic` (epochs of 1,000 steps). `adamlab models` lists them.
    #[arg(long, value_enum, default_value = "cnn")]
    pub model: ModelArg,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Optimizer: a name or a torch-like call with torch's keyword names, e.g. `sgd`,
    /// `'sgd(momentum=0.9, nesterov=true)'`, `'adamw(betas=(0.8, 0.9), weight_decay=0.1)'`,
    /// `'lion(betas=(0.9, 0.99), weight_decay=1.0)'`. `adamlab optimizers` lists them all; `burn-NAME`
    /// runs burn's own version where it has one.
    #[arg(long, value_name = "SPEC", default_value = "adam")]
    pub optimizer: String,
    /// Learning rate (or `lr=` in the spec, not both). Default: the article's, 1e-3 for the CNN
    /// and 0.01 for the MLP, whatever the optimizer; 1e-3 for the other models.
    #[arg(long)]
    pub lr: Option<f64>,
    /// β₁ (the spec's `betas=(β₁, β₂)`), for the optimizers that have `betas`.
    #[arg(long)]
    pub beta1: Option<f64>,
    /// β₂ (the spec's `betas=(β₁, β₂)`), for the optimizers that have `betas`.
    #[arg(long)]
    pub beta2: Option<f64>,
    /// The spec's `eps`, for the optimizers that have it.
    #[arg(long)]
    pub eps: Option<f64>,
    /// The spec's `weight_decay`: L2 for `adam`, decoupled for `adamw`.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// The spec's `amsgrad=true`.
    #[arg(long)]
    pub amsgrad: bool,
    /// The spec's `maximize=true`: maximise the loss instead of minimising it.
    #[arg(long)]
    pub maximize: bool,
    /// Learning-rate schedule, with torch.optim.lr_scheduler's names, keywords and values, stepped
    /// once per optimizer step from the optimizer's lr: `'cosine(t_max=1876)'`,
    /// `'step(step_size=30, gamma=0.5)'`, `'sequential(linear(start_factor=0.1, total_iters=10),
    /// cosine(t_max=90))'`, `'onecycle(max_lr=0.01, total_steps=1876)'` (which also cycles
    /// momentum or β₁, as torch does). `adamlab schedules` lists them all. Default: a constant lr.
    #[arg(long, value_name = "SPEC")]
    pub lr_schedule: Option<String>,
    /// Clip the gradients before each step as torch.nn.utils.clip_grad_norm_ does: one norm over
    /// every parameter's gradient, all scaled by max_norm / (norm + 1e-6) when that is below 1.
    #[arg(long, value_name = "MAX", conflicts_with = "clip_grad_value")]
    pub clip_grad_norm: Option<f64>,
    /// The p of --clip-grad-norm's p-norm: 2 by default, `inf` for the largest |gradient|.
    #[arg(long, value_name = "P", requires = "clip_grad_norm")]
    pub clip_norm_type: Option<f64>,
    /// Clamp every gradient element to [-V, V] before each step, as
    /// torch.nn.utils.clip_grad_value_ does.
    #[arg(long, value_name = "V")]
    pub clip_grad_value: Option<f64>,
    /// No weight decay on the biases (parameters named `*.bias`): the param group of ported
    /// PyTorch code, `{"params": biases, "weight_decay": 0}`. Needs an optimizer with
    /// `weight_decay`.
    #[arg(long)]
    pub no_decay_bias: bool,
    /// Accumulate the gradients of N batches of --batch-size into each optimizer step, as one
    /// batch of N·B would give under a mean loss (torch's `(loss / N).backward()` N times).
    #[arg(long, value_name = "N")]
    pub accumulate: Option<usize>,
    /// Keep an exponential moving average of the weights with this decay (0.999 is usual), as
    /// torch's `AveragedModel` with `get_ema_multi_avg_fn`: evaluation and --save use it.
    #[arg(long, value_name = "DECAY", allow_negative_numbers = true)]
    pub ema: Option<f64>,
    /// Skip a step whose loss or gradients are not finite (counted, and journalled as
    /// `"skipped":true`) instead of stopping the run.
    #[arg(long)]
    pub skip_nonfinite: bool,
    /// Lookahead around the optimizer, synchronising every K steps (pytorch-optimizer's
    /// `Lookahead(optimizer, k=K)`; 5 in the paper).
    #[arg(long, value_name = "K")]
    pub lookahead: Option<usize>,
    /// Lookahead's alpha: how far the slow weights move towards the fast ones (default 0.5).
    #[arg(long, value_name = "ALPHA", requires = "lookahead", allow_negative_numbers = true)]
    pub lookahead_alpha: Option<f64>,
    /// Stochastic weight averaging after N epochs, as torch's `AveragedModel` + `SWALR`: from the
    /// end of epoch N+1 on, every epoch's end averages the weights and anneals the lr towards
    /// --swa-lr; evaluation and --save use the average.
    #[arg(long, value_name = "N", requires = "swa_lr")]
    pub swa_after: Option<usize>,
    /// SWALR's `swa_lr`.
    #[arg(long, value_name = "LR", requires = "swa_after", allow_negative_numbers = true)]
    pub swa_lr: Option<f64>,
    /// SWALR's `anneal_epochs` (default 10).
    #[arg(long, value_name = "N", requires = "swa_after")]
    pub swa_anneal_epochs: Option<usize>,
    /// SWALR's `anneal_strategy`: `cos` (default) or `linear`.
    #[arg(long, value_name = "STRATEGY", requires = "swa_after", value_parser = ["cos", "linear"])]
    pub swa_anneal_strategy: Option<String>,
    /// Number of epochs (to reach, when resuming). Default: 2 for the CNN and softmax regression,
    /// 100 for the MLP, 1 for char-gpt, 10 for the test functions.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per optimizer step (CNN; default 64). A batch larger than the training set is the
    /// whole set. The MLP takes its two points in one batch, as the article does.
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Seed of the initial weights and of every epoch's shuffle.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only, in file order (CNN).
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only, in file order (CNN; default: all 10,000).
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Keep the training images in file order instead of shuffling every epoch (CNN).
    #[arg(long)]
    pub no_shuffle: bool,
    #[command(flatten)]
    pub data: DataArgs,
    /// Start from weights PyTorch saved as safetensors for the article's model, with
    /// PyTorch's names (`conv1.weight`, `fc.bias`, …) and layouts.
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Write the trained weights to FILE as safetensors in PyTorch's names and layouts (loadable
    /// with `model.load_state_dict(safetensors.torch.load_file(FILE))`).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Write metrics as JSON lines to FILE: one per optimizer step (epoch, step, loss, lr), one
    /// per epoch (test loss and accuracy). Each line is written as it comes; --resume cuts the
    /// file back to the checkpoint's step before appending.
    #[arg(long, value_name = "FILE")]
    pub metrics_out: Option<PathBuf>,
    /// Write a checkpoint (model, optimizer state, progress) to DIR after every epoch (CNN). DIR
    /// is locked while the run lasts; a new run refuses a DIR holding another run's checkpoints.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Also checkpoint every N optimizer steps, not only at epoch ends: a killed run then
    /// repeats at most N steps.
    #[arg(long, value_name = "N", requires = "checkpoint_dir")]
    pub checkpoint_every: Option<usize>,
    /// Keep the newest N checkpoints in --checkpoint-dir, removing older ones.
    #[arg(long, value_name = "N", default_value_t = 2, requires = "checkpoint_dir")]
    pub keep_checkpoints: usize,
    /// Continue from the latest checkpoint in --checkpoint-dir, exactly as the uninterrupted run
    /// would have, up to --epochs.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// Start a new run in a --checkpoint-dir that holds an earlier run's checkpoints, removing
    /// them (without it, such a run is refused).
    #[arg(long, requires = "checkpoint_dir", conflicts_with = "resume")]
    pub overwrite: bool,
}

/// Options of `adamlab eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// CNN weights in PyTorch's safetensors form (as `train --save` writes them).
    #[arg(long, value_name = "FILE")]
    pub init: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Images per evaluation batch (at most the test set's size).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
}

/// Options of `adamlab verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Check only this optimizer (a registry name, e.g. `sgd`): its replays, its MLP fixture and
    /// its burn parity cases.
    #[arg(long, value_name = "NAME")]
    pub optimizer: Option<String>,
}

/// Options of `adamlab optimizers`.
#[derive(Debug, clap::Args)]
pub struct OptimizersArgs {
    /// Show only this optimizer.
    pub name: Option<String>,
}

/// The models `train` knows (`adamlab models` lists them with their data and metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// The article's CNN, on Fashion-MNIST.
    Cnn,
    /// The article's one-layer MLP, `Linear(2, 1)`, MSE on two points.
    Mlp,
    /// A character-level GPT (4 layers, 4 heads, d 128, context 128) on Debian's fortune cookies.
    CharGpt,
    /// Softmax regression, one `Linear(784, 10)`, on Fashion-MNIST.
    SoftmaxRegression,
    /// Rosenbrock's function from (−1.2, 1); the parameter is the point.
    Rosenbrock,
    /// An ill-conditioned quadratic (10 dimensions, condition number 1000); the parameter is the
    /// point.
    Quadratic,
}
