//! signSGD with momentum (Bernstein et al., 2018, <https://arxiv.org/abs/1802.04434>), written
//! outside adamlab's library crates to show that an optimizer from anywhere plugs into adamlab's
//! training loop and verification suite.
//!
//! ```text
//! m ← β·m + (1 − β)·g        (m₀ = 0)
//! θ ← θ − lr·sign(m)
//! ```

use adamlab::optim::{ConfigError, EvalWeights, Interval, Keyword, Kind, OptimizerEntry, keywords};
use burn::optim::{LearningRate, Optimizer, RecordState};
use burn::tensor::{Device, Tensor};

adamlab::optim::hyper_config! {
    /// Configuration of [`SignSgd`]: each keyword declared once, with its field and default.
    pub struct SignSgdConfig {
        keywords::LR => 0.001;
        Keyword {
            name: "beta",
            kind: Kind::Float(Interval::UNIT_OPEN_RIGHT),
            help: "decay of the gradient average whose sign gives the step",
        } => {
            /// Momentum of the gradient average.
            beta: f64 = 0.9,
        }
    }
}

/// Its registry entry: what `adamlab optimizers` would list, and how to build it from a spec.
pub const SIGN_SGD: OptimizerEntry = OptimizerEntry {
    name: "sign-sgd",
    summary: "signSGD with momentum (Bernstein et al., 2018), an example defined outside adamlab",
    reference: "the paper's Algorithm 1 (no fixture)",
    params: SignSgdConfig::PARAMS,
    build: |args| Ok(Box::new(SignSgdConfig::new().with_args(args).build()?)),
};

impl SignSgdConfig {
    /// The optimizer, after checking `beta` against its keyword's range.
    pub fn build(&self) -> Result<SignSgd, ConfigError> {
        self.validate()?;
        Ok(SignSgd { beta: self.beta })
    }
}

/// signSGD with momentum.
#[derive(Clone, Debug)]
pub struct SignSgd {
    beta: f64,
}

/// Its state for one parameter.
#[derive(RecordState, Clone)]
pub struct SignSgdState<const D: usize> {
    /// The gradient average m.
    pub momentum_buffer: Tensor<D>,
}

impl Optimizer for SignSgd {
    type State<const D: usize> = SignSgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let m = state.map_or_else(|| grad.zeros_like(), |s| s.momentum_buffer);
        let m = m.mul_scalar(self.beta).add(grad.mul_scalar(1.0 - self.beta));
        let theta = theta.sub(m.clone().sign().mul_scalar(lr));
        (theta, Some(SignSgdState { momentum_buffer: m }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SignSgdState {
            momentum_buffer: state.momentum_buffer.to_device(device),
        }
    }
}

/// It evaluates the weights it trains.
impl EvalWeights for SignSgd {}
