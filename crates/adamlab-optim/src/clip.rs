//! Gradient clipping as `torch.nn.utils` does it: one norm over every parameter's gradient
//! (`clip_grad_norm_`), or each element clamped (`clip_grad_value_`).
//!
//! burn's own `GradientClipping::Norm` clips each tensor by its own norm, inside the optimizer
//! step; torch's `clip_grad_norm_` takes the norm of all gradients together, so a model whose
//! gradients are spread over many tensors is clipped less by burn than by torch. These functions
//! work on [`GradientsParams`] between `backward` and `optimizer.step`, where torch's run.
//!
//! `clip_grad_norm_(parameters, max_norm, norm_type)`:
//!
//! ```text
//! total = ‖(‖g₁‖ₚ, ‖g₂‖ₚ, …)‖ₚ           (max |gᵢ| for p = inf)
//! coef  = min(max_norm / (total + 1e-6), 1)
//! gᵢ ← gᵢ · coef                          (always multiplied, as torch does)
//! ```

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// A clipping setting, as the CLI takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clip {
    /// `clip_grad_norm_(max_norm, norm_type)`; `norm_type` may be `f64::INFINITY`.
    Norm {
        /// The largest total norm let through.
        max_norm: f64,
        /// p of the p-norm (2 by default).
        norm_type: f64,
    },
    /// `clip_grad_value_(clip_value)`.
    Value(f64),
}

/// Every float parameter's id and rank, in visiting order.
fn param_ids<M: Module>(module: &M) -> Vec<(ParamId, usize)> {
    struct Ids(Vec<(ParamId, usize)>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push((param.id, D));
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// Applies `f` to the gradient of every parameter of `module` that has one, whatever its rank.
fn for_each_grad<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    mut f: impl FnMut(Grad) -> Grad,
) {
    for (id, rank) in param_ids(module) {
        macro_rules! ranks {
            ($($d:literal => $v:ident),*) => {
                match rank {
                    $($d => {
                        if let Some(g) = grads.remove::<$d>(id) {
                            if let Grad::$v(g) = f(Grad::$v(g)) {
                                grads.register::<$d>(id, g);
                            }
                        }
                    })*
                    _ => {}
                }
            };
        }
        ranks!(1 => R1, 2 => R2, 3 => R3, 4 => R4, 5 => R5, 6 => R6);
    }
}

/// A gradient of rank 1 to 6.
enum Grad {
    R1(Tensor<1>),
    R2(Tensor<2>),
    R3(Tensor<3>),
    R4(Tensor<4>),
    R5(Tensor<5>),
    R6(Tensor<6>),
}

macro_rules! on_grad {
    ($g:expr, |$t:ident| $body:expr) => {
        match $g {
            Grad::R1($t) => Grad::R1($body),
            Grad::R2($t) => Grad::R2($body),
            Grad::R3($t) => Grad::R3($body),
            Grad::R4($t) => Grad::R4($body),
            Grad::R5($t) => Grad::R5($body),
            Grad::R6($t) => Grad::R6($body),
        }
    };
}

macro_rules! flat {
    ($g:expr) => {
        match $g {
            Grad::R1(t) => t.clone(),
            Grad::R2(t) => t.clone().flatten::<1>(0, 1),
            Grad::R3(t) => t.clone().flatten::<1>(0, 2),
            Grad::R4(t) => t.clone().flatten::<1>(0, 3),
            Grad::R5(t) => t.clone().flatten::<1>(0, 4),
            Grad::R6(t) => t.clone().flatten::<1>(0, 5),
        }
    };
}

/// The smallest `norm_type` taken: 1e-38, so that the norm's exponent 1/p is finite in f32
/// (for a smaller p, burn cannot take it and the norm of any gradient but zeros and ones is
/// infinite anyway). Anything below is refused where the clipping is checked.
pub const MIN_NORM_TYPE: f64 = 1e-38;

/// From this p on, the p-norm of any tensor of fewer than 2⁴⁰ elements rounds in f32 to its
/// largest |g| (the factor n^(1/p) ≤ 2^(40/p) is below f32's half ulp of 1), and burn's
/// `powf_scalar` cannot take the exponent (it reads a whole p as an i32).
const P_NORM_IS_THE_MAX_FROM: f64 = 2_147_483_648.0;

/// The p-norm of a flat tensor, as `torch.linalg.vector_norm` (a one-element tensor). For p from
/// [`P_NORM_IS_THE_MAX_FROM`] on it is the largest |g|, the right norm in f32, where torch's
/// `Σ|g|ᵖ` overflows to ∞ (or underflows to 0) first.
fn vector_norm(g: Tensor<1>, p: f64) -> Tensor<1> {
    if p >= P_NORM_IS_THE_MAX_FROM {
        g.abs().max()
    } else if p == 2.0 {
        g.clone().mul(g).sum().sqrt()
    } else if p == 1.0 {
        g.abs().sum()
    } else {
        g.abs().powf_scalar(p).sum().powf_scalar(1.0 / p)
    }
}

/// `torch.nn.utils.clip_grad_norm_`: scales every gradient of `module` in `grads` by
/// `min(max_norm / (total + 1e-6), 1)`, where `total` is the `norm_type`-norm of the gradients'
/// norms. Returns the total norm before clipping (as torch returns it).
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64, norm_type: f64) -> f64 {
    let mut norms: Vec<Tensor<1>> = Vec::new();
    for_each_grad(module, grads, |g| {
        norms.push(vector_norm(flat!(&g), norm_type));
        g
    });
    if norms.is_empty() {
        return 0.0;
    }
    let total = vector_norm(Tensor::cat(norms, 0), norm_type);
    // In f32, as torch computes `max_norm / (total + 1e-6)` on the f32 norm tensor.
    let coef: f32 = total
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0)
        .into_scalar();
    for_each_grad(module, grads, |g| on_grad!(g, |t| t.mul_scalar(coef)));
    f64::from(total.into_scalar::<f32>())
}

