//! Timing on a burn device: warm up, then time each repetition with the device synced inside the
//! timed region (GPU backends run asynchronously: without the sync a step would seem free). Also
//! the host's streaming bandwidth (a triad) and the process's peak resident memory.

use crate::stats::Summary;
use burn::tensor::Device;
use rayon::prelude::*;
use std::time::Instant;

/// A device that could not finish its work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the device failed while being timed: {0}")]
pub struct DeviceError(pub String);

/// Waits for every operation queued on `device`.
pub fn sync(device: &Device) -> Result<(), DeviceError> {
    device.sync().map_err(|err| DeviceError(format!("{err:?}")))
}

/// Runs `work` `warmup` times untimed, then `repeats` times timed, syncing `device` before the
/// clock starts and inside the timed region. Returns each repetition's time in milliseconds.
pub fn time_on(
    device: &Device,
    warmup: usize,
    repeats: usize,
    mut work: impl FnMut(),
) -> Result<Vec<f64>, DeviceError> {
    for _ in 0..warmup {
        work();
    }
    sync(device)?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        work();
        sync(device)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

/// The host's streaming bandwidth, measured as STREAM's triad `a[i] = b[i] + s·c[i]` over three
/// f32 arrays of `len` elements, on rayon's pool (the threads burn's CPU backends use).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Triad {
    /// Elements per array.
    pub len: usize,
    /// Time of one triad, milliseconds.
    pub summary: Summary,
    /// Bytes one triad moves: read `b` and `c`, write `a`.
    pub bytes: f64,
}

impl Triad {
    /// The default size: three 64 MiB arrays, far larger than any cache.
    pub const LEN: usize = 1 << 24;

    /// Measures the triad over `len` elements, `repeats` times after `warmup`.
    pub fn measure(len: usize, warmup: usize, repeats: usize) -> Self {
        let b = vec![1.0f32; len];
        let c = vec![2.0f32; len];
        let mut a = vec![0.0f32; len];
        let s = 3.0f32;
        let mut run = || {
            a.par_chunks_mut(1 << 16)
                .zip(b.par_chunks(1 << 16))
                .zip(c.par_chunks(1 << 16))
                .for_each(|((a, b), c)| {
                    for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                        *a = b + s * c;
                    }
                });
        };
        for _ in 0..warmup {
            run();
        }
        let times: Vec<f64> = (0..repeats.max(1))
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        assert_eq!(a[len / 2], 7.0, "the triad computed b + s·c");
        Self {
            len,
            summary: Summary::of(&times).expect("at least one repetition"),
            bytes: 3.0 * 4.0 * len as f64,
        }
    }

    /// The bandwidth of the fastest triad, GB/s: as STREAM reports its best rate, the machine's
    /// capacity, which other work on a shared machine can only lower.
    pub fn gigabytes_per_second(&self) -> f64 {
        crate::stats::gigabytes_per_second(self.bytes, self.summary.min).unwrap_or(0.0)
    }
}

/// Peak resident memory of this process, read from `/proc/self/status` (`VmHWM`).
pub mod rss {
    /// Resets the peak to the current resident size (Linux: `5` into `/proc/self/clear_refs`).
    /// Returns whether it could.
    pub fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }

    /// The peak resident size since the process started or [`reset_peak`], MiB; `None` where
    /// `/proc` does not tell.
    pub fn peak_mib() -> Option<f64> {
        status_mib("VmHWM:")
    }

    /// The resident size now, MiB; `None` where `/proc` does not tell.
    pub fn current_mib() -> Option<f64> {
        status_mib("VmRSS:")
    }

    fn status_mib(field: &str) -> Option<f64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib: f64 = status
            .lines()
            .find(|line| line.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_on_returns_one_time_per_repeat_after_running_the_warm_up_too() {
        let device = Device::flex();
        let mut calls = 0;
        let times = time_on(&device, 2, 5, || calls += 1).unwrap();
        assert_eq!(times.len(), 5);
        assert_eq!(calls, 7);
        assert!(times.iter().all(|t| *t >= 0.0));
    }

    #[test]
    fn the_triad_counts_three_arrays_of_bytes() {
        let triad = Triad::measure(1 << 12, 0, 3);
        assert_eq!(triad.bytes, 3.0 * 4.0 * 4096.0);
        assert_eq!(triad.summary.count, 3);
    }
}
