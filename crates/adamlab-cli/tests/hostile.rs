//! Hostile inputs, round two: the surfaces that grew after `faults.rs` (schedules, specs, bench
//! report, output paths). Each case ends in exit 0 or in one line with exit code 2, never a panic,
//! and never costs the user a file or the weights trained.

mod common;

use common::*;
use std::path::Path;

/// Learning rates that stop being numbers an optimizer can take after a few steps: an overflow
/// to infinity, or a value beyond f32 (the precision of every step).
const OVERFLOWING_SCHEDULES: [&str; 4] = [
    "multistep(milestones=[3,3], gamma=1e300)",
    "exponential(gamma=1e300)",
    "step(step_size=1, gamma=1e300)",
    "onecycle(max_lr=1e308, total_steps=100, div_factor=1e-300)",
];

/// Whether `file` holds safetensors weights that `adamlab eval` loads.
fn assert_loadable(weights: &Path) {
    assert!(weights.exists(), "{} was not written", weights.display());
    let output = adamlab(&strings(&[
        "eval", "--init", path(weights), "--backend", "flex", "--data-dir", DATA, "--batch-size", "64",
    ]));
    assert_success(&output);
}

#[test]
fn a_schedule_that_overflows_ends_with_one_line_and_the_weights_saved() {
    for schedule in OVERFLOWING_SCHEDULES {
        let dir = sandbox(&format!("overflow-{}", schedule.split('(').next().unwrap()));
        let (save, checkpoints) = (dir.join("w.st"), dir.join("ck"));
        let args = tiny_run(&[
            "--optimizer", "sgd", "--lr-schedule", schedule, "--epochs", "1", "--save", path(&save),
            "--checkpoint-dir", path(&checkpoints),
        ]);
        let output = adamlab(&args);
        let name = schedule.split('(').next().unwrap();
        assert_user_error(&output, &[&format!("schedule {name}"), "for step", "not taken"]);
        let err = stderr(&output);
        if err.contains("weights after step") {
            assert!(err.contains(path(&save)), "{err}");
            assert_loadable(&save);
        } else {
            // Refused at step 1: nothing was trained, so nothing is written.
            assert!(err.contains("for step 1:"), "{err}");
            assert!(!save.exists());
        }
    }
}

