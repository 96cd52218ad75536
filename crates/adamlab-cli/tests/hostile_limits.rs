//! Hostile inputs, round two (issue 18), the limits: files that are not files or are too large,
//! sizes that cannot fit in memory, a keyword given twice, negative values after a flag, the
//! checkpoint lock's lifetime, unwritable outputs, `--init` files holding more than the model,
//! and the shoot-out's budgets. Each refusal is one line with exit code 2, within seconds, with nothing allocated,
//! blocked on, or left behind.

mod common;

use adamlab_bench::shootout;
use common::*;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary, failing the test (rather than hanging it) when it takes longer than `limit`:
/// a read of `/dev/zero` or a FIFO never ends.
fn within(args: &[String], limit: Duration) -> Output {
    let mut child = command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("adamlab {} still ran after {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn quick(args: &[&str]) -> Output {
    within(&strings(args), Duration::from_secs(30))
}

fn mkfifo(path: &Path) {
    assert!(std::process::Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// The article's MLP's weights, as `train --save` writes them.
fn mlp_weights(dir: &Path) -> std::path::PathBuf {
    let weights = dir.join("w.st");
    assert_success(&quick(&["train", "--model", "mlp", "--backend", "flex", "--epochs", "1", "--save", path(&weights)]));
    weights
}

/// Safetensors bytes with `header` (JSON, padded to 8 bytes) and `data`.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut json = header.as_bytes().to_vec();
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(data);
    out
}

#[test]
fn init_preface_and_bench_files_are_read_only_when_regular_files() {
    let dir = sandbox("not-files");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let json = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adamlab-bench/tests/data/step.json");
    let out = dir.join("report");
    for (source, kind) in [("/dev/zero", "character device"), ("/dev/urandom", "character device"), (path(&fifo), "FIFO")] {
        for args in [
            vec!["eval", "--backend", "flex", "--data-dir", DATA, "--init", source],
            vec!["train", "--model", "mlp", "--backend", "flex", "--init", source],
            vec!["train", "--backend", "flex", "--limit-train", "64", "--data-dir", DATA, "--init", source],
            vec!["bench", "report", path(&json), "--out", path(&out), "--preface", source],
            vec!["bench", "report", source, "--out", path(&out)],
        ] {
            let output = quick(&args);
            assert_user_error(&output, &[source, kind, "not a regular file"]);
        }
    }
    assert!(!out.exists(), "a refused report wrote {}", out.display());
}

#[test]
fn a_file_beyond_its_bound_or_a_header_beyond_its_file_is_refused_before_reading() {
    let dir = sandbox("too-large");
    // Sparse: 300 MiB that take no disk, beyond the 256 MiB a weights file may hold.
    let huge = dir.join("huge.st");
    std::fs::File::create(&huge).unwrap().set_len(300 << 20).unwrap();
    let output = quick(&["eval", "--backend", "flex", "--data-dir", DATA, "--init", path(&huge)]);
    assert_user_error(&output, &["huge.st", "314572800 bytes", "256 MiB a weights file"]);
    // A header that claims more than the file holds, and one beyond the header bound.
    let weights = mlp_weights(&dir);
    let mut bytes = std::fs::read(&weights).unwrap();
    for claim in [u64::MAX, 1 << 40, bytes.len() as u64 - 7] {
        bytes[..8].copy_from_slice(&claim.to_le_bytes());
        let bad = dir.join("bad-header.st");
        std::fs::write(&bad, &bytes).unwrap();
        let output = quick(&["train", "--model", "mlp", "--backend", "flex", "--init", path(&bad)]);
        assert_user_error(&output, &["bad-header.st", &format!("header claims {claim} bytes"), "the file holds"]);
    }
    let padded = dir.join("padded.st");
    let mut big_header = safetensors(&" ".repeat(2 << 20), &[]);
    big_header[8] = b'{';
    std::fs::write(&padded, &big_header).unwrap();
    let output = quick(&["train", "--model", "mlp", "--backend", "flex", "--init", path(&padded)]);
    assert_user_error(&output, &["padded.st", "1 MiB a header may hold"]);
    // A tensor whose bytes lie beyond the file's end.
    let beyond = dir.join("beyond.st");
    let header = r#"{"fc.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"fc.bias":{"dtype":"F32","shape":[1],"data_offsets":[8,4000000000]}}"#;
    std::fs::write(&beyond, safetensors(header, &[0; 12])).unwrap();
    let output = quick(&["train", "--model", "mlp", "--backend", "flex", "--init", path(&beyond)]);
    assert_user_error(&output, &["beyond.st", "`fc.bias`", "8..4000000000", "12 bytes of data"]);
}

#[test]
fn extra_tensors_are_refused_by_name_and_a_duplicated_key_is_named_as_one() {
    let dir = sandbox("extra-tensors");
    let extra = dir.join("extra.st");
    let header = r#"{"fc.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"fc.bias":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"head.weight":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#;
    std::fs::write(&extra, safetensors(header, &[0; 16])).unwrap();
    let output = quick(&["train", "--model", "mlp", "--backend", "flex", "--init", path(&extra)]);
    assert_user_error(&output, &["extra.st", "`head.weight` is not the model's", "fc.weight"]);
    // The same key twice, the second time with another range: named as a duplicate, not as a
    // wrong range of some other tensor.
    let twice = dir.join("twice.st");
    let header = r#"{"fc.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"fc.bias":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"fc.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[4,12]}}"#;
    std::fs::write(&twice, safetensors(header, &[0; 12])).unwrap();
    let output = quick(&["eval", "--backend", "flex", "--data-dir", DATA, "--init", path(&twice)]);
    assert_user_error(&output, &["twice.st", "the key `fc.weight` twice"]);
}

/// Each `bench` command line, on flex, is a user error naming the needles, refused before it
/// measured or trained anything.
fn assert_bench_refuses_before_running(cases: Vec<(Vec<&str>, Vec<&str>)>) {
    for (mut args, needles) in cases {
        args.extend(["--backends", "flex"]);
        let output = quick(&args);
        assert_user_error(&output, &needles);
        assert!(output.stdout.is_empty(), "{args:?}: ran before refusing");
    }
}

#[test]
fn sizes_that_cannot_fit_in_memory_are_refused_naming_their_bound() {
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["bench", "step", "--params", "1e12"], vec!["--params 1000000000000", "16 bytes each", "memory"]),
        (vec!["bench", "step", "--params", "1e5", "--repeats", "18446744073709551615"], vec!["MAX_REPEATS"]),
        (vec!["bench", "step", "--params", "1e5", "--repeats", "100000000000"], vec!["MAX_REPEATS"]),
        (vec!["bench", "step", "--params", "1e5", "--repeats", "1e11"], vec!["--repeats", "1e11"]),
        (vec!["bench", "step", "--params", "1e5", "--rounds", "18446744073709551615"], vec!["MAX_ROUNDS"]),
        (vec!["bench", "step", "--params", "1e5", "--rounds", "100000000000"], vec!["MAX_ROUNDS"]),
        (vec!["bench", "step", "--params", "1e5", "--warmup", "18446744073709551615"], vec!["--warmup", "MAX_REPEATS"]),
        (vec!["bench", "step", "--params", "1e8", "--tensors", "100000000"], vec!["--tensors", "MAX_TENSORS"]),
        (vec!["bench", "train", "--model", "mlp", "--repeats", "18446744073709551615"], vec!["MAX_REPEATS"]),
        (vec!["bench", "train", "--model", "mlp", "--batch-size", "1e12"], vec!["MAX_BATCH_SIZE"]),
    ];
    assert_bench_refuses_before_running(cases);
}

