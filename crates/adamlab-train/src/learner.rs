//! adamlab's optimizers and schedules inside burn-train's `Learner`, for users who want burn's own
//! training loop and its execution strategies (one device, several devices, DDP on CUDA).
//!
//! ```text
//! let learner = adamlab_train::learner::learner(model, &controls)?;   // optimizer + schedule
//! SupervisedTraining::new(dir, train_loader, valid_loader)
//!     .with_training_strategy(ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice).into())
//!     .launch(learner);
//! ```
//!
//! What the `Learner` takes of [`ControlsSpec`]: the optimizer (every registered one, from its
//! spec) and the learning-rate schedule (an adamlab [`Schedule`](adamlab_optim::schedule::Schedule)
//! is a burn `LrScheduler`, stepped once before every optimizer step, as adamlab's loop steps it).
//! Param groups, gradient clipping and OneCycleLR's cycled momentum need hooks the `Learner` does
//! not have: they are refused here, and run in [`crate::fit`].
//!
//! On several devices, burn-train's multi-device strategy **sums** the devices' gradients (it
//! does not average them): with N devices each taking its own batch, the update is the one of a
//! batch N times larger whose loss is the sum, not the mean, of the N batch losses. For SGD that
//! is N times the learning rate; for Adam-like optimizers, whose update is invariant to the
//! gradient's scale (up to ε), almost nothing changes. To get a one-device run's updates with SGD,
//! divide the learning rate by N.

use crate::controls::{ControlsError, ControlsSpec};
use burn::tensor::{Tensor, TensorReadError};
use burn::train::metric::{Adaptor, Metric, MetricMetadata, MetricName, SerializedEntry};
use burn::train::{ClassificationOutput, Learner, LearnerModel, RegressionOutput};
use std::sync::{Arc, Mutex};

/// A burn-train `Learner` with the optimizer and schedule of `controls`. Refuses the controls the
/// `Learner` cannot apply (param groups, clipping, a schedule that cycles momentum).
pub fn learner<M: LearnerModel>(model: M, controls: &ControlsSpec) -> Result<Learner<M>, ControlsError> {
    let unsupported = |what: &str| {
        Err(ControlsError::Unsupported(format!(
            "burn's Learner takes an optimizer and a learning-rate schedule; {what} need adamlab's \
             own loop (adamlab_train::fit)"
        )))
    };
    if !controls.groups.is_empty() {
        return unsupported("param groups");
    }
    if controls.clip.is_some() {
        return unsupported("gradient clipping");
    }
    if controls.accumulate > 1 || controls.ema.is_some() || controls.skip_nonfinite || controls.lookahead.is_some() {
        return unsupported("gradient accumulation, a weight EMA, Lookahead and skipping non-finite steps");
    }
    let optimizer = controls.optimizer.build()?.module_optimizer();
    let lr = controls.optimizer.lr();
    Ok(match &controls.schedule {
        Some(spec) if spec.cycles_momentum() => return unsupported("a schedule that cycles momentum"),
        Some(spec) if spec.name() == "reduce-on-plateau" => {
            return unsupported("reduce-on-plateau (fed each epoch's metric)");
        }
        Some(spec) => Learner::new(model, optimizer, spec.build(lr)?),
        None => Learner::new(model, optimizer, lr),
    })
}

/// The loss of every training step, in order, as burn-train's metric thread sees them: a metric
/// to register with `SupervisedTraining::metric_train`, so that a `Learner` run can be compared
/// step by step with adamlab's loop.
#[derive(Clone, Default)]
pub struct StepLosses {
    losses: Arc<Mutex<Vec<f32>>>,
}

impl StepLosses {
    /// The losses recorded so far.
    pub fn losses(&self) -> Vec<f32> {
        self.losses.lock().expect("the metric thread does not panic").clone()
    }
}

/// What [`StepLosses`] reads of a step's output: its loss.
pub struct StepLossInput(Tensor<1>);

impl Adaptor<StepLossInput> for ClassificationOutput {
    fn adapt(&self) -> StepLossInput {
        StepLossInput(self.loss.clone())
    }
}

impl Adaptor<StepLossInput> for RegressionOutput {
    fn adapt(&self) -> StepLossInput {
        StepLossInput(self.loss.clone())
    }
}

impl Metric for StepLosses {
    type Input = StepLossInput;

    fn name(&self) -> MetricName {
        Arc::new("Step loss".to_string())
    }

    fn update(
        &mut self,
        item: &StepLossInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let loss = item.0.clone().try_into_scalar::<f32>()?;
        self.losses.lock().expect("the metric thread does not panic").push(loss);
        Ok(SerializedEntry {
            formatted: format!("{loss:.4}"),
            serialized: loss.to_string(),
        })
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(SerializedEntry::not_available(None))
    }

    fn clear(&mut self) {}
}
