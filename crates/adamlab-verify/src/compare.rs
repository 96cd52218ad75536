//! Element-wise comparison with explicit tolerances.

use std::fmt;

/// `|actual − expected| ≤ atol + rtol·|expected|`, element by element (numpy's `isclose`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub atol: f64,
    /// Relative part, scaled by the expected value.
    pub rtol: f64,
}

impl Tolerance {
    /// A tolerance of `atol + rtol·|expected|`.
    pub const fn new(atol: f64, rtol: f64) -> Self {
        Self { atol, rtol }
    }

    /// Whether `actual` is within tolerance of `expected`. NaN is never within tolerance, and
    /// infinities only of themselves.
    pub fn accepts(&self, actual: f64, expected: f64) -> bool {
        if actual == expected {
            return true;
        }
        (actual - expected).abs() <= self.atol + self.rtol * expected.abs()
    }
}

/// Where the worst deviation of a check was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Worst {
    /// The step (1-based; 0 for values compared before any step).
    pub step: usize,
    /// The tensor, e.g. `fc1.weight` or `exp_avg_sq`.
    pub tensor: String,
    /// Flat index into the tensor.
    pub index: usize,
    /// Our value.
    pub actual: f64,
    /// The reference value.
    pub expected: f64,
}

/// The largest deviations seen over every element compared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deviation {
    /// Largest `|actual − expected|`.
    pub max_abs: f64,
    /// Largest `|actual − expected| / |expected|` over elements with a non-zero expected value.
    pub max_rel: f64,
    /// Number of elements outside tolerance.
    pub failures: usize,
    /// Number of elements compared.
    pub compared: usize,
    /// The first element outside tolerance, else the element of largest absolute deviation.
    pub worst: Option<Worst>,
}

impl Deviation {
    /// Compares `actual` with `expected`, element by element, under `tolerance`.
    ///
    /// # Panics
    /// If the lengths differ: the two runs do not describe the same tensor.
    pub fn record(
        &mut self,
        tolerance: Tolerance,
        step: usize,
        tensor: &str,
        actual: &[f32],
        expected: &[f32],
    ) {
        assert_eq!(
            actual.len(),
            expected.len(),
            "step {step}, {tensor}: {} values against {} expected",
            actual.len(),
            expected.len()
        );
        for (index, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            self.compare(tolerance, step, tensor, index, f64::from(a), f64::from(e));
        }
    }

    /// Compares one f64 value (a learning rate, a norm) with its reference.
    pub fn record_f64(&mut self, tolerance: Tolerance, step: usize, name: &str, actual: f64, expected: f64) {
        self.compare(tolerance, step, name, 0, actual, expected);
    }

    fn compare(&mut self, tolerance: Tolerance, step: usize, tensor: &str, index: usize, a: f64, e: f64) {
        let abs = if a == e { 0.0 } else { (a - e).abs() };
        let abs = if abs.is_nan() { f64::INFINITY } else { abs };
        let ok = tolerance.accepts(a, e);
        let first_failure = !ok && self.failures == 0;
        if first_failure || (self.failures == 0 && abs > self.max_abs) {
            self.worst = Some(Worst {
                step,
                tensor: tensor.to_string(),
                index,
                actual: a,
                expected: e,
            });
        }
        self.max_abs = self.max_abs.max(abs);
        if e != 0.0 {
            self.max_rel = self.max_rel.max(abs / e.abs());
        }
        self.failures += usize::from(!ok);
        self.compared += 1;
    }

    /// Counts a tensor the reference has and the run lacks, or the reverse, as a failure.
    pub fn record_missing(&mut self, step: usize, tensor: &str) {
        if self.failures == 0 {
            self.worst = Some(Worst {
                step,
                tensor: format!("{tensor} (present on one side only)"),
                index: 0,
                actual: f64::NAN,
                expected: f64::NAN,
            });
        }
        self.failures += 1;
        self.compared += 1;
    }

    /// Whether every element compared was within tolerance (and at least one was compared).
    pub fn passed(&self) -> bool {
        self.failures == 0 && self.compared > 0
    }
}

/// The outcome of one named check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// Which check: e.g. `burn-parity/cnn/amsgrad`.
    pub case: String,
    /// Steps compared.
    pub steps: usize,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// What was seen.
    pub deviation: Deviation,
}

impl CheckReport {
    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.deviation.passed()
    }
}

impl fmt::Display for CheckReport {
    /// One line: the case, the steps, the deviations, and for a failure where it happened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.deviation;
        write!(
            f,
            "{}: {} after {} steps, max abs {:.3e}, max rel {:.3e} (atol {:.0e}, rtol {:.0e})",
            self.case,
            if self.passed() { "pass" } else { "FAIL" },
            self.steps,
            d.max_abs,
            d.max_rel,
            self.tolerance.atol,
            self.tolerance.rtol
        )?;
        if !self.passed() {
            match &d.worst {
                Some(w) => write!(
                    f,
                    "; {} of {} values out of tolerance, first at step {}, {}[{}]: {} vs expected {}",
                    d.failures, d.compared, w.step, w.tensor, w.index, w.actual, w.expected
                )?,
                None => write!(f, "; nothing was compared")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_is_absolute_plus_relative_and_rejects_nan() {
        let tol = Tolerance::new(1e-6, 1e-5);
        assert!(tol.accepts(1.0 + 1e-5, 1.0));
        assert!(!tol.accepts(1.0 + 2e-5, 1.0));
        assert!(tol.accepts(5e-7, 0.0));
        assert!(!tol.accepts(f64::NAN, 0.0));
        assert!(!tol.accepts(f64::INFINITY, 1.0));
    }

    #[test]
    fn a_failure_names_its_step_tensor_and_index() {
        let mut deviation = Deviation::default();
        let tol = Tolerance::new(1e-6, 0.0);
        deviation.record(tol, 1, "w", &[1.0, 2.0], &[1.0, 2.0]);
        deviation.record(tol, 2, "w", &[1.0, 2.5], &[1.0, 2.0]);
        assert!(!deviation.passed());
        let worst = deviation.worst.clone().unwrap();
        assert_eq!((worst.step, worst.tensor.as_str(), worst.index), (2, "w", 1));
        let report = CheckReport {
            case: "x".into(),
            steps: 2,
            tolerance: tol,
            deviation,
        };
        assert!(report.to_string().contains("first at step 2, w[1]"), "{report}");
    }

    #[test]
    fn nothing_compared_is_not_a_pass() {
        assert!(!Deviation::default().passed());
    }
}
