use adamlab_data::MnistBatch;
use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

/// Configuration of [`SoftmaxRegression`]: 28×28 images, 10 classes.
#[derive(Config, Debug)]
pub struct SoftmaxRegressionConfig {
    /// Input features. Default 784 (28×28 pixels).
    #[config(default = 784)]
    pub inputs: usize,
    /// Classes. Default 10.
    #[config(default = 10)]
    pub classes: usize,
}

/// Multinomial logistic regression: one linear layer from the pixels to the class logits,
/// trained with cross-entropy. Its loss is convex in the weights, so every optimizer heads for
/// the same minimum.
///
/// PyTorch name of the layer: `fc` (`fc.weight` `[10, 784]`, `fc.bias`).
#[derive(Module, Debug)]
pub struct SoftmaxRegression {
    /// `nn.Linear(784, 10)`.
    pub fc: Linear,
}

impl SoftmaxRegressionConfig {
    /// Builds the model on `device`, initialised as burn's (and torch's) `Linear` is.
    pub fn init(&self, device: &Device) -> SoftmaxRegression {
        SoftmaxRegression {
            fc: LinearConfig::new(self.inputs, self.classes).init(device),
        }
    }
}

impl SoftmaxRegression {
    /// `[batch, 1, 28, 28]` images → `[batch, classes]` logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(images.flatten::<2>(1, 3)) // [b, 784] → [b, 10]
    }

    /// The logits of a batch and their mean cross-entropy against its labels, as
    /// `nn.CrossEntropyLoss()` computes it.
    pub fn forward_classification(&self, batch: MnistBatch) -> ClassificationOutput {
        let logits = self.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

/// One training step: forward, cross-entropy, backward.
impl TrainStep for SoftmaxRegression {
    type Input = MnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: MnistBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.forward_classification(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for SoftmaxRegression {
    type Input = MnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: MnistBatch) -> ClassificationOutput {
        self.forward_classification(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_regression_has_7850_parameters_and_10_logits() {
        let device = Device::flex();
        let model = SoftmaxRegressionConfig::new().init(&device);
        assert_eq!(model.num_params(), 784 * 10 + 10);
        assert_eq!(model.forward(Tensor::zeros([3, 1, 28, 28], &device)).dims(), [3, 10]);
    }
}
