//! `examples/own_model.rs`, a model that is not in the library, trained by adamlab's generic loop:
//! a kill -9 at any moment (three kill points, one of them inside a checkpoint write), then
//! `--resume`, ends with the same `--save` bytes and journal (timing fields aside) as an
//! uninterrupted run.
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`) and the example built, which
//! `cargo test` does before running tests.

use adamlab::train::checkpoint::PAUSE_FOR_TESTS_ENV;
use adamlab::train::journal::TIMING_FIELDS;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example's binary, beside this test's in the target directory.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile.join("examples").join("own_model");
    assert!(binary.exists(), "{} is not built: run `cargo test` (which builds examples)", binary.display());
    binary
}

fn sandbox(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adamlab-own-model-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 256 images in batches of 32 for 2 epochs: 16 steps, a checkpoint every 3 and at each epoch's
/// end, with a schedule and clipping so that their state is part of what resumes.
fn command(dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(example());
    command
        .args([
            "--optimizer", "adamw(lr=2e-3)", "--lr-schedule", "cosine(t_max=16)", "--clip-grad-norm", "1",
            "--epochs", "2", "--batch-size", "32", "--limit-train", "256", "--limit-test", "64",
            "--checkpoint-every", "3",
        ])
        .arg("--checkpoint-dir")
        .arg(dir.join("ck"))
        .arg("--save")
        .arg(dir.join("w.st"))
        .arg("--metrics-out")
        .arg(dir.join("m.jsonl"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn journal_without_timing(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            for field in TIMING_FIELDS {
                value.as_object_mut().unwrap().remove(field);
            }
            format!("{value}\n")
        })
        .collect()
}

fn checkpoints_being_written(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("ck"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Checkpoint directories being written (not `latest`'s own temporary file).
        .filter(|name| name.starts_with("epoch-") && name.ends_with(".tmp"))
        .collect()
}

#[test]
fn own_model_killed_three_ways_then_resumed_ends_byte_for_byte_as_the_uninterrupted_run() {
    let reference = sandbox("reference");
    let output = command(&reference, &[]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let weights = std::fs::read(reference.join("w.st")).unwrap();
    let journal = journal_without_timing(&reference.join("m.jsonl"));
    assert_eq!(journal.lines().count(), 16 + 2, "16 steps and 2 epochs:\n{journal}");

    // Each write of a killed run pauses 1.5 s after its first file: the run lasts long enough for
    // the kill points below, and a write is there to be caught.
    enum Kill {
        After(Duration),
        InsideWrite(usize),
    }
    let kills = [
        Kill::After(Duration::from_millis(2500)),
        Kill::InsideWrite(3),
        Kill::After(Duration::from_millis(6000)),
    ];
    for (i, kill) in kills.iter().enumerate() {
        let dir = sandbox(&format!("kill-{i}"));
        let mut child = command(&dir, &[]).env(PAUSE_FOR_TESTS_ENV, "1500").spawn().unwrap();
        let started = Instant::now();
        let mut writes = std::collections::BTreeSet::new();
        loop {
            assert!(child.try_wait().unwrap().is_none(), "kill {i}: the run ended before its kill");
            assert!(started.elapsed() < Duration::from_secs(120), "kill {i}: never reached");
            let writing = checkpoints_being_written(&dir);
            writes.extend(writing.iter().cloned());
            let now = match kill {
                Kill::After(delay) => started.elapsed() >= *delay,
                Kill::InsideWrite(n) => writes.len() >= *n && !writing.is_empty(),
            };
            if now {
                child.kill().unwrap();
                child.wait().unwrap();
                if let Kill::InsideWrite(_) = kill {
                    for name in &writing {
                        assert!(dir.join("ck").join(name).is_dir(), "kill {i}: {name} finished before the kill");
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // A kill before the first checkpoint (a loaded machine is slow to reach it) leaves nothing
        // to resume: the user starts over, which must give the same bytes too.
        let has_checkpoint = dir.join("ck").join("latest").exists();
        println!("kill {i}: {}", if has_checkpoint { "resumed" } else { "no checkpoint yet: started over" });
        let resumed = command(&dir, if has_checkpoint { &["--resume"] } else { &[] }).output().unwrap();
        assert!(resumed.status.success(), "kill {i}: {}", String::from_utf8_lossy(&resumed.stderr));
        assert!(std::fs::read(dir.join("w.st")).unwrap() == weights, "kill {i}: other weights");
        assert_eq!(journal_without_timing(&dir.join("m.jsonl")), journal, "kill {i}: another journal");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::remove_dir_all(&reference).unwrap();
}
