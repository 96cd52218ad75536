//! Training the article's models with a choice of optimizer.
//!
//! - [`classifier`]: the CNN on Fashion-MNIST (or any MNIST-format data): epochs, evaluation,
//!   per-step reports, exact resume, and a stop on a non-finite loss.
//! - [`checkpoint`]: atomic checkpoints of model, optimizer state and progress.
//! - [`cnn`]: one step of the article's CNN on a batch of images.
//! - [`mlp`]: the article's first program, the one-layer MLP on two points.

pub mod checkpoint;
pub mod classifier;
pub mod cnn;
pub mod controls;
pub mod mlp;

/// The article's progress line, printed every 10 epochs by both of its programs:
/// `Epoch [10/100], Loss: 0.1234`. `None` for the other epochs.
pub fn epoch_line(epoch: usize, epochs: usize, loss: f32) -> Option<String> {
    epoch.is_multiple_of(10).then(|| format!("Epoch [{epoch}/{epochs}], Loss: {loss:.4}"))
}
