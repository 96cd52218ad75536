//! One optimizer step on a 10M-parameter tensor: adamlab's Adam against burn's built-in Adam,
//! side by side in one run, on every backend compiled in.
//!
//! `cargo bench --bench adam_step` (add `--features wgpu` for the GPU). Each measurement syncs
//! the device inside the timed region, after 3 warm-up steps; the table gives the median and the
//! min–max of 15 steps and the ratio of the medians.

use adamlab::backend::{compiled, describe, device};
use adamlab::optim::AdamConfig;
use burn::optim::Optimizer;
use burn::tensor::{Device, Distribution, Tensor};
use std::time::{Duration, Instant};

const PARAMS: usize = 10_000_000;
const WARMUP: usize = 3;
const STEPS: usize = 15;
const LR: f64 = 1e-3;

/// Times `STEPS` steps of `optimizer` on one tensor, after `WARMUP` untimed ones.
fn time_steps<O: Optimizer>(optimizer: &O, device: &Device) -> Vec<Duration> {
    let mut theta = Tensor::<1>::random([PARAMS], Distribution::Normal(0.0, 1.0), device);
    let grad = Tensor::<1>::random([PARAMS], Distribution::Normal(0.0, 1e-2), device);
    let mut state = None;
    let mut times = Vec::with_capacity(STEPS);
    for step in 0..WARMUP + STEPS {
        let start = Instant::now();
        (theta, state) = optimizer.step(LR, theta, grad.clone(), state.take());
        device.sync().expect("the device runs");
        if step >= WARMUP {
            times.push(start.elapsed());
        }
    }
    times
}

fn summary(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[times.len() / 2]), ms(times[0]), ms(times[times.len() - 1]))
}

fn main() {
    println!("one Adam step on {PARAMS} f32 parameters: median (min–max) of {STEPS} steps");
    println!("{:<52} {:>24} {:>24} {:>10}", "backend", "adamlab Adam (ms)", "burn Adam (ms)", "ours/burn");
    let ours = AdamConfig::new().build().expect("defaults are valid");
    let burns = burn::optim::AdamConfig::new().with_epsilon(1e-8).build();
    for backend in compiled() {
        let device = match device(backend) {
            Ok(device) => device,
            Err(err) => {
                println!("{backend}: skipped ({err})");
                continue;
            }
        };
        let (a, a_min, a_max) = summary(&mut time_steps(&ours, &device));
        let (b, b_min, b_max) = summary(&mut time_steps(&burns, &device));
        println!(
            "{:<52} {:>24} {:>24} {:>10.2}",
            describe(backend),
            format!("{a:.1} ({a_min:.1}–{a_max:.1})"),
            format!("{b:.1} ({b_min:.1}–{b_max:.1})"),
            a / b
        );
    }
}
