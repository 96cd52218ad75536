//! Training any burn model with adamlab's optimizers and torch's training controls.
//!
//! - [`fit`]: the training loop, generic over the model (burn-train's `TrainStep`): epochs,
//!   evaluation, per-step reports, checkpoints and exact resume, and a stop on a non-finite loss.
//! - [`checkpoint`]: atomic checkpoints of model, optimizer state and progress, for any model.
//! - [`journal`]: the per-step metrics file, append-only and cut back on resume.
//! - [`controls`]: param groups, learning-rate schedules and gradient clipping around each step.
//! - [`learner`]: adamlab's optimizers and schedules in burn-train's `Learner` (its multi-device
//!   and DDP strategies), and a metric recording every step's loss.
//! - [`classification`]: the article's CNN, and softmax regression, on Fashion-MNIST (or any
//!   MNIST-format data) as tasks of the loop.
//! - [`mlp`]: the article's first program, the one-layer MLP on two points, as a task of the loop.
//! - [`language_model`]: a character-level GPT on Debian's fortune cookies, with sampling.
//! - [`test_functions`]: Rosenbrock's function and an ill-conditioned quadratic, whose parameter is
//!   the point.

pub mod checkpoint;
pub mod classification;
pub mod controls;
pub mod ema;
pub mod fit;
pub mod journal;
pub mod language_model;
pub mod learner;
pub mod lookahead;
pub mod mlp;
pub mod swa;
pub mod test_functions;

/// The article's progress line, printed every 10 epochs by both of its programs:
/// `Epoch [10/100], Loss: 0.1234`. `None` for the other epochs.
pub fn epoch_line(epoch: usize, epochs: usize, loss: f32) -> Option<String> {
    epoch.is_multiple_of(10).then(|| format!("Epoch [{epoch}/{epochs}], Loss: {loss:.4}"))
}