#[test]
fn shootout_budgets_beyond_their_bounds_and_data_limits_without_data_are_refused() {
    let grid = vec!["1"; shootout::MAX_RUNS + 1].join(",");
    let seeds = (0..=shootout::MAX_RUNS).map(|seed| seed.to_string()).collect::<Vec<_>>().join(",");
    let quadratic = ["bench", "optimizers", "--model", "quadratic", "--optimizers", "adam"];
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        ([&quadratic[..], &["--steps", "100000000000"]].concat(), vec!["--steps 100000000000", "MAX_STEPS"]),
        ([&quadratic[..], &["--tune-steps", "18446744073709551615"]].concat(), vec!["--tune-steps", "MAX_STEPS"]),
        ([&quadratic[..], &["--lr-grid", &grid]].concat(), vec!["--lr-grid: 1001 values", "MAX_RUNS"]),
        ([&quadratic[..], &["--seeds", &seeds]].concat(), vec!["--seeds: 1001 values", "MAX_RUNS"]),
        ([&quadratic[..], &["--limit-eval", "5"]].concat(), vec!["--limit-eval applies to models with data", "quadratic has none"]),
        ([&quadratic[..], &["--limit-train", "5"]].concat(), vec!["--limit-train applies to models with data"]),
        (
            vec!["bench", "optimizers", "--model", "softmax-regression", "--batch-size", "100000"],
            vec!["--batch-size 100000", "MAX_BATCH_SIZE"],
        ),
    ];
    assert_bench_refuses_before_running(cases);
}

