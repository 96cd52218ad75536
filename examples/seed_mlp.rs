//! The article's first program: `nn.Linear(2, 1)` fitted with MSE and Adam (lr 0.01) to
//! `[[1, 2], [2, 3]] → [[0], [1]]` for 100 epochs, printing the loss every 10 epochs.
//!
//! `cargo run --release --example seed_mlp` (add `--features wgpu` to allow the GPU).

use adamlab::backend::default_device;
use adamlab::optim::AdamConfig;
use adamlab::train::mlp;
use std::process::ExitCode;

const EPOCHS: usize = 100;
const LEARNING_RATE: f64 = 0.01;

fn main() -> ExitCode {
    let device = match default_device() {
        Ok(device) => device.autodiff(),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let mut optimizer = AdamConfig::new().init().expect("torch's defaults are valid");
    let model = mlp::article_model(&device);
    mlp::train(model, &mut optimizer, LEARNING_RATE, EPOCHS, |epoch, loss| {
        if let Some(line) = adamlab::train::epoch_line(epoch, EPOCHS, loss) {
            println!("{line}");
        }
    });
    ExitCode::SUCCESS
}
