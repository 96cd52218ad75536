//! The optimisation test functions as tasks for [`crate::fit`]: Rosenbrock's function and an
//! ill-conditioned quadratic ([`adamlab_models::test_functions`]), whose parameter is the point.
//! They have no data: every step evaluates the function at the point, an epoch is a fixed number
//! of steps ([`steps`]), and the evaluation after it is the function's value and the distance
//! from the point to the known optimum.

use crate::fit::{Evaluation, Model, TrainData};
use adamlab_models::test_functions::distance;
use adamlab_models::{NoData, Quadratic, Rosenbrock};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::tensor::Device;
use burn::train::{InferenceStep, RegressionOutput};
use std::sync::Arc;

/// The learning rate `adamlab train` uses by default, whatever the optimizer: plain SGD diverges
/// on Rosenbrock's function at lr 1e-2 (its first step lands at x ≈ 0.96, where |∇f| is in the
/// thousands), and gradient descent on the quadratic is stable below 2/λ_max = 2e-3; every
/// registered optimizer stays finite at 1e-3 on both.
pub const DEFAULT_LR: f64 = 1e-3;
/// Optimizer steps in an epoch (a test function has no data to pass over).
pub const STEPS_PER_EPOCH: usize = 1000;
/// Epochs `adamlab train` runs by default: 10,000 steps.
pub const DEFAULT_EPOCHS: usize = 10;

/// Rosenbrock's function from (−1.2, 1), for [`crate::fit`]: named `rosenbrock`.
pub fn rosenbrock() -> Model<'static, Rosenbrock> {
    Model {
        name: "rosenbrock".into(),
        init: &Rosenbrock::init,
    }
}

/// The ill-conditioned quadratic from 0, for [`crate::fit`]: named `quadratic`.
pub fn quadratic() -> Model<'static, Quadratic> {
    Model {
        name: "quadratic".into(),
        init: &Quadratic::init,
    }
}

/// A batch of nothing, for models without data.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDataBatcher;

impl Batcher<NoData, NoData> for NoDataBatcher {
    fn batch(&self, _: Vec<NoData>, _: &Device) -> NoData {
        NoData
    }
}

/// `steps` empty examples: with a batch size of 1, an epoch of `steps` optimizer steps.
pub fn steps(steps: usize) -> TrainData<NoData, NoDataBatcher> {
    TrainData {
        dataset: Arc::new(InMemDataset::new(vec![NoData; steps])),
        batcher: NoDataBatcher,
        fingerprint: format!("no data, {steps} steps per epoch"),
    }
}

/// The function's value at the point and the distance to the optimum.
pub fn evaluate<M>(model: &M) -> Evaluation
where
    M: InferenceStep<Input = NoData, Output = RegressionOutput>,
{
    let output = InferenceStep::step(model, NoData);
    let point: Vec<f32> = output.output.into_data().try_to_vec().expect("a float point");
    let optimum: Vec<f32> = output.targets.into_data().try_to_vec().expect("a float optimum");
    Evaluation {
        loss: f64::from(output.loss.into_scalar::<f32>()),
        accuracy: None,
        distance: Some(distance(&point, &optimum)),
        examples: 1,
    }
}
