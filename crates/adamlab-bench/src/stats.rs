//! Summaries of repeated timings: the median and the spread (min, max), as every table and
//! record reports them.

/// The summary of a set of samples (milliseconds, or any unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The middle sample; the mean of the two middle ones for an even count.
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// The number of samples.
    pub count: usize,
}

impl Summary {
    /// The summary of `samples`, in any order; `None` when there are none or one is NaN.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|x| x.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            count: n,
        })
    }

    /// The spread relative to the median: `(max − min) / median` (0 when the median is 0).
    pub fn relative_spread(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median
        }
    }
}

/// Bytes moved over a time, in GB/s (10⁹ bytes per second). `None` for a zero or negative time.
pub fn gigabytes_per_second(bytes: f64, milliseconds: f64) -> Option<f64> {
    (milliseconds > 0.0).then(|| bytes / (milliseconds * 1e-3) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_odd_count_takes_the_middle_sample_whatever_the_order() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 9.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.count), (3.0, 1.0, 9.0, 5));
    }

    #[test]
    fn an_even_count_takes_the_mean_of_the_two_middle_samples() {
        let s = Summary::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 10.0));
    }

    #[test]
    fn one_sample_is_its_own_median_min_and_max() {
        let s = Summary::of(&[7.5]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.count), (7.5, 7.5, 7.5, 1));
        assert_eq!(s.relative_spread(), 0.0);
    }

    #[test]
    fn no_samples_or_a_nan_give_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn relative_spread_is_the_range_over_the_median() {
        let s = Summary::of(&[8.0, 10.0, 12.0]).unwrap();
        assert!((s.relative_spread() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn bandwidth_is_bytes_over_seconds_in_gigabytes() {
        // 28 B × 10⁷ parameters in 100 ms: 2.8 GB/s.
        let gbps = gigabytes_per_second(28.0 * 1e7, 100.0).unwrap();
        assert!((gbps - 2.8).abs() < 1e-12, "{gbps}");
        assert_eq!(gigabytes_per_second(1.0, 0.0), None);
    }
}