#[test]
fn a_keyword_given_in_the_spec_and_by_a_flag_is_refused_naming_both() {
    let cases = [
        ("adam(betas=(0.8, 0.9))", "--beta1", "0.5", "betas"),
        ("adam(betas=(0.8, 0.9))", "--beta2", "0.5", "betas"),
        ("adam(eps=1e-6)", "--eps", "1e-7", "eps"),
        ("adamw(weight_decay=0.1)", "--weight-decay", "0.2", "weight_decay"),
        ("adam(amsgrad=false)", "--amsgrad", "", "amsgrad"),
        ("adam(maximize=false)", "--maximize", "", "maximize"),
        ("adam(lr=0.1)", "--lr", "0.2", "learning rate"),
    ];
    for (spec, flag, value, keyword) in cases {
        let mut args = strings(&["train", "--model", "mlp", "--backend", "flex", "--optimizer", spec, flag]);
        if !value.is_empty() {
            args.push(value.into());
        }
        let output = within(&args, Duration::from_secs(30));
        assert_user_error(&output, &[keyword, spec, flag, "twice"]);
        // Each flag alone still sets its keyword.
        let bare = spec.split('(').next().unwrap();
        let mut alone = strings(&["train", "--model", "mlp", "--backend", "flex", "--epochs", "1", "--optimizer", bare, flag]);
        if !value.is_empty() {
            alone.push(value.into());
        }
        assert_success(&within(&alone, Duration::from_secs(30)));
    }
    let output = quick(&[
        "bench", "optimizers", "--optimizers", "adam(lr=0.1)", "--lr", "adam=0.2", "--backends", "flex", "--data-dir", DATA,
    ]);
    assert_user_error(&output, &["adam(lr=0.1)", "--lr adam=", "twice"]);
}

#[test]
fn flags_that_do_not_apply_to_the_mlp_are_refused() {
    let dir = sandbox("mlp-flags");
    for (flag, value) in [
        ("--batch-size", "5"),
        ("--limit-train", "5"),
        ("--limit-test", "5"),
        ("--no-shuffle", ""),
        ("--data-dir", path(&dir)),
    ] {
        let mut args = strings(&["train", "--model", "mlp", "--backend", "flex", flag]);
        if !value.is_empty() {
            args.push(value.into());
        }
        assert_user_error(&within(&args, Duration::from_secs(30)), &[flag, "--model cnn"]);
    }
    // Checkpoint flags without a checkpoint directory are refused for either model.
    for model in ["mlp", "cnn"] {
        let output = quick(&["train", "--model", model, "--backend", "flex", "--keep-checkpoints", "3"]);
        assert_user_error(&output, &["--checkpoint-dir"]);
    }
    // The data directory from the environment is not a flag given to the MLP.
    let output = command(&strings(&["train", "--model", "mlp", "--backend", "flex", "--epochs", "1"]))
        .env("ADAMLAB_DATA_DIR", &dir)
        .output()
        .unwrap();
    assert_success(&output);
}

