//! The article's first program: `nn.Linear(2, 1)` fitted with MSE and Adam (lr 0.01) to
//! `[[1, 2], [2, 3]] → [[0], [1]]` for 100 epochs, printing the loss every 10 epochs.
//!
//! `cargo run --release --example seed_mlp` (add `--features wgpu` to allow the GPU).

use adamlab::backend::default_device;
use adamlab::optim::OptimizerSpec;
use adamlab::train::controls::ControlsSpec;
use adamlab::train::fit::{self, Fit, RunConfig, Start};
use adamlab::train::mlp;
use std::process::ExitCode;

const EPOCHS: usize = 100;


fn main() -> ExitCode {
    let device = match default_device() {
        Ok(device) => device,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let adam = OptimizerSpec::parse("adam(lr=0.01)").expect("a valid spec");
    let data = mlp::article_points();
    let run = Fit {
        // One full-batch step per epoch, as the article's loop.
        config: RunConfig { epochs: EPOCHS, batch_size: 2, seed: 0, shuffle: false, checkpoint_every: None },
        controls: &ControlsSpec::optimizer(adam),
        start: Start::Seeded,
        checkpointer: None,
        evaluate: None,
        observer: &mut mlp::ArticleLines { epochs: EPOCHS },
    };
    match fit::fit(&device, mlp::model(), &data, run) {
        Ok(_) => ExitCode::SUCCESS,
        Err(stopped) => {
            eprintln!("error: {stopped}");
            ExitCode::FAILURE
        }
    }
}
