//! One optimizer step of the article's CNN: cross-entropy on a batch of 28×28 images.

use adamlab_models::Cnn;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy of `model` on `images` (`[batch, 1, 28, 28]`) against `labels` (`[batch]`,
/// class indices), as `nn.CrossEntropyLoss()` computes it.
pub fn loss(model: &Cnn, images: Tensor<4>, labels: Tensor<1, Int>) -> Tensor<1> {
    let logits = model.forward(images);
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, labels)
}

/// One step: forward, cross-entropy, backward, optimizer step. Returns the updated model and the
/// loss before the step.
pub fn step(
    model: Cnn,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
) -> (Cnn, f32) {
    let loss = loss(&model, images, labels);
    let loss_value = loss.clone().into_scalar::<f32>();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optimizer.step(lr, model, grads), loss_value)
}
