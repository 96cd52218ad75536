//! `adamlab sample`: text from trained char-gpt weights.

use crate::args::BackendArgs;
use crate::error::CliError;
use crate::train::resolve_device;
use adamlab_data::fortunes::{decode, encode};
use adamlab_models::CharGptConfig;
use adamlab_models::pytorch::{Loaded, load_pytorch_safetensors, tensor_shapes};
use adamlab_train::language_model::sample;
use std::path::{Path, PathBuf};

/// Options of `adamlab sample`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// char-gpt weights in PyTorch's safetensors form, as `train --model char-gpt --save FILE`
    /// writes them. Their shapes give the model's layers, width and context.
    #[arg(long, value_name = "FILE")]
    pub init: PathBuf,
    /// Text to continue (characters outside the model's vocabulary, printable ASCII and newline,
    /// are dropped). Default: a newline.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub prompt: String,
    /// Characters to write after the prompt.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub tokens: usize,
    /// Softmax temperature: 1 draws from the model's distribution, lower is more conservative, 0
    /// always takes the most likely character.
    #[arg(long, value_name = "T", default_value_t = 0.8)]
    pub temperature: f64,
    /// Seed of the draws: the same weights, prompt and seed give the same text on one backend.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Attention heads of the saved model (the file's shapes cannot tell; train uses 4).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub heads: usize,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Runs `adamlab sample`: prints the prompt and what the model writes after it.
pub fn run(args: &SampleArgs) -> Result<(), CliError> {
    if !args.temperature.is_finite() || args.temperature < 0.0 {
        return Err(CliError::Usage(format!(
            "--temperature {}: give a finite number ≥ 0",
            args.temperature
        )));
    }
    let config = config_of(&args.init, args.heads)?;
    let (device, _) = resolve_device(&args.backend)?;
    let Loaded { model, converted } = load_pytorch_safetensors(config.init(&device), &args.init)?;
    if !converted.is_empty() {
        tell!("note: {}: {converted}", args.init.display());
    }
    let prompt = encode(&args.prompt);
    if decode(&prompt) != args.prompt {
        tell!("note: --prompt: characters outside the vocabulary (printable ASCII, newline) were dropped");
    }
    let text = sample(&model, &prompt, args.tokens, args.temperature, args.seed);
    say!("{}{}", decode(&prompt), decode(&text));
    Ok(())
}

/// The char-gpt configuration of the weights in `path`: vocabulary and width from
/// `token.weight`, context from `position.weight`, layers from the `blocks.N.` prefixes.
fn config_of(path: &Path, heads: usize) -> Result<CharGptConfig, CliError> {
    let shapes = tensor_shapes(path)?;
    let shape = |name: &str| {
        shapes.get(name).filter(|s| s.len() == 2).cloned().ok_or_else(|| {
            CliError::Usage(format!(
                "{}: no 2-D tensor `{name}`: not char-gpt weights (train --model char-gpt --save \
                 writes them)",
                path.display()
            ))
        })
    };
    let token = shape("token.weight")?;
    let position = shape("position.weight")?;
    let layers = shapes
        .keys()
        .filter_map(|name| name.strip_prefix("blocks.")?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |last| last + 1);
    let (vocab, d_model, context) = (token[0], token[1], position[0]);
    if heads == 0 || !d_model.is_multiple_of(heads) {
        return Err(CliError::Usage(format!(
            "--heads {heads}: the model's width {d_model} is not a multiple of it"
        )));
    }
    Ok(CharGptConfig {
        vocab,
        context,
        d_model,
        heads,
        layers,
    })
}