#[test]
fn negative_values_after_a_flag_reach_adamlabs_own_checks() {
    let mlp = ["train", "--model", "mlp", "--backend", "flex"];
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        ([&mlp[..], &["--clip-grad-norm", "-1"]].concat(), vec!["--clip-grad-norm -1", "≥ 0"]),
        ([&mlp[..], &["--clip-grad-value", "-1"]].concat(), vec!["--clip-grad-value -1", "≥ 0"]),
        ([&mlp[..], &["--clip-grad-norm", "1", "--clip-norm-type", "-1"]].concat(), vec!["--clip-norm-type -1", "p > 0"]),
        // Found by the sweep: a p whose 1/p overflows f32 panicked inside burn.
        ([&mlp[..], &["--clip-grad-norm", "1", "--clip-norm-type", "1e-45"]].concat(), vec!["--clip-norm-type 1e-45", "1e-38"]),
        ([&mlp[..], &["--lr", "-1"]].concat(), vec!["invalid lr -1"]),
        ([&mlp[..], &["--eps", "-1"]].concat(), vec!["invalid eps -1"]),
        (vec!["bench", "step", "--params", "-5", "--backends", "flex"], vec!["--params", "`-5` is not a positive whole number"]),
        (vec!["bench", "optimizers", "--seeds", "-1", "--backends", "flex"], vec!["`-1` is not a seed"]),
        // Every flag that takes a value, whole numbers too: clap names the flag.
        (vec!["bench", "step", "--repeats", "-1", "--backends", "flex"], vec!["'-1' for '--repeats"]),
        ([&mlp[..], &["--epochs", "-1"]].concat(), vec!["'-1' for '--epochs"]),
    ];
    for (args, needles) in cases {
        let output = quick(&args);
        assert_user_error(&output, &needles);
        assert!(!stderr(&output).contains("unexpected argument"), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn the_lock_file_goes_with_its_run_and_a_refused_run_makes_none() {
    let dir = sandbox("lock-lifetime");
    let mlp = |checkpoints: &Path, extra: &[&str]| {
        let mut args = strings(&["train", "--model", "mlp", "--backend", "flex", "--checkpoint-dir", path(checkpoints)]);
        args.extend(strings(extra));
        within(&args, Duration::from_secs(60))
    };
    // Success.
    let done = dir.join("done");
    assert_success(&mlp(&done, &["--epochs", "2"]));
    assert!(done.join("latest").is_file());
    assert!(!done.join("lock").exists(), "a finished run left its lock");
    // A NaN stop (exit 1) and an error exit after training (exit 2).
    let nan = dir.join("nan");
    assert_eq!(mlp(&nan, &["--optimizer", "sgd(lr=1e30)", "--epochs", "5"]).status.code(), Some(1));
    assert!(!nan.join("lock").exists(), "a run stopped on a NaN loss left its lock");
    let overflow = dir.join("overflow");
    let output = within(
        &[
            strings(&["train", "--model", "mlp", "--backend", "flex", "--optimizer", "sgd"]),
            strings(&["--lr-schedule", "exponential(gamma=1e300)", "--checkpoint-dir", path(&overflow)]),
            strings(&["--save", path(&dir.join("w.st"))]),
        ]
        .concat(),
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!overflow.join("lock").exists(), "a run ended by its schedule left its lock");
    // Refused before training: no lock, no directory.
    let refused = dir.join("refused");
    assert_user_error(&mlp(&refused, &["--init", "/dev/zero"]), &["/dev/zero"]);
    let args = with(tiny_run(&["--checkpoint-dir", path(&refused)]), "--data-dir", "/nonexistent/fmnist");
    assert_user_error(&within(&args, Duration::from_secs(60)), &["/nonexistent/fmnist"]);
    assert!(!refused.exists(), "a refused run created {}", refused.display());
    // Refused by the directory itself (another run's checkpoints): the lock it took is removed.
    assert_user_error(&mlp(&done, &["--epochs", "2"]), &["--overwrite"]);
    assert!(!done.join("lock").exists(), "a refused run left a lock");
    // A stale lock file (as a kill -9 leaves it, no process holding its flock) is taken over.
    std::fs::write(done.join("lock"), "999999\n").unwrap();
    assert_success(&mlp(&done, &["--epochs", "3", "--resume"]));
    assert!(!done.join("lock").exists());
}

#[test]
fn an_unwritable_save_names_the_path_and_the_reason() {
    let output = quick(&["train", "--model", "mlp", "--backend", "flex", "--save", "/proc/version"]);
    assert_user_error(&output, &["--save /proc/version", "/proc does not accept new files"]);
    let output = quick(&["train", "--model", "mlp", "--backend", "flex", "--save", "/nonexistent-dir/w.st"]);
    assert_user_error(&output, &["--save /nonexistent-dir/w.st", "directory /nonexistent-dir does not exist"]);
}
