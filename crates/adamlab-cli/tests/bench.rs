//! `adamlab bench` as a user meets it: every mistake ends in one line with exit code 2, and small
//! real runs write bench files that `bench report` turns into Markdown and SVG figures. No test
//! looks at a timing.
//!
//! The shoot-out test needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_adamlab");
const DATA: &str = "/usr/share/datasets/fashion-mnist";

fn adamlab(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ADAMLAB_DATA_DIR")
        .env("ADAMLAB_TORCH_PYTHON", "/nonexistent/python")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_user_error(output: &Output, needles: &[&str]) {
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

fn assert_success(output: &Output) -> String {
    let out = text(&output.stdout);
    assert!(output.status.success(), "stdout: {out}\nstderr: {}", text(&output.stderr));
    out
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adamlab-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn records(file: &Path) -> Vec<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(json["schema"], "adamlab-bench");
    assert_eq!(json["version"], 1);
    assert!(json["machine"]["threads"].as_u64().unwrap() >= 1);
    json["records"].as_array().unwrap().clone()
}

#[test]
fn bad_arguments_are_one_line_errors_with_exit_code_2() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["bench", "step", "--backends", "tpu"], &["invalid value 'tpu'", "--backends"]),
        (&["bench", "step", "--backends", "flex", "--repeats", "0"], &["--repeats must be at least 1"]),
        (&["bench", "step", "--backends", "flex", "--params", "1e6,abc"], &["--params", "`abc` is not a number"]),
        (&["bench", "step", "--backends", "flex", "--params", "0"], &["`0` is not a positive whole number"]),
        (&["bench", "step", "--backends", "flex", "--params", "10", "--tensors", "11"], &["cannot be split into 11 tensors"]),
        (&["bench", "step", "--backends", "flex", "--optimizers", "adam,nosuch"], &["unknown optimizer `nosuch`"]),
        (&["bench", "train", "--backends", "flex", "--batch-size", "64,x"], &["--batch-size"]),
        (&["bench", "train", "--backends", "flex", "--repeats", "0"], &["--repeats must be at least 1"]),
        (&["bench", "optimizers", "--backends", "flex", "--optimizers", "adam", "--lr", "sgd=0.1"], &["`sgd` is not among"]),
        (&["bench", "optimizers", "--backends", "flex", "--lr", "adam"], &["NAME=VALUE"]),
        (&["bench", "optimizers", "--backends", "flex", "--data-dir", "/nonexistent/mnist"], &["/nonexistent/mnist"]),
        (&["bench", "report", "/nonexistent/out.json", "--out", "/tmp/x"], &["/nonexistent/out.json"]),
    ];
    for (args, needles) in cases {
        assert_user_error(&adamlab(args), needles);
    }
    let dir = temp_dir("not-a-bench-file");
    let file = dir.join("other.json");
    std::fs::write(&file, r#"{"hello": 1}"#).unwrap();
    assert_user_error(
        &adamlab(&["bench", "report", path(&file), "--out", path(&dir)]),
        &["not an adamlab bench file"],
    );
}

#[test]
fn a_step_run_writes_records_that_the_report_turns_into_markdown_and_figures() {
    let dir = temp_dir("step");
    let json = dir.join("step.json");
    let out = assert_success(&adamlab(&[
        "bench", "step", "--backends", "flex", "--params", "1e3,2e3", "--tensors", "2", "--warmup", "0",
        "--repeats", "2", "--torch", "--json", path(&json),
    ]));
    assert!(out.contains("no PyTorch rows"), "{out}");
    assert!(out.contains("burn-adam"), "{out}");
    let records = records(&json);
    // The triad, then 3 default optimizers × 2 sizes.
    assert_eq!(records.len(), 7);
    assert_eq!(records[0]["bench"], "triad");
    for r in &records[1..] {
        assert_eq!((r["bench"].as_str(), r["tensors"].as_u64()), (Some("step"), Some(2)));
        assert!(r["min_ms"].as_f64() <= r["median_ms"].as_f64());
        assert_eq!(r["bytes_per_param"], 28);
    }
    let report = dir.join("report");
    assert_success(&adamlab(&["bench", "report", path(&json), "--out", path(&report)]));
    let md = std::fs::read_to_string(report.join("README.md")).unwrap();
    assert!(md.contains("## Optimizer step") && md.contains("step-adam.svg"), "{md}");
    assert!(report.join("step-adam.svg").exists() && report.join("step-adamw.svg").exists());
}

