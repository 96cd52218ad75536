//! One optimizer step on 10M f32 parameters in one tensor, for adamlab's Adam and AdamW and burn's
//! built-in Adam, side by side in one run on every backend compiled in, with the host's streaming
//! bandwidth measured first.
//!
//! `cargo bench --bench adam_step` (add `--features wgpu` for the GPU). The measuring, the
//! statistics and the table's figures are `adamlab bench step`'s own (`adamlab_bench::sides::step`):
//! 3 warm-up steps, then 15 timed ones with the device synced inside the timed region; the table
//! gives the median, the min–max and the fraction of the triad's bandwidth. `adamlab bench step`
//! is the same measurement with every option (sizes, tensors, optimizers, PyTorch, JSON).

use adamlab::bench::step::{DEFAULT_OPTIMIZERS, DEFAULT_REPEATS, DEFAULT_WARMUP, StepConfig};
use adamlab::bench::{Observer, Record, Target, report, sides};
use adamlab::optim::OptimizerSpec;

const PARAMS: usize = 10_000_000;

/// The allocator of the `adamlab` binary, so that this bench times what `adamlab bench step` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints each row as it is measured.
struct Rows;

impl Observer for Rows {
    fn measured(&mut self, r: &Record) {
        match r.bench {
            adamlab::bench::schema::Bench::Triad => {
                println!("host streaming bandwidth (triad): {:.1} GB/s", r.bandwidth_gbps.unwrap_or(0.0));
                println!(
                    "{:<52} {:<12} {:<10} {:>24} {:>9}",
                    "device", "optimizer", "impl", "median (min–max) ms", "of triad"
                );
            }
            _ => println!(
                "{:<52} {:<12} {:<10} {:>24} {:>9}",
                r.device,
                r.optimizer.as_deref().unwrap_or("?"),
                r.implementation.as_deref().unwrap_or("?"),
                format!(
                    "{} ({}–{})",
                    report::fmt_ms(r.median_ms.unwrap_or(0.0)),
                    report::fmt_ms(r.min_ms.unwrap_or(0.0)),
                    report::fmt_ms(r.max_ms.unwrap_or(0.0))
                ),
                r.bandwidth_fraction.map_or("—".into(), |f| format!("{:.0} %", f * 100.0)),
            ),
        }
    }
}

fn main() {
    let config = StepConfig {
        targets: Target::every_usable(),
        optimizers: DEFAULT_OPTIMIZERS
            .iter()
            .map(|spec| OptimizerSpec::parse(spec).expect("the defaults are registered"))
            .collect(),
        params: vec![PARAMS],
        tensors: 1,
        multi_tensor: false,
        warmup: DEFAULT_WARMUP,
        repeats: DEFAULT_REPEATS,
        rounds: 1,
    };
    println!("one optimizer step on {PARAMS} f32 parameters: median (min–max) of {DEFAULT_REPEATS} steps");
    let threads = adamlab::bench::Machine::detect().threads;
    sides::step(&config, None, threads, &mut Rows).expect("the benchmark runs");
}
