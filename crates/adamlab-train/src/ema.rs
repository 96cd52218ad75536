//! An exponential moving average of a model's weights, as torch's
//! `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))` keeps it.
//!
//! torch's rule, after every optimizer step: the first update copies the weights; every later one
//! moves the average towards them, `torch._foreach_lerp_(averaged, current, 1 - decay)`, that is
//! `averaged + (1 − decay)·(current − averaged)` with torch's CPU `lerp` rounding
//! ([`adamlab_optim::torch_ops::lerp_one_rounding`]). The average is kept without autodiff.

use adamlab_optim::torch_ops::lerp_one_rounding;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// The moving average after one more step: `current` itself on the first update (`averaged` is
/// `None`), else `averaged` moved by `1 − decay` of the way to `current`. `current` is the model
/// without autodiff (`weights.valid()`), with the parameter ids `averaged` was made from.
pub fn update<M: Module>(averaged: Option<M>, current: &M, decay: f64) -> M {
    match averaged {
        None => current.clone(),
        Some(averaged) => lerp_params(averaged, &valid_params(current), 1.0 - decay, &Keep),
    }
}

/// Every float parameter of `module` by id (a `GradientsParams` is burn's map of any rank).
pub(crate) fn valid_params<M: Module>(module: &M) -> GradientsParams {
    struct Collect(GradientsParams);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.register::<D>(param.id, param.val());
        }
    }
    let mut collected = Collect(GradientsParams::new());
    module.visit(&mut collected);
    collected.0
}

/// How a parameter's new value becomes its tensor.
pub(crate) trait Lift {
    /// `new` (without autodiff) as the tensor that replaces `old`.
    fn lift<const D: usize>(&self, old: Tensor<D>, new: Tensor<D>) -> Tensor<D>;
}

/// The new value as it is (a model without autodiff).
pub(crate) struct Keep;

impl Lift for Keep {
    fn lift<const D: usize>(&self, _: Tensor<D>, new: Tensor<D>) -> Tensor<D> {
        new
    }
}

/// `start`'s parameters moved `weight` of the way to `end`'s values (by id): `start.lerp(end,
/// weight)` computed on `start`'s values without autodiff, then lifted by `lift`.
pub(crate) fn lerp_params<M: Module, L: Lift>(start: M, end: &GradientsParams, weight: f64, lift: &L) -> M {
    struct Lerp<'a, L> {
        end: &'a GradientsParams,
        weight: f64,
        lift: &'a L,
    }
    impl<L: Lift> ModuleMapper for Lerp<'_, L> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let id: ParamId = param.id;
            match self.end.get::<D>(id) {
                Some(end) => param.map(|old| {
                    let new = lerp_one_rounding(old.clone().inner(), end, self.weight);
                    self.lift.lift(old, new)
                }),
                None => param,
            }
        }
    }
    start.map(&mut Lerp { end, weight, lift })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    fn linear_with(weights: [f32; 2], bias: f32, template: &Linear) -> Linear {
        let device = Device::default();
        let mut model = template.clone();
        model.weight = model
            .weight
            .map(|_| Tensor::from_data(TensorData::new(weights.to_vec(), [2, 1]), &device));
        model.bias = model
            .bias
            .map(|b| b.map(|_| Tensor::from_data(TensorData::new(vec![bias], [1]), &device)));
        model
    }

    fn values(model: &Linear) -> Vec<f32> {
        let mut v = model.weight.val().into_data().try_to_vec::<f32>().unwrap();
        v.extend(model.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap());
        v
    }

    /// torch: `ema = AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(0.75))`, then
    /// `update_parameters` with weights (1, 2, b=3), then (5, −2, b=3): the first copies, the
    /// second gives 1 + 0.25·(5 − 1) = 2, 2 + 0.25·(−2 − 2) = 1, 3.
    #[test]
    fn the_first_update_copies_and_later_ones_move_a_quarter_of_the_way_at_decay_0_75() {
        let template = LinearConfig::new(2, 1).init(&Device::default());
        let first = linear_with([1.0, 2.0], 3.0, &template);
        let second = linear_with([5.0, -2.0], 3.0, &template);
        let averaged = update(None, &first, 0.75);
        assert_eq!(values(&averaged), [1.0, 2.0, 3.0]);
        let averaged = update(Some(averaged), &second, 0.75);
        assert_eq!(values(&averaged), [2.0, 1.0, 3.0]);
    }
}
