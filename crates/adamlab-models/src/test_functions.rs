//! Optimisation test functions as models whose only parameter is the point: the loss is the
//! function's value there, and the known optimum says how close a run came.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::{InferenceStep, RegressionOutput, TrainOutput, TrainStep};

/// The batch of a model without data: each step evaluates the function at the point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoData;

/// Rosenbrock's banana valley, `f(x, y) = (1 − x)² + 100·(y − x²)²`, from the classic start
/// (−1.2, 1). Its minimum is 0 at (1, 1), at the end of a long, curved, flat-bottomed valley.
///
/// PyTorch name of the parameter: `point` (`[2]`).
#[derive(Module, Debug)]
pub struct Rosenbrock {
    /// `(x, y)`.
    pub point: Param<Tensor<1>>,
}

impl Rosenbrock {
    /// The classic start.
    pub const START: [f32; 2] = [-1.2, 1.0];
    /// The minimum.
    pub const OPTIMUM: [f32; 2] = [1.0, 1.0];

    /// At [`Self::START`] on `device`.
    pub fn init(device: &Device) -> Self {
        Self {
            point: Param::from_tensor(Tensor::from_floats(Self::START, device)),
        }
    }

    /// `f` at the point, `[1]`.
    pub fn value(&self) -> Tensor<1> {
        let p = self.point.val();
        let x = p.clone().slice(0..1);
        let y = p.slice(1..2);
        let a = x.clone().neg().add_scalar(1.0); // 1 − x
        let b = y - x.clone() * x; // y − x²
        a.clone() * a + (b.clone() * b).mul_scalar(100.0)
    }
}

/// An ill-conditioned quadratic, `f(x) = ½·(x − c)ᵀ A (x − c)`, in [`Quadratic::DIM`] = 10
/// dimensions from x = 0, with c = (1, −1, 1, −1, …) and A = H·diag(λ)·H: eigenvalues λᵢ =
/// κ^(i/(n−1)), i = 0…n−1, spread log-evenly from 1 to κ = 1000 (the condition number), along
/// the columns of the Householder reflection H = I − (2/n)·𝟙𝟙ᵀ, so that no coordinate axis is
/// an eigenvector and a per-coordinate step size cannot undo the conditioning. Its minimum is 0
/// at c; at the start, f = ½·Σλᵢ (H·c = c, since c sums to 0), every eigen-direction taking part.
///
/// PyTorch name of the parameter: `point` (`[10]`).
#[derive(Module, Debug)]
pub struct Quadratic {
    /// `x`.
    pub point: Param<Tensor<1>>,
}

impl Quadratic {
    /// Dimensions.
    pub const DIM: usize = 10;
    /// Condition number of A.
    pub const CONDITION: f64 = 1000.0;

    /// At 0 on `device`.
    pub fn init(device: &Device) -> Self {
        Self {
            point: Param::from_tensor(Tensor::zeros([Self::DIM], device)),
        }
    }

    /// The optimum c = (1, −1, 1, −1, …).
    pub fn optimum() -> Vec<f32> {
        (0..Self::DIM).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect()
    }

    /// A, row-major `[n, n]`, computed in f64 and rounded once to f32.
    pub fn curvature() -> Vec<f32> {
        let n = Self::DIM;
        let lambda: Vec<f64> = (0..n)
            .map(|i| Self::CONDITION.powf(i as f64 / (n - 1) as f64))
            .collect();
        let h = |i: usize, j: usize| f64::from(u8::from(i == j)) - 2.0 / n as f64;
        let mut a = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                let sum: f64 = (0..n).map(|k| h(i, k) * lambda[k] * h(k, j)).sum();
                a.push(sum as f32);
            }
        }
        a
    }

    /// `f` at the point, `[1]`.
    pub fn value(&self) -> Tensor<1> {
        let x = self.point.val();
        let device = x.device();
        let n = Self::DIM;
        let a = Tensor::<2>::from_data(TensorData::new(Self::curvature(), [n, n]), &device);
        let c = Tensor::<1>::from_data(TensorData::new(Self::optimum(), [n]), &device);
        let r = x - c; // [n]
        let ar = a.matmul(r.clone().reshape([n, 1])).reshape([n]); // A·r
        (r * ar).sum().mul_scalar(0.5)
    }
}

