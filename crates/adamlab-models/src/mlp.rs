use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

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