#[test]
fn a_train_run_records_the_three_phases_per_batch_size() {
    let dir = temp_dir("train");
    let json = dir.join("train.json");
    assert_success(&adamlab(&[
        "bench", "train", "--backends", "flex", "--model", "mlp,cnn", "--optimizers", "adam", "--batch-size",
        "2,4", "--warmup", "0", "--repeats", "1", "--json", path(&json),
    ]));
    let records = records(&json);
    assert_eq!(records.len(), 4);
    for r in &records {
        assert_eq!(r["bench"], "train");
        for phase in ["forward_ms", "backward_ms", "step_ms", "images_per_second"] {
            assert!(r[phase].as_f64().is_some(), "{phase}: {r}");
        }
    }
}

/// The shoot-out from the command line: each optimizer tries every rate of its grid on the
/// validation split (the last tenth of the 128 training images), then the best rate runs for each
/// seed with the test accuracy at steps 0, 2 and 4; the report draws its curves.
#[test]
fn a_small_shootout_tunes_each_rate_then_runs_the_best_over_seeds() {
    let dir = temp_dir("optimizers");
    let json = dir.join("optimizers.json");
    assert_success(&adamlab(&[
        "bench", "optimizers", "--backends", "flex", "--optimizers", "adam,burn-adam", "--lr", "burn-adam=0.002",
        "--lr-grid", "0.5,1", "--tune-steps", "2", "--steps", "4", "--eval-every", "2", "--seeds", "0,1",
        "--limit-train", "128", "--limit-eval", "64", "--data-dir", DATA, "--json", path(&json),
    ]));
    let records = records(&json);
    let phase = |r: &serde_json::Value, p: &str| r["phase"] == p;
    assert_eq!(records.len(), 2 * (2 + 2 * 3), "{records:?}");
    for name in ["adam", "burn-adam"] {
        // `burn-adam(lr=0.002)`: the spec with its centre.
        let named = |r: &serde_json::Value| r["optimizer"].as_str().unwrap().split('(').next() == Some(name);
        let mine: Vec<&serde_json::Value> = records.iter().filter(|r| named(r)).collect();
        let tune: Vec<&&serde_json::Value> = mine.iter().filter(|r| phase(r, "tune")).collect();
        let centre = if name == "adam" { 0.001 } else { 0.002 };
        let lrs: Vec<f64> = tune.iter().map(|r| r["lr"].as_f64().unwrap()).collect();
        assert_eq!(lrs, [centre / 2.0, centre], "{name}");
        let scores: Vec<f64> = tune.iter().map(|r| r["metric"].as_f64().unwrap()).collect();
        let best = if scores[1] > scores[0] { lrs[1] } else { lrs[0] };
        let run: Vec<&&serde_json::Value> = mine.iter().filter(|r| phase(r, "run")).collect();
        let steps: Vec<u64> = run.iter().map(|r| r["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, [0, 2, 4, 0, 2, 4], "{name}");
        for r in &run {
            assert_eq!(r["lr"].as_f64(), Some(best), "{name}: the tuned rate");
            assert_eq!(r["metric_name"], "test accuracy");
            assert!((0.0..=1.0).contains(&r["metric"].as_f64().unwrap()), "{r}");
            assert!(r["state_bytes"].as_u64().unwrap() > 0, "{r}");
        }
        assert!(run[2]["train_s"].as_f64() > run[1]["train_s"].as_f64());
    }
    let report = dir.join("report");
    assert_success(&adamlab(&["bench", "report", path(&json), "--out", path(&report)]));
    let md = std::fs::read_to_string(report.join("README.md")).unwrap();
    assert!(md.contains("## Optimizer shoot-out: cnn") && md.contains("learning rates tried"), "{md}");
    assert!(report.join("shootout-cnn-step.svg").exists() && report.join("shootout-cnn-time.svg").exists());
}

/// The machine's load is recorded over each side and a busy side is said on stderr: busy loops,
/// one per CPU, share the cores with a small `bench step` (its triad alone reads and writes
/// 192 MiB a dozen times, so the side lasts long enough to count). Whether this machine was
/// quiet before does not matter: with the loops running, the side is busy.
#[test]
fn a_step_run_beside_busy_loops_records_the_load_and_says_the_machine_was_busy() {
    let dir = temp_dir("busy");
    let json = dir.join("step.json");
    /// The loops, killed when dropped, even when the test fails midway.
    struct Loops(Vec<std::process::Child>);
    impl Drop for Loops {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let loops = Loops(
        (0..cores)
            .map(|_| Command::new("sh").args(["-c", "while :; do :; done"]).spawn().expect("sh runs"))
            .collect(),
    );
    let output = adamlab(&[
        "bench", "step", "--backends", "flex", "--params", "1e5", "--optimizers", "adam", "--warmup", "0",
        "--repeats", "20", "--json", path(&json),
    ]);
    drop(loops);
    assert_success(&output);
    let err = text(&output.stderr);
    assert!(err.contains("busy machine: adamlab's side: other processes took"), "stderr: {err}");
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let load = file["load"].as_array().expect("a load array");
    assert_eq!(load.len(), 1, "{load:?}");
    let side = &load[0];
    assert_eq!((side["side"].as_str(), side["round"].as_u64(), side["busy"].as_bool()), (Some("adamlab"), Some(1), Some(true)));
    assert!(side["other_cores"].as_f64().unwrap() > 0.25, "{side}");
    assert!(side["load_average_start"].as_array().is_some_and(|a| a.len() == 3), "{side}");
    // The report flags the file.
    let report = dir.join("report");
    assert_success(&adamlab(&["bench", "report", path(&json), "--out", path(&report)]));
    let md = std::fs::read_to_string(report.join("README.md")).unwrap();
    assert!(md.contains("**⚠ BUSY**: adamlab's side") && md.contains("> **⚠ Busy machine.**"), "{md}");
}

/// A file written before the load was recorded (the repository's recorded train run) is reported
/// as such, and one whose PyTorch side was busy has its PyTorch times marked.
#[test]
fn the_report_says_load_not_recorded_for_old_files_and_flags_a_busy_one() {
    let dir = temp_dir("report-load");
    let old = include_str!("../../adamlab-bench/tests/data/train.json");
    let old_path = dir.join("old.json");
    std::fs::write(&old_path, old).unwrap();
    let mut busy: serde_json::Value = serde_json::from_str(old).unwrap();
    busy["load"] = serde_json::json!([
        {"side": "adamlab", "round": 1, "seconds": 20.0, "load_average_start": [0.1, 0.1, 0.1],
         "load_average_end": [2.0, 0.5, 0.2], "cpus": 2, "other_cores": 0.01, "own_cores": 1.99, "busy": false},
        {"side": "torch", "round": 1, "seconds": 12.0, "load_average_start": [2.0, 0.5, 0.2],
         "load_average_end": [3.5, 1.0, 0.4], "cpus": 2, "other_cores": 1.2, "own_cores": 0.8, "busy": true}
    ]);
    let busy_path = dir.join("busy.json");
    std::fs::write(&busy_path, serde_json::to_string(&busy).unwrap()).unwrap();
    let report = dir.join("report");
    assert_success(&adamlab(&["bench", "report", path(&old_path), path(&busy_path), "--out", path(&report)]));
    let md = std::fs::read_to_string(report.join("README.md")).unwrap();
    let row = |name: &str| md.lines().find(|l| l.contains(&format!("{name}` |"))).unwrap_or_else(|| panic!("{md}"));
    assert!(row("old.json").contains("| load not recorded |"), "{md}");
    assert!(row("busy.json").contains("**⚠ BUSY**: PyTorch's side: other processes took 1.20 cores"), "{md}");
    let busy_section = &md[md.find("## Training throughput (`").unwrap()..];
    let busy_section = &busy_section[busy_section.find("busy.json").unwrap()..];
    let torch_rows: Vec<&str> = busy_section.lines().filter(|l| l.starts_with("| torch |")).collect();
    assert!(!torch_rows.is_empty() && torch_rows.iter().all(|l| l.contains("⚠ busy")), "{busy_section}");
    assert!(busy_section.lines().filter(|l| l.starts_with("| flex |")).all(|l| !l.contains("⚠")), "{busy_section}");
}
