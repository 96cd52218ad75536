use adamlab_data::MnistBatch;
use adamlab_nn::conv2d_relu_max_pool;
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

/// Configuration of [`Cnn`]. The defaults are the article's: 10 classes, 128 hidden units.
#[derive(Config, Debug)]
pub struct CnnConfig {
    /// Number of output classes. Default 10.
    #[config(default = 10)]
    pub classes: usize,
    /// Width of the hidden fully connected layer. Default 128.
    #[config(default = 128)]
    pub hidden: usize,
}

/// The article's CNN for 28×28 grayscale images:
///
/// ```text
/// conv1 1→32 3×3 pad 1, ReLU, max-pool 2/2    [b, 32, 14, 14]
/// conv2 32→64 3×3 pad 1, ReLU, max-pool 2/2   [b, 64, 7, 7]
/// flatten                                     [b, 3136]
/// fc1 3136→128, ReLU
/// fc2 128→10                                  logits, for cross-entropy
/// ```
///
/// Field names are the PyTorch program's `state_dict` prefixes (`conv1.weight`, `fc2.bias`, …).
/// Each convolution block (the article's `conv`, `relu`, `pool` calls, its `nn.MaxPool2d(2, 2)`
/// having no parameters) runs as one operation, [`conv2d_relu_max_pool`]: adamlab's own kernels
/// on flex, burn's three operations elsewhere, equal to them (adamlab-nn's tests).
#[derive(Module, Debug)]
pub struct Cnn {
    /// `nn.Conv2d(1, 32, kernel_size=3, padding=1)`.
    pub conv1: Conv2d,
    /// `nn.Conv2d(32, 64, kernel_size=3, padding=1)`.
    pub conv2: Conv2d,
    /// `nn.Linear(64 * 7 * 7, 128)`.
    pub fc1: Linear,
    /// `nn.Linear(128, 10)`.
    pub fc2: Linear,
    /// `nn.ReLU()` after fc1.
    pub relu: Relu,
}

/// Side of the feature map after the two poolings: 28 → 14 → 7.
const FEATURE_SIDE: usize = 7;
/// Channels out of the second convolution.
const FEATURE_CHANNELS: usize = 64;

impl CnnConfig {
    /// Builds the model on `device` with burn's default initialisers.
    pub fn init(&self, device: &Device) -> Cnn {
        let conv = |channels| {
            Conv2dConfig::new(channels, [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Cnn {
            conv1: conv([1, 32]),
            conv2: conv([32, FEATURE_CHANNELS]),
            fc1: LinearConfig::new(FEATURE_CHANNELS * FEATURE_SIDE * FEATURE_SIDE, self.hidden)
                .init(device),
            fc2: LinearConfig::new(self.hidden, self.classes).init(device),
            relu: Relu::new(),
        }
    }
}

impl Cnn {
    /// `[batch, 1, 28, 28]` images → `[batch, classes]` logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = conv2d_relu_max_pool(&self.conv1, images); // [b, 32, 14, 14]
        let x = conv2d_relu_max_pool(&self.conv2, x); // [b, 64, 7, 7]
        let x = x.flatten::<2>(1, 3); // [b, 3136]
        let x = self.relu.forward(self.fc1.forward(x)); // [b, 128]
        self.fc2.forward(x) // [b, 10]
    }
}

impl Cnn {
    /// The logits of a batch and their mean cross-entropy against its labels, as
    /// `nn.CrossEntropyLoss()` computes it.
    pub fn forward_classification(&self, batch: MnistBatch) -> ClassificationOutput {
        let logits = self.forward(batch.images); // [b, classes]
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone()); // [1]
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

/// One training step for adamlab's loop and burn's `Learner`: forward, cross-entropy, backward.
impl TrainStep for Cnn {
    type Input = MnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: MnistBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.forward_classification(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Cnn {
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
    fn cnn_maps_a_batch_of_28x28_images_to_10_logits_each() {
        let device = Device::flex();
        let model = CnnConfig::new().init(&device);
        let logits = model.forward(Tensor::zeros([3, 1, 28, 28], &device));
        assert_eq!(logits.dims(), [3, 10]);
    }

    #[test]
    fn cnn_has_the_articles_parameter_count() {
        // conv1 32·9+32, conv2 64·32·9+64, fc1 3136·128+128, fc2 128·10+10, as torch counts them.
        let expected = (32 * 9 + 32) + (64 * 32 * 9 + 64) + (3136 * 128 + 128) + (128 * 10 + 10);
        assert_eq!(
            CnnConfig::new().init(&Device::flex()).num_params(),
            expected
        );
    }
}
