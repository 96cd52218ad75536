//! The character-level language-model task: [`CharGpt`] on the fortune cookies of Debian's
//! `fortunes` and `fortunes-min` ([`adamlab_data::fortunes`]), as the pieces [`crate::fit`]
//! takes: the model, the training windows with their fingerprint, and the validation loss in
//! nats per character after every epoch. Also: text from trained weights ([`sample`]), and one
//! step for replays that drive an optimizer directly ([`step`]).
//!
//! An epoch is one pass over the training split's windows (`context + 1` characters at every
//! multiple of `context`, each character predicted once), in an order that is a pure function
//! of the seed and the epoch.

use crate::fit::{Evaluation, TrainData};
use adamlab_data::fortunes::{TextBatch, TextBatcher, TextWindows, Window};
use adamlab_models::{CharGpt, CharGptConfig};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Int, Tensor, TensorData};
use burn::train::{ClassificationOutput, InferenceStep, TrainStep};
use std::sync::Arc;

/// The learning rate `adamlab train --model char-gpt` uses by default.
pub const DEFAULT_LR: f64 = 1e-3;
/// Windows per optimizer step by default.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Epochs by default: one pass over the training text (565 steps of 32 windows).
pub const DEFAULT_EPOCHS: usize = 1;

/// The model's name in a checkpoint's identity, with its configuration:
/// `char-gpt(layers=4, heads=4, d_model=128, context=128, vocab=96)`.
pub fn model_name(config: &CharGptConfig) -> String {
    format!(
        "char-gpt(layers={}, heads={}, d_model={}, context={}, vocab={})",
        config.layers, config.heads, config.d_model, config.context, config.vocab
    )
}

/// The training windows as batches of [`TextBatch`], fingerprinted by the CRC-32 of the tokens
/// they cover and the context.
pub fn train_data(windows: TextWindows) -> TrainData<Window, TextBatcher> {
    TrainData {
        fingerprint: windows.fingerprint(),
        dataset: Arc::new(windows),
        batcher: TextBatcher,
    }
}

/// Mean cross-entropy per character of `model` (without autodiff) on every window of
/// `windows`, in batches of `batch_size`, in nats: the validation loss.
pub fn evaluate<M>(model: &M, windows: &Arc<TextWindows>, batch_size: usize) -> Evaluation
where
    M: Module + InferenceStep<Input = TextBatch, Output = ClassificationOutput>,
{
    let device = model.devices().into_iter().next().unwrap_or_default();
    let loader = DataLoaderBuilder::new(TextBatcher)
        .batch_size(batch_size.clamp(1, windows.len().max(1)))
        .set_device(device)
        .build(windows.clone());
    let (mut loss_sum, mut characters) = (0f64, 0usize);
    for batch in loader.iter() {
        let batch = batch.expect("in-memory datasets cannot fail");
        let n = batch.targets.dims().iter().product::<usize>();
        let output = InferenceStep::step(model, batch);
        loss_sum += f64::from(output.loss.into_scalar::<f32>()) * n as f64;
        characters += n;
    }
    Evaluation {
        loss: loss_sum / characters.max(1) as f64,
        accuracy: None,
        distance: None,
        examples: windows.len(),
    }
}

/// One step on `batch`: forward, cross-entropy, backward, optimizer step. Returns the updated
/// model and the loss before the step. For replays; training goes through [`crate::fit`].
pub fn step(
    model: CharGpt,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    batch: TextBatch,
) -> (CharGpt, f32) {
    let output = TrainStep::step(&model, batch);
    let loss_value = output.item.loss.into_scalar::<f32>();
    (optimizer.step(lr, model, output.grads), loss_value)
}

/// `count` tokens that `model` (without autodiff) writes after `prompt`: each drawn from the
/// softmax of the last position's logits divided by `temperature` (the most likely token when
/// `temperature` is 0), seeing at most the model's context. The draws come from a SplitMix64
/// stream seeded with `seed`: the same weights, prompt and seed give the same text on one
/// backend. An empty prompt starts from a newline.
pub fn sample(model: &CharGpt, prompt: &[u8], count: usize, temperature: f64, seed: u64) -> Vec<u8> {
    let device = model.devices().into_iter().next().unwrap_or_default();
    let context = model.context();
    let mut tokens: Vec<u8> = if prompt.is_empty() { vec![0] } else { prompt.to_vec() };
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let window = &tokens[tokens.len().saturating_sub(context)..];
        let input: Vec<i64> = window.iter().map(|&t| i64::from(t)).collect();
        let t = input.len();
        let input = Tensor::<2, Int>::from_data(TensorData::new(input, [1, t]), &device);
        let logits = model.forward(input); // [1, t, vocab]
        let [_, _, vocab] = logits.dims();
        let last: Vec<f32> = logits
            .slice([0..1, t - 1..t, 0..vocab])
            .into_data()
            .try_to_vec()
            .expect("float logits");
        let next = draw(&last, temperature, &mut rng);
        tokens.push(next);
        out.push(next);
    }
    out
}

/// A token from `logits`: the most likely at temperature 0, else a draw from
/// softmax(logits / temperature).
fn draw(logits: &[f32], temperature: f64, rng: &mut SplitMix64) -> u8 {
    let best = logits
        .iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > logits[best] { i } else { best });
    if temperature <= 0.0 {
        return best as u8;
    }
    let top = f64::from(logits[best]);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&x| ((f64::from(x) - top) / temperature).exp())
        .collect();
    let mut u = rng.uniform() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i as u8;
        }
        u -= w;
    }
    best as u8
}

/// Vigna's SplitMix64: a small, seedable stream of uniform numbers.
struct SplitMix64(u64);

impl SplitMix64 {
    /// A number in [0, 1) with 53 random bits.
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn temperature_0_takes_the_most_likely_token_and_draws_follow_the_softmax() {
        let mut rng = SplitMix64(0);
        assert_eq!(draw(&[0.0, 3.0, 1.0], 0.0, &mut rng), 1);
        // p = softmax(ln 1, ln 3) = (1/4, 3/4).
        let logits = [0.0, 3f32.ln()];
        let ones = (0..4000).filter(|_| draw(&logits, 1.0, &mut rng) == 1).count();
        assert!((2850..3150).contains(&ones), "{ones} of 4000");
    }

    #[test]
    fn sampling_is_a_function_of_the_seed() {
        let device = Device::flex();
        let model = CharGptConfig::new()
            .with_layers(1)
            .with_d_model(16)
            .with_heads(2)
            .with_context(4)
            .init(&device);
        let a = sample(&model, &[40, 41], 10, 1.0, 7);
        assert_eq!(a.len(), 10);
        assert_eq!(a, sample(&model, &[40, 41], 10, 1.0, 7));
        assert_ne!(a, sample(&model, &[40, 41], 10, 1.0, 8));
        assert!(a.iter().all(|&t| usize::from(t) < 96));
    }
}