/// `torch.nn.utils.clip_grad_value_`: clamps every gradient element of `module` in `grads` to
/// `[−clip_value, clip_value]`.
pub fn clip_grad_value<M: Module>(module: &M, grads: &mut GradientsParams, clip_value: f64) {
    for_each_grad(module, grads, |g| on_grad!(g, |t| t.clamp(-clip_value, clip_value)));
}

/// Multiplies every gradient of `module` in `grads` by `factor` (in f32): a micro-batch's share
/// of an accumulated step.
pub fn scale_grads<M: Module>(module: &M, grads: &mut GradientsParams, factor: f64) {
    let factor = factor as f32;
    for_each_grad(module, grads, |g| on_grad!(g, |t| t.mul_scalar(factor)));
}

/// Whether every gradient element of `module` in `grads` is finite, with one read from the
/// device: `0·g` is 0 for a finite `g` and NaN for ±∞ or NaN, and NaN survives the sums.
pub fn grads_are_finite<M: Module>(module: &M, grads: &mut GradientsParams) -> bool {
    let mut sums: Vec<Tensor<1>> = Vec::new();
    for_each_grad(module, grads, |g| {
        sums.push(flat!(&g).mul_scalar(0.0).sum());
        g
    });
    if sums.is_empty() {
        return true;
    }
    Tensor::cat(sums, 0).sum().into_scalar::<f32>().is_finite()
}

/// Applies `clip` to `grads`; returns the total norm for [`Clip::Norm`].
pub fn apply<M: Module>(clip: Clip, module: &M, grads: &mut GradientsParams) -> Option<f64> {
    match clip {
        Clip::Norm { max_norm, norm_type } => Some(clip_grad_norm(module, grads, max_norm, norm_type)),
        Clip::Value(v) => {
            clip_grad_value(module, grads, v);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    fn setup() -> (Linear, GradientsParams) {
        let device = Device::flex().autodiff();
        let model: Linear = LinearConfig::new(2, 2).init(&device);
        let x = Tensor::<2>::from_floats([[3.0, 4.0]], &device);
        let loss = model.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (model, grads)
    }

    /// d(sum(xW + b))/dW = xᵀ·1 = [[3, 3], [4, 4]], d/db = [1, 1]: total 2-norm √(9+9+16+16+1+1)
    /// = √52; clipped to 1, every gradient is divided by √52 + 1e-6.
    #[test]
    fn the_norm_is_taken_over_all_parameters_together() {
        let (model, mut grads) = setup();
        let total = clip_grad_norm(&model, &mut grads, 1.0, 2.0);
        assert!((total - 52f64.sqrt()).abs() < 1e-5, "{total}");
        let w = grads.get::<2>(model.weight.id).unwrap().to_data().try_to_vec::<f32>().unwrap();
        let expected = 3.0 / (52f64.sqrt() + 1e-6);
        assert!((f64::from(w[0]) - expected).abs() < 1e-6, "{w:?}");
    }

    /// p = 1e20 (burn's `powf_scalar` cannot take it): the norm is the largest |g|, 4, as for
    /// p = inf, not a panic.
    #[test]
    fn a_huge_p_gives_the_largest_element() {
        let (model, mut grads) = setup();
        assert_eq!(clip_grad_norm(&model, &mut grads, 100.0, 1e20), 4.0);
    }

    #[test]
    fn the_inf_norm_is_the_largest_element_and_a_large_max_norm_leaves_gradients_alone() {
        let (model, mut grads) = setup();
        let total = clip_grad_norm(&model, &mut grads, 100.0, f64::INFINITY);
        assert_eq!(total, 4.0);
        let b = grads.get::<1>(model.bias.as_ref().unwrap().id).unwrap().to_data().try_to_vec::<f32>().unwrap();
        assert_eq!(b, [1.0, 1.0]);
    }

    #[test]
    fn values_are_clamped_element_by_element() {
        let (model, mut grads) = setup();
        clip_grad_value(&model, &mut grads, 3.5);
        let w = grads.get::<2>(model.weight.id).unwrap().to_data().try_to_vec::<f32>().unwrap();
        assert_eq!(w, [3.0, 3.0, 3.5, 3.5]);
    }
}
