//! Every optimizer of the registry, from the command line, resumes the CNN exactly: two epochs
//! straight equal one epoch, a checkpoint, and a resumed second epoch, byte for byte in the saved
//! weights and in the metrics journal (timings aside), with each step's learning rate recorded.
//!
//! On flex, on 32 images (two steps an epoch): the optimizer state goes through the checkpoint
//! files and back, which the in-library suite (`tests/optimizer_suite.rs`) does not cover. The MLP
//! takes no checkpoints (its 100 epochs on two points take milliseconds).
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_adamlab");
const DATA: &str = "/usr/share/datasets/fashion-mnist";

fn adamlab(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ADAMLAB_DATA_DIR")
        .output()
        .expect("the binary runs")
}

fn run(args: &[String], what: &str) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = adamlab(&args);
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The metrics journal without its timings (images/s, wall time), which differ between runs.
fn journal_without_timing(file: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            let object = value.as_object_mut().unwrap();
            object.retain(|key, _| !key.contains("per_second") && !key.contains("seconds") && !key.ends_with("_s"));
            value
        })
        .collect()
}

fn listed_optimizers() -> Vec<String> {
    let output = adamlab(&["optimizers"]);
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty() && l.contains(": "))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect()
}

fn sandbox() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adamlab-every-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_optimizer_resumes_the_cnn_byte_for_byte_with_its_learning_rates_recorded() {
    let dir = sandbox();
    let names = listed_optimizers();
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
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
        run(
            &with(&["--epochs", "2", "--save", path(&straight), "--metrics-out", path(&straight_metrics)]),
            &format!("{name}: two epochs"),
        );
        run(
            &with(&[
                "--epochs", "1", "--checkpoint-dir", path(&checkpoints), "--metrics-out", path(&resumed_metrics),
            ]),
            &format!("{name}: one epoch"),
        );
        run(
            &with(&[
                "--epochs", "2", "--checkpoint-dir", path(&checkpoints), "--resume", "--save", path(&resumed),
                "--metrics-out", path(&resumed_metrics),
            ]),
            &format!("{name}: resumed"),
        );
        assert!(
            std::fs::read(&straight).unwrap() == std::fs::read(&resumed).unwrap(),
            "{name}: the resumed run's weights differ from the uninterrupted run's"
        );
        let (expected, actual) = (journal_without_timing(&straight_metrics), journal_without_timing(&resumed_metrics));
        assert_eq!(actual, expected, "{name}: the resumed run's metrics differ");
        let steps: Vec<&serde_json::Value> = expected.iter().filter(|l| l.get("loss").is_some()).collect();
        assert_eq!(steps.len(), 4, "{name}: {expected:?}");
        for step in steps {
            assert_eq!(step["lr"], 0.001, "{name}: {step}");
        }
    }
}
