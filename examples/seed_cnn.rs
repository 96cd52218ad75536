//! The article's second program: its CNN trained with cross-entropy and Adam (lr 1e-3) for 100
//! epochs on one batch of random 28×28 images, printing the loss every 10 epochs.
//!
//! The article's code never defines `target`, so it cannot run as printed. Here the batch is 64
//! standard-normal images (the article's `torch.randn`) and `target` is 64 random class indices in
//! 0..10, both drawn from a fixed seed; the CNN memorises them, so the loss falls towards 0.
//!
//! `cargo run --release --example seed_cnn` (add `--features wgpu` to allow the GPU).

use adamlab::backend::default_device;
use adamlab::models::CnnConfig;
use adamlab::optim::AdamConfig;
use adamlab::train::classification as cnn;
use burn::tensor::{Distribution, Int, Tensor};
use std::process::ExitCode;

const EPOCHS: usize = 100;
const LEARNING_RATE: f64 = 1e-3;
const BATCH: usize = 64;
const CLASSES: usize = 10;
const SEED: u64 = 0;

fn main() -> ExitCode {
    let device = match default_device() {
        Ok(device) => device.autodiff(),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    device.seed(SEED);
    let inputs = Tensor::<4>::random([BATCH, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    // The fix: the article uses `target` without defining it.
    let target = Tensor::<1, Int>::random(
        [BATCH],
        Distribution::Uniform(0.0, CLASSES as f64),
        &device,
    );

    let mut model = CnnConfig::new().init(&device);
    let mut optimizer = AdamConfig::new().init().expect("torch's defaults are valid");
    for epoch in 1..=EPOCHS {
        let loss;
        (model, loss) = cnn::step(model, &mut optimizer, LEARNING_RATE, inputs.clone(), target.clone());
        if let Some(line) = adamlab::train::epoch_line(epoch, EPOCHS, loss) {
            println!("{line}");
        }
    }
    ExitCode::SUCCESS
}
