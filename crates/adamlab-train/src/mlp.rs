//! The article's first program: `Linear(2, 1)` fitted to two points with MSE.

use crate::controls::{Controls, StepInfo, StepRefused};
use adamlab_models::{Mlp, MlpConfig};
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

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

/// One full-batch step: forward, MSE, backward, optimizer step. Returns the updated model and
/// the loss before the step, as the article's loop prints it.
pub fn step(
    model: Mlp,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    inputs: Tensor<2>,
    targets: Tensor<2>,
) -> (Mlp, f32) {
    let loss = MseLoss::new().forward(model.forward(inputs), targets, Reduction::Mean);
    let loss_value = loss.clone().into_scalar::<f32>();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optimizer.step(lr, model, grads), loss_value)
}

/// Trains `model` for `epochs` full-batch steps on the article's data, calling
/// `on_epoch(epoch, loss)` after each (epochs count from 1; the loss is the one before that
/// epoch's step). Returns the trained model.
pub fn train(
    mut model: Mlp,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    epochs: usize,
    mut on_epoch: impl FnMut(usize, f32),
) -> Mlp {
    let device = model.fc.weight.device();
    let (inputs, targets) = article_data(&device);
    for epoch in 1..=epochs {
        let loss;
        (model, loss) = step(model, optimizer, lr, inputs.clone(), targets.clone());
        on_epoch(epoch, loss);
    }
    model
}

/// [`train`] with training controls (param groups, a learning-rate schedule, gradient clipping):
/// each epoch's step clips the gradients, then steps every group at its scheduled learning rate,
/// as ported torch code does. `on_epoch(epoch, loss, step)` also gets what the step did (its
/// learning rate). Returns the trained model (the weights it trained, not a schedule-free
/// optimizer's evaluation point: see [`Controls::eval_weights`]). A step the controls refuse (a
/// scheduled learning rate that is not finite) ends the loop with the weights before it.
pub fn train_with_controls(
    mut model: Mlp,
    controls: &mut Controls,
    epochs: usize,
    mut on_epoch: impl FnMut(usize, f32, &StepInfo),
) -> Result<Mlp, StepRefused<Mlp>> {
    let device = model.fc.weight.device();
    let (inputs, targets) = article_data(&device);
    for epoch in 1..=epochs {
        let loss = MseLoss::new().forward(
            model.forward(inputs.clone()),
            targets.clone(),
            Reduction::Mean,
        );
        let loss_value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let info;
        (model, info) = controls.step(model, grads)?;
        on_epoch(epoch, loss_value, &info);
    }
    Ok(model)
}
