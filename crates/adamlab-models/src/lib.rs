//! The article's two models as burn modules.
//!
//! - [`Mlp`]: the article's `SimpleModel`, one `Linear(2, 1)`, trained with MSE.
//! - [`Cnn`]: the article's image classifier for 28×28 grayscale images in 10 classes.
//!
//! Both are built from their config on a device (`MlpConfig::new().init(&device)`), and their
//! parameters map one to one onto the PyTorch programs' `state_dict` names: [`pytorch`] reads
//! and writes them as the safetensors files PyTorch writes. Each implements burn-train's
//! `TrainStep` and `InferenceStep`, the contract adamlab's training loop and burn's `Learner`
//! both take.

mod cnn;
mod mlp;
pub mod pytorch;

pub use cnn::{Cnn, CnnConfig};
pub use mlp::{Mlp, MlpBatch, MlpConfig};