#[test]
fn the_mlp_refuses_an_overflowing_schedule_the_same_way() {
    let dir = sandbox("overflow-mlp");
    let save = dir.join("w.st");
    let output = adamlab(&strings(&[
        "train", "--model", "mlp", "--backend", "flex", "--optimizer", "sgd", "--lr-schedule", "exponential(gamma=1e300)",
        "--save", path(&save),
    ]));
    // The MLP's first line (stderr, as the article's lines take stdout) says what it trains.
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    let last = err.trim_end().lines().last().unwrap();
    for needle in ["schedule exponential", "for step 2", "after step 1", path(&save)] {
        assert!(last.contains(needle), "missing {needle:?} in {last}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(save.exists());
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused_and_nothing_is_written() {
    let dir = sandbox("clobber");
    let weights = dir.join("w.st");
    assert_success(&adamlab(&strings(&["train", "--model", "mlp", "--backend", "flex", "--epochs", "1", "--save", path(&weights)])));
    let before = std::fs::read(&weights).unwrap();
    let link = dir.join("link.st");
    std::os::unix::fs::symlink(&weights, &link).unwrap();
    let spelled = dir.join(".").join("w.st");
    let cases: Vec<(Vec<&str>, [&str; 2])> = vec![
        (vec!["--init", path(&weights), "--metrics-out", path(&weights)], ["--metrics-out", "--init"]),
        (vec!["--init", path(&weights), "--save", path(&link)], ["--save", "--init"]),
        (vec!["--save", path(&weights), "--metrics-out", path(&spelled)], ["--save", "--metrics-out"]),
    ];
    for (flags, needles) in cases {
        let mut args = strings(&["train", "--model", "mlp", "--backend", "flex", "--epochs", "1"]);
        args.extend(strings(&flags));
        assert_user_error(&adamlab(&args), &needles);
        assert_eq!(std::fs::read(&weights).unwrap(), before, "{flags:?} changed the weights");
    }
    let checkpoints = dir.join("ck");
    let inside = checkpoints.join("w.st");
    let args = tiny_run(&["--checkpoint-dir", path(&checkpoints), "--save", path(&inside)]);
    assert_user_error(&adamlab(&args), &["--save", "inside", "--checkpoint-dir"]);
}

#[test]
fn bench_report_never_replaces_files_it_did_not_write() {
    let dir = sandbox("report-clobber");
    let json = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adamlab-bench/tests/data/step.json");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mine = out.join("README.md");
    std::fs::write(&mine, "my notes\n").unwrap();
    let report = |extra: &[&str]| {
        let mut args = strings(&["bench", "report", path(&json), "--out", path(&out)]);
        args.extend(strings(extra));
        adamlab(&args)
    };
    assert_user_error(&report(&[]), &["README.md", "--overwrite"]);
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my notes\n");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "the refused report wrote files");

    // A Markdown file elsewhere that exists is the user's too.
    let notes = dir.join("notes.md");
    std::fs::write(&notes, "mine\n").unwrap();
    let fresh = dir.join("fresh");
    let output = adamlab(&strings(&[
        "bench", "report", path(&json), "--out", path(&fresh), "--markdown", path(&notes),
    ]));
    assert_user_error(&output, &["notes.md"]);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine\n");

    // The preface is an input: the report may not be written over it, even with --overwrite.
    let output = report(&["--preface", path(&mine), "--overwrite"]);
    assert_user_error(&output, &["--preface", "README.md"]);
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my notes\n");

    // --overwrite replaces; then the folder is the report's own, and a second run needs no flag.
    assert_success(&report(&["--overwrite"]));
    assert!(std::fs::read_to_string(&mine).unwrap().contains("# adamlab benchmarks"));
    assert_success(&report(&[]));
    let stray = out.join("stray.svg");
    std::fs::write(&stray, "<svg/>").unwrap();
    assert_user_error(&report(&[]), &["stray.svg"]);
    assert_eq!(std::fs::read_to_string(&stray).unwrap(), "<svg/>");
}

#[test]
fn a_journal_cut_back_by_hand_is_refused_on_resume_naming_both_steps() {
    let dir = sandbox("journal-gap");
    let (checkpoints, metrics) = (dir.join("ck"), dir.join("m.jsonl"));
    let run = |extra: &[&str]| {
        let mut flags = vec!["--checkpoint-dir", path(&checkpoints), "--metrics-out", path(&metrics)];
        flags.extend(extra);
        adamlab(&tiny_run(&flags))
    };
    assert_success(&run(&["--epochs", "1"]));
    let text = std::fs::read_to_string(&metrics).unwrap();
    let kept: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&metrics, &kept).unwrap();
    let output = run(&["--epochs", "2", "--resume"]);
    // The last line: in a build with wgpu, the restored optimizer state starts a Vulkan instance
    // (its records load on the default device), whose loader may complain on stderr first.
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    let last = err.trim_end().lines().last().unwrap();
    for needle in ["ends at step 3", &format!("at step {STEPS_PER_EPOCH}")] {
        assert!(last.contains(needle), "missing {needle:?} in {last}");
    }
    assert_eq!(std::fs::read_to_string(&metrics).unwrap(), kept, "the refused resume changed the journal");
}

#[test]
fn the_mlp_stops_on_a_non_finite_loss_as_the_cnn_does() {
    let dir = sandbox("mlp-nan");
    let save = dir.join("w.st");
    let output = adamlab(&strings(&[
        "train", "--model", "mlp", "--backend", "flex", "--optimizer", "sgd(lr=1e30)", "--save", path(&save),
    ]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.trim_end().lines().last().unwrap().contains("the loss became"), "{err}");
    assert!(!save.exists(), "weights after a non-finite loss were saved");
}