/// The point, the optimum and the value, as a regression output.
fn output(point: Tensor<1>, optimum: &[f32], loss: Tensor<1>) -> RegressionOutput {
    let n = optimum.len();
    let target = Tensor::<2>::from_data(TensorData::new(optimum.to_vec(), [1, n]), &point.device());
    RegressionOutput::new(loss, point.reshape([1, n]), target)
}

impl TrainStep for Rosenbrock {
    type Input = NoData;
    type Output = RegressionOutput;

    fn step(&self, _: NoData) -> TrainOutput<RegressionOutput> {
        let item = InferenceStep::step(self, NoData);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Rosenbrock {
    type Input = NoData;
    type Output = RegressionOutput;

    fn step(&self, _: NoData) -> RegressionOutput {
        output(self.point.val(), &Self::OPTIMUM, self.value())
    }
}

impl TrainStep for Quadratic {
    type Input = NoData;
    type Output = RegressionOutput;

    fn step(&self, _: NoData) -> TrainOutput<RegressionOutput> {
        let item = InferenceStep::step(self, NoData);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Quadratic {
    type Input = NoData;
    type Output = RegressionOutput;

    fn step(&self, _: NoData) -> RegressionOutput {
        output(self.point.val(), &Self::optimum(), self.value())
    }
}

/// Euclidean distance between a point and an optimum (the test functions' metric), in f64.
pub fn distance(point: &[f32], optimum: &[f32]) -> f64 {
    point
        .iter()
        .zip(optimum)
        .map(|(&p, &o)| (f64::from(p) - f64::from(o)).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn rosenbrock_is_24_2_at_the_start_and_0_at_the_optimum() {
        let device = Device::flex();
        let mut f = Rosenbrock::init(&device);
        // (1 + 1.2)² + 100·(1 − 1.44)² = 4.84 + 19.36.
        assert!((scalar(f.value()) - 24.2).abs() < 1e-4);
        f.point = Param::from_tensor(Tensor::from_floats(Rosenbrock::OPTIMUM, &device));
        assert_eq!(scalar(f.value()), 0.0);
    }

    #[test]
    fn the_quadratics_curvature_has_eigenvalues_from_1_to_1000_off_the_axes() {
        let a = Quadratic::curvature();
        let n = Quadratic::DIM;
        // The eigenvectors are H's columns, hₖ = eₖ − (2/n)·𝟙, with λ₀ = 1 and λ₉ = 1000.
        for (k, lambda) in [(0, 1.0), (n - 1, 1000.0)] {
            let h: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i == k)) - 0.2).collect();
            for i in 0..n {
                let ah: f64 = (0..n).map(|j| f64::from(a[i * n + j]) * h[j]).sum();
                assert!((ah - lambda * h[i]).abs() < 1e-3 * lambda, "λ{k}, row {i}: {ah}");
            }
        }
        assert!(a[1].abs() > 1.0, "A is not diagonal: {a:?}");
    }

    #[test]
    fn the_quadratic_is_half_the_eigenvalue_sum_at_the_start_and_0_at_its_optimum() {
        let device = Device::flex();
        let mut f = Quadratic::init(&device);
        // H·c = c: f(0) = ½·cᵀ·diag(λ)·c = ½·Σλᵢ.
        let half_sum: f64 = (0..10).map(|i| 1000f64.powf(i as f64 / 9.0)).sum::<f64>() / 2.0;
        assert!((f64::from(scalar(f.value())) - half_sum).abs() < 1e-3 * half_sum);
        f.point = Param::from_tensor(Tensor::from_floats(Quadratic::optimum().as_slice(), &device));
        assert_eq!(scalar(f.value()), 0.0);
        assert!((distance(&[0.0; 10], &Quadratic::optimum()) - 10f64.sqrt()).abs() < 1e-12);
    }
}
