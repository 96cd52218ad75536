//! Every optimizer of the registry, from the command line, resumes the CNN exactly: two epochs
//! straight equal one epoch, a checkpoint, and a resumed second epoch, byte for byte in the saved
//! weights and in the metrics journal (timings aside), with each step's learning rate recorded.
//!
//! On flex, on 32 images (two steps an epoch): the optimizer state goes through the checkpoint
//! files and back, which the in-library suite (`tests/optimizer_suite.rs`) does not cover. The MLP
//! takes no checkpoints (its 100 epochs on two points take milliseconds).
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

mod common;

use common::{DATA, adamlab, assert_success, listed_optimizers, metrics_without_timing, path, sandbox};

#[test]
fn every_optimizer_resumes_the_cnn_byte_for_byte_with_its_learning_rates_recorded() {
    let dir = sandbox("every-resume");
    let names = listed_optimizers();
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
        // Shown with a failure's output: which optimizer it was.
        println!("optimizer {name}");
        let case = dir.join(name);
        std::fs::create_dir_all(&case).unwrap();
        let file = |f: &str| case.join(f);
        let (straight, resumed) = (file("straight.safetensors"), file("resumed.safetensors"));
        let (straight_metrics, resumed_metrics) = (file("straight.jsonl"), file("resumed.jsonl"));
        let checkpoints = file("checkpoints");
        let base = [
            "train", "--model", "cnn", "--backend", "flex", "--limit-train", "32", "--limit-test", "16",
            "--batch-size", "16", "--data-dir", DATA, "--optimizer", name, "--lr", "0.001",
        ];
        let with = |extra: &[&str]| -> Vec<String> {
            base.iter().chain(extra).map(|s| s.to_string()).collect()
        };
        let run = |args: &[String]| assert_success(&adamlab(args));
        run(&with(&["--epochs", "2", "--save", path(&straight), "--metrics-out", path(&straight_metrics)]));
        run(&with(&[
            "--epochs", "1", "--checkpoint-dir", path(&checkpoints), "--metrics-out", path(&resumed_metrics),
        ]));
        run(&with(&[
            "--epochs", "2", "--checkpoint-dir", path(&checkpoints), "--resume", "--save", path(&resumed),
            "--metrics-out", path(&resumed_metrics),
        ]));
        assert!(
            std::fs::read(&straight).unwrap() == std::fs::read(&resumed).unwrap(),
            "{name}: the resumed run's weights differ from the uninterrupted run's"
        );
        let expected = metrics_without_timing(&straight_metrics);
        assert_eq!(metrics_without_timing(&resumed_metrics), expected, "{name}: the resumed run's metrics differ");
        let lines: Vec<serde_json::Value> = expected.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let steps: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("loss").is_some()).collect();
        assert_eq!(steps.len(), 4, "{name}: {expected:?}");
        for step in steps {
            assert_eq!(step["lr"], 0.001, "{name}: {step}");
        }
    }
}
