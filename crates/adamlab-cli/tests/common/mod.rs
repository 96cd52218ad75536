//! What the binary's end-to-end tests share: the tiny CNN run, running the binary, and
//! checking its outcome.
// Each test file uses a part of these.
#![allow(dead_code)]

use adamlab_train::journal::TIMING_FIELDS;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_adamlab");
pub const DATA: &str = "/usr/share/datasets/fashion-mnist";

/// Steps per epoch of the tiny run: 256 images in batches of 32.
pub const STEPS_PER_EPOCH: usize = 8;

/// The tiny CNN run on flex: 256 training and 64 test images, batch 32, with `extra` flags.
pub fn tiny_run(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train", "--model", "cnn", "--backend", "flex", "--limit-train", "256", "--limit-test", "64",
        "--batch-size", "32", "--data-dir", DATA,
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `args` with `flag` set to `value`: replaced where the tiny run sets it, else added.
pub fn with(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(at) => args[at + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

pub fn command(args: &[String]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("ADAMLAB_DATA_DIR");
    command
}

pub fn adamlab(args: &[String]) -> Output {
    command(args).output().expect("the binary runs")
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A user error: exit code 2, exactly one line on stderr, containing every `needle`, no panic.
pub fn assert_user_error(output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

pub fn assert_success(output: &Output) {
    let err = stderr(output);
    assert!(output.status.success(), "exit {:?}: {err}", output.status.code());
    assert!(!err.contains("panicked"), "stderr: {err}");
}

/// The names `adamlab optimizers` lists, from its output.
pub fn listed_optimizers() -> Vec<String> {
    let output = adamlab(&strings(&["optimizers"]));
    assert_success(&output);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty() && l.contains(": "))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect()
}

/// A fresh directory for one test, `$TMPDIR/adamlab-test-NAME-PID`. The first call of each test
/// process removes the sandboxes of test processes that have ended (their pid is gone from
/// `/proc`), so that runs do not pile up gigabytes of checkpoints in the temporary directory.
pub fn sandbox(name: &str) -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_ended_sandboxes);
    let dir = std::env::temp_dir().join(format!("adamlab-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The metrics journal without its timing fields ([`TIMING_FIELDS`]), which no two runs share;
/// every line must be whole JSON.
pub fn metrics_without_timing(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line in {}", file.display());
    text.lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{}: line {line:?}: {err}", file.display()));
            let object = value.as_object_mut().unwrap();
            for field in TIMING_FIELDS {
                object.remove(field);
            }
            format!("{value}\n")
        })
        .collect()
}

/// Copies the directory `from` (files and directories only) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Removes `adamlab-test-*-PID` directories whose process has ended (Linux: no `/proc/PID`).
fn remove_ended_sandboxes() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("adamlab-test-") else {
            continue;
        };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
