//! An optimizer defined outside adamlab's crates (signSGD, in `sign_sgd.rs` beside this file),
//! trained on the article's MLP with adamlab's training loop, then put through the same property
//! suite every registered optimizer passes.
//!
//! `cargo run --release --example custom_optimizer` (add `--features wgpu` to allow the GPU).
//! `docs/adding-an-optimizer.md` walks through adding one to adamlab itself.

mod sign_sgd;

// `#[derive(RecordState)]` expands to paths under `crate::` and `burn_pack::`.
use burn::optim::{RecordState, StateSink, StateSource};

use adamlab::backend::default_device;
use adamlab::optim::OptimizerSpec;
use adamlab::train::controls::ControlsSpec;
use adamlab::train::fit::{self, Fit, RunConfig, Start};
use adamlab::train::mlp;
use adamlab::verify::suite::PROPERTIES;
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
    // The same spec language and checks as `adamlab train --optimizer`.
    let spec = match OptimizerSpec::parse_for(&sign_sgd::SIGN_SGD, "sign-sgd(lr=0.01, beta=0.8)") {
        Ok(spec) => spec,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    println!("the article's MLP with {spec}:");
    let run = Fit {
        // One full-batch step per epoch, as the article's loop.
        config: RunConfig { epochs: EPOCHS, batch_size: 2, seed: 0, shuffle: false, checkpoint_every: None },
        controls: &ControlsSpec::optimizer(spec),
        start: Start::Seeded,
        checkpointer: None,
        evaluate: None,
        observer: &mut mlp::ArticleLines { epochs: EPOCHS },
    };
    if let Err(stopped) = fit::fit(&device, mlp::model(), &mlp::article_points(), run) {
        eprintln!("error: {stopped}");
        return ExitCode::FAILURE;
    }

    println!("adamlab's optimizer suite on {}:", sign_sgd::SIGN_SGD.name);
    let mut failed = false;
    for (property, check) in PROPERTIES {
        match check(&sign_sgd::SIGN_SGD, &device) {
            Ok(()) => println!("  {property}: ok"),
            Err(err) => {
                println!("  {property}: FAILED: {err}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
