use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::nn::loss::{MseLoss, Reduction};
use burn::tensor::{Device, Tensor};
use burn::train::{InferenceStep, RegressionOutput, TrainOutput, TrainStep};

/// Configuration of [`Mlp`]. The defaults are the article's: 2 inputs, 1 output.
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Number of input features. Default 2.
    #[config(default = 2)]
    pub inputs: usize,
    /// Number of outputs. Default 1.
    #[config(default = 1)]
    pub outputs: usize,
}

/// The article's `SimpleModel`: a single fully connected layer, `y = x·Wᵀ + b`.
///
/// PyTorch name of the layer: `fc` (`fc.weight`, `fc.bias`).
#[derive(Module, Debug)]
pub struct Mlp {
    /// The linear layer, `nn.Linear(inputs, outputs)`.
    pub fc: Linear,
}

impl MlpConfig {
    /// Builds the model on `device`, initialised as burn's `Linear` is (Kaiming-uniform, which
    /// draws from the same range as PyTorch's default).
    pub fn init(&self, device: &Device) -> Mlp {
        Mlp {
            fc: LinearConfig::new(self.inputs, self.outputs).init(device),
        }
    }
}

impl Mlp {
    /// `[batch, inputs]` → `[batch, outputs]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc.forward(x)
    }
}

/// A batch of regression examples: `[batch, inputs]` features and `[batch, outputs]` targets.
#[derive(Debug, Clone)]
pub struct MlpBatch {
    /// `[batch, inputs]`.
    pub inputs: Tensor<2>,
    /// `[batch, outputs]`.
    pub targets: Tensor<2>,
}

impl Mlp {
    /// The predictions of a batch and their mean squared error, as `nn.MSELoss()` computes it.
    pub fn forward_regression(&self, batch: MlpBatch) -> RegressionOutput {
        let output = self.forward(batch.inputs); // [b, outputs]
        let loss = MseLoss::new().forward(output.clone(), batch.targets.clone(), Reduction::Mean); // [1]
        RegressionOutput::new(loss, output, batch.targets)
    }
}

/// One training step for adamlab's loop and burn's `Learner`: forward, MSE, backward.
impl TrainStep for Mlp {
    type Input = MlpBatch;
    type Output = RegressionOutput;

    fn step(&self, batch: MlpBatch) -> TrainOutput<RegressionOutput> {
        let item = self.forward_regression(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Mlp {
    type Input = MlpBatch;
    type Output = RegressionOutput;

    fn step(&self, batch: MlpBatch) -> RegressionOutput {
        self.forward_regression(batch)
    }
}
