//! The workloads from the command line: `adamlab models`, `train --model NAME` for the new
//! models, `adamlab sample`, and their one-line errors. Tiny budgets; the numbers are checked by
//! the library's tests (tests/workloads.rs at the root).

mod common;

use common::{adamlab, assert_user_error, strings};
use std::path::PathBuf;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adamlab-cli-workloads-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn models_lists_every_model_with_its_parameter_count() {
    let output = adamlab(&strings(&["models"]));
    assert!(output.status.success());
    let out = stdout(&output);
    for (model, count) in [
        ("cnn", "421,642"),
        ("mlp", "3"),
        ("char-gpt", "834,400"),
        ("softmax-regression", "7,850"),
        ("rosenbrock", "2"),
        ("quadratic", "10"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(model))
            .unwrap_or_else(|| panic!("{model} missing:\n{out}"));
        assert_eq!(line.split_whitespace().nth(1), Some(count), "{line}");
    }
}

#[test]
fn a_test_function_trains_and_reports_the_distance_to_its_optimum_after_each_epoch() {
    let output = adamlab(&strings(&["train", "--model", "quadratic", "--backend", "flex", "--epochs", "2"]));
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    let distances: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split("distance to the optimum ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(distances.len(), 2, "{out}");
    // From 0, √10 ≈ 3.16 from the optimum.
    assert!(distances[1] < distances[0] && distances[0] < 3.16, "{distances:?}");
    assert_user_error(
        &adamlab(&strings(&["train", "--model", "rosenbrock", "--batch-size", "4"])),
        &["--batch-size", "a test function has none"],
    );
}

#[test]
fn char_gpt_trains_prints_the_validation_loss_and_samples_from_its_saved_weights() {
    let dir = temp_dir("char-gpt");
    let weights = dir.join("char-gpt.safetensors");
    let output = adamlab(&strings(&[
        "train", "--model", "char-gpt", "--backend", "flex", "--limit-train", "16", "--limit-test", "4",
        "--batch-size", "8", "--save", weights.to_str().unwrap(),
    ]));
    let out = stdout(&output);
    assert!(output.status.success(), "{out}{}", common::stderr(&output));
    let line = out.lines().find(|l| l.contains("validation loss ")).unwrap_or_else(|| panic!("{out}"));
    let loss: f64 = line.split("validation loss ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    // Two Adam steps from GPT-2's initialisation (which predicts near-uniformly, ln 96 ≈ 4.56
    // nats per character) already fall below uniform, and cannot be near the ~2 of a trained model.
    assert!((3.0..4.56).contains(&loss), "{line}");

    let sample = |seed: &str| {
        let output = adamlab(&strings(&[
            "sample", "--init", weights.to_str().unwrap(), "--prompt", "The ", "--tokens", "40", "--seed", seed,
            "--backend", "flex",
        ]));
        assert!(output.status.success(), "{}", common::stderr(&output));
        let out = stdout(&output);
        out.strip_suffix('\n').unwrap_or(&out).to_string()
    };
    let text = sample("1");
    assert!(text.starts_with("The "), "{text}");
    assert_eq!(text.len(), 44, "{text:?}");
    assert_eq!(text, sample("1"));
    assert_ne!(text, sample("2"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_fortunes_and_bad_sample_flags_are_one_line_errors() {
    assert_user_error(
        &adamlab(&strings(&["train", "--model", "char-gpt", "--backend", "flex", "--data-dir", "/nonexistent/fortunes"])),
        &["/nonexistent/fortunes/art", "`fortunes` and `fortunes-min`"],
    );
    assert_user_error(
        &adamlab(&strings(&["sample", "--init", "/nonexistent.safetensors"])),
        &["/nonexistent.safetensors"],
    );
    assert_user_error(
        &adamlab(&strings(&["sample", "--init", "x", "--temperature", "nan"])),
        &["--temperature"],
    );
}
