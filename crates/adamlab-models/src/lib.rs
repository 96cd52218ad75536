//! adamlab's models as burn modules: the article's two, and the workloads beyond it.
//!
//! - [`Mlp`]: the article's `SimpleModel`, one `Linear(2, 1)`, trained with MSE.
//! - [`Cnn`]: the article's image classifier for 28×28 grayscale images in 10 classes.
//! - [`CharGpt`]: a character-level GPT (causal self-attention, pre-LayerNorm) for English text.
//! - [`SoftmaxRegression`]: one `Linear(784, 10)` with cross-entropy, a convex problem.
//! - [`Rosenbrock`], [`Quadratic`]: optimisation test functions whose parameter is the point.
//!
//! Each is built on a device (`MlpConfig::new().init(&device)`), and its parameters map one to
//! one onto the PyTorch programs' `state_dict` names (the article's, and
//! `tools/reference/workloads.py`'s): [`pytorch`] reads and writes them as the safetensors files
//! PyTorch writes. Each implements burn-train's `TrainStep` and `InferenceStep`, the contract
//! adamlab's training loop and burn's `Learner` both take.

mod char_gpt;
mod cnn;
mod mlp;
pub mod pytorch;
mod softmax_regression;
pub mod test_functions;

pub use char_gpt::{Block, CausalSelfAttention, CharGpt, CharGptConfig, FeedForward};
pub use cnn::{Cnn, CnnConfig};
pub use mlp::{Mlp, MlpBatch, MlpConfig};
pub use softmax_regression::{SoftmaxRegression, SoftmaxRegressionConfig};
pub use test_functions::{NoData, Quadratic, Rosenbrock};
