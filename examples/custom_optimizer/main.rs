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
use adamlab::train::{epoch_line, mlp};
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
    let lab = spec.build().expect("parse checks that it builds");
    let mut optimizer = lab.module_optimizer();
    println!("the article's MLP with {spec}:");
    let autodiff = device.clone().autodiff();
    autodiff.seed(0);
    let model = mlp::article_model(&autodiff);
    mlp::train(model, &mut optimizer, spec.lr(), EPOCHS, |epoch, loss| {
        if let Some(line) = epoch_line(epoch, EPOCHS, loss) {
            println!("{line}");
        }
    });

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
