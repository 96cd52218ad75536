//! The article's classification task: its CNN (or softmax regression) on an MNIST-format dataset
//! (Fashion-MNIST by default), as the pieces [`crate::fit`] takes: the model, the training data with its
//! fingerprint, and the evaluation (loss and accuracy) after every epoch. One step of it, for
//! replays that drive an optimizer directly, is [`step`].

use crate::fit::{Evaluation, Model, TrainData};
use adamlab_data::{MnistBatch, MnistBatcher, MnistDataset, MnistItem};
use adamlab_models::{Cnn, CnnConfig, SoftmaxRegression, SoftmaxRegressionConfig};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Int, Tensor};
use burn::module::Module;
use burn::train::{ClassificationOutput, InferenceStep, TrainStep};
use std::sync::Arc;

/// The article's CNN for [`crate::fit`]: named `cnn`, with burn's default initialisers.
pub fn model() -> Model<'static, Cnn> {
    Model {
        name: "cnn".into(),
        init: &init,
    }
}

fn init(device: &Device) -> Cnn {
    CnnConfig::new().init(device)
}

/// Softmax regression's default learning rate in `adamlab train`: the CNN's, 1e-3.
pub const SOFTMAX_REGRESSION_LR: f64 = 1e-3;

/// Softmax regression (one `Linear(784, 10)`, a convex problem) on the same images, for
/// [`crate::fit`]: named `softmax-regression`, initialised as burn's `Linear` is. It trains on
/// [`train_data`] and is evaluated by [`evaluate`], as the CNN is.
pub fn softmax_regression() -> Model<'static, SoftmaxRegression> {
    Model {
        name: "softmax-regression".into(),
        init: &init_softmax_regression,
    }
}

fn init_softmax_regression(device: &Device) -> SoftmaxRegression {
    SoftmaxRegressionConfig::new().init(device)
}

/// The training images as batches of [`MnistBatch`], fingerprinted by the CRC-32 of their pixels
/// and labels.
pub fn train_data(train_set: Arc<MnistDataset>) -> TrainData<MnistItem, MnistBatcher> {
    TrainData {
        fingerprint: format!("crc32 {:08x}", train_set.checksum()),
        dataset: train_set,
        batcher: MnistBatcher,
    }
}

/// Mean cross-entropy of `model` on `images` (`[batch, 1, 28, 28]`) against `labels` (`[batch]`,
/// class indices), as `nn.CrossEntropyLoss()` computes it.
pub fn loss(model: &Cnn, images: Tensor<4>, labels: Tensor<1, Int>) -> Tensor<1> {
    model
        .forward_classification(MnistBatch {
            images,
            targets: labels,
        })
        .loss
}

/// One step: forward, cross-entropy, backward, optimizer step. Returns the updated model and the
/// loss before the step. For replays; training goes through [`crate::fit`].
pub fn step(
    model: Cnn,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
) -> (Cnn, f32) {
    let output = TrainStep::step(
        &model,
        MnistBatch {
            images,
            targets: labels,
        },
    );
    let loss_value = output.item.loss.into_scalar::<f32>();
    (optimizer.step(lr, model, output.grads), loss_value)
}

/// Mean cross-entropy and accuracy of `model` (without autodiff) on `dataset`, in batches of
/// `batch_size`: the article's CNN, or any classifier of MNIST-format images.
pub fn evaluate<M>(model: &M, dataset: &Arc<MnistDataset>, batch_size: usize) -> Evaluation
where
    M: Module + InferenceStep<Input = MnistBatch, Output = ClassificationOutput>,
{
    let device = model.devices().into_iter().next().unwrap_or_default();
    let loader = DataLoaderBuilder::new(MnistBatcher)
        .batch_size(batch_size.clamp(1, dataset.len().max(1)))
        .set_device(device)
        .build(dataset.clone());
    let (mut loss_sum, mut correct, mut images) = (0f64, 0usize, 0usize);
    for batch in loader.iter() {
        let batch = batch.expect("in-memory datasets cannot fail");
        let n = batch.targets.dims()[0];
        let output = InferenceStep::step(model, batch);
        let predicted = output.output.argmax(1).flatten::<1>(0, 1);
        correct += predicted
            .equal(output.targets)
            .int()
            .sum()
            .into_scalar::<i64>() as usize;
        loss_sum += f64::from(output.loss.into_scalar::<f32>()) * n as f64;
        images += n;
    }
    Evaluation {
        loss: loss_sum / images.max(1) as f64,
        accuracy: Some(correct as f64 / images.max(1) as f64),
        distance: None,
        examples: images,
    }
}
