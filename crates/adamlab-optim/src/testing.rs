//! What the optimizers' unit tests share: the CPU device they step on, two-element tensors, and
//! the run of one optimizer from θ₀ = [1, −2] over a list of gradients. Each file's tests keep
//! their own hand-computed values and tolerances.

use burn::optim::{LearningRate, Optimizer};
use burn::tensor::{Device, Tensor, TensorData};

/// Flex, burn's CPU backend.
pub(crate) fn device() -> Device {
    Device::flex()
}

/// A vector of two values on [`device`].
pub(crate) fn tensor(values: [f32; 2]) -> Tensor<1> {
    Tensor::from_floats(values, &device())
}

/// Steps `optimizer` at learning rate `lr` over the gradients `grads` from θ₀ = [1, −2],
/// returning what `look` reads from θ and the state after each step.
pub(crate) fn trajectory<O: Optimizer, T>(
    optimizer: &O,
    lr: LearningRate,
    grads: &[[f32; 2]],
    look: impl Fn(&Tensor<1>, Option<&O::State<1>>) -> T,
) -> Vec<T> {
    trajectory_at(optimizer, std::iter::repeat(lr), grads, look)
}

/// [`trajectory`] with the learning rate of each step taken from `lrs`.
pub(crate) fn trajectory_at<O: Optimizer, T>(
    optimizer: &O,
    lrs: impl IntoIterator<Item = LearningRate>,
    grads: &[[f32; 2]],
    look: impl Fn(&Tensor<1>, Option<&O::State<1>>) -> T,
) -> Vec<T> {
    let mut theta = tensor([1.0, -2.0]);
    let mut state = None;
    grads
        .iter()
        .zip(lrs)
        .map(|(g, lr)| {
            (theta, state) = optimizer.step(lr, theta.clone(), tensor(*g), state.take());
            look(&theta, state.as_ref())
        })
        .collect()
}

/// θ after each step of [`trajectory`].
pub(crate) fn thetas<O: Optimizer>(
    optimizer: &O,
    lr: LearningRate,
    grads: &[[f32; 2]],
) -> Vec<TensorData> {
    trajectory(optimizer, lr, grads, |theta, _| theta.to_data())
}

/// Asserts that `theta` holds `expected`, hand-computed in f64, to 1e-6: f32 holds such values
/// to ~1e-7, and 1e-6 leaves room for the order of operations only.
pub(crate) fn assert_near(theta: &TensorData, expected: [f32; 2]) {
    theta.assert_approx_eq::<f32>(&TensorData::from(expected), burn::tensor::Tolerance::absolute(1e-6));
}
