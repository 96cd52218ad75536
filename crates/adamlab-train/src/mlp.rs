//! The article's first program as a task for [`crate::fit`]: `Linear(2, 1)` fitted to two points
//! with MSE, one full-batch step per epoch.

use crate::epoch_line;
use crate::fit::{EpochReport, Model, Observer, ObserverError, StepReport, TrainData};
use adamlab_models::{Mlp, MlpBatch, MlpConfig};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::TrainStep;
use std::sync::Arc;

/// The article's inputs, `[[1, 2], [2, 3]]`.
pub const INPUTS: [[f32; 2]; 2] = [[1.0, 2.0], [2.0, 3.0]];
/// The article's targets, `[[0], [1]]`.
pub const TARGETS: [[f32; 1]; 2] = [[0.0], [1.0]];

/// The article's two training points on `device`: `([2, 2] inputs, [2, 1] targets)`.
pub fn article_data(device: &Device) -> (Tensor<2>, Tensor<2>) {
    (
        Tensor::from_floats(INPUTS, device),
        Tensor::from_floats(TARGETS, device),
    )
}

/// A freshly initialised article MLP on `device` (which should have autodiff enabled).
pub fn article_model(device: &Device) -> Mlp {
    MlpConfig::new().init(device)
}

/// The article's MLP for [`crate::fit`]: named `mlp`, initialised as burn's `Linear` is.
pub fn model() -> Model<'static, Mlp> {
    Model {
        name: "mlp".into(),
        init: &article_model,
    }
}

/// Prints what the article's program prints, `Epoch [10/100], Loss: 0.1234` every 10 epochs, on
/// stdout.
#[derive(Debug, Clone, Copy)]
pub struct ArticleLines {
    /// The run's epochs, for the line.
    pub epochs: usize,
}

impl Observer for ArticleLines {
    fn on_step(&mut self, report: &StepReport) -> Result<(), ObserverError> {
        if let Some(line) = epoch_line(report.epoch, self.epochs, report.loss) {
            println!("{line}");
        }
        Ok(())
    }
    fn on_epoch(&mut self, _: &EpochReport) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// One example: features and targets.
pub type Point = (Vec<f32>, Vec<f32>);

/// Stacks [`Point`]s into an [`MlpBatch`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PointBatcher;

impl Batcher<Point, MlpBatch> for PointBatcher {
    fn batch(&self, points: Vec<Point>, device: &Device) -> MlpBatch {
        let n = points.len();
        let (inputs, targets): (Vec<Vec<f32>>, Vec<Vec<f32>>) = points.into_iter().unzip();
        let width = |rows: &[Vec<f32>]| rows.first().map_or(0, Vec::len);
        let (wi, wt) = (width(&inputs), width(&targets));
        let inputs = TensorData::new(inputs.concat(), [n, wi]);
        let targets = TensorData::new(targets.concat(), [n, wt]);
        MlpBatch {
            inputs: Tensor::from_data(inputs, device),
            targets: Tensor::from_data(targets, device),
        }
    }
}

/// The article's two points, in order: with a batch size of 2 and no shuffling, every epoch is
/// the article's one full-batch step.
pub fn article_points() -> TrainData<Point, PointBatcher> {
    let points: Vec<Point> = INPUTS
        .iter()
        .zip(TARGETS)
        .map(|(x, y)| (x.to_vec(), y.to_vec()))
        .collect();
    TrainData {
        dataset: Arc::new(InMemDataset::new(points)),
        batcher: PointBatcher,
        fingerprint: "the article's two points".into(),
    }
}

/// One full-batch step: forward, MSE, backward, optimizer step. Returns the updated model and
/// the loss before the step, as the article's loop prints it. For replays that drive the
/// optimizer directly; training goes through [`crate::fit`].
pub fn step(
    model: Mlp,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    inputs: Tensor<2>,
    targets: Tensor<2>,
) -> (Mlp, f32) {
    let output = TrainStep::step(&model, MlpBatch { inputs, targets });
    let loss_value = output.item.loss.into_scalar::<f32>();
    let grads: GradientsParams = output.grads;
    (optimizer.step(lr, model, grads), loss_value)
}
