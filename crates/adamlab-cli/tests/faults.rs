//! Fault injection: the `adamlab` binary under the faults a demanding user meets (issue 11), each
//! ending as promised: no panic, no abort, nothing deleted outside the run's own outputs, no
//! trained weights lost, and a resumed run byte-identical to the uninterrupted one.
//!
//! - bad `latest` pointers (empty, `.`, `..`, absolute, non-UTF-8, …): one line naming the
//!   file, nothing outside the checkpoint directory touched;
//! - two runs on one checkpoint directory: the second refused with the first's pid;
//! - kill -9 at random moments of training and while checkpoints are written, several seeds,
//!   each followed by `--resume`: `--save` and the metrics (timing fields aside) byte-identical to
//!   the uninterrupted run's;
//! - float16, bfloat16, float64 and integer weights; a closed or broken stdout; a full disk
//!   (`/dev/full`); damaged checkpoint files; unwritable outputs; absurd sizes.
//!
//! Every run is tiny (256 training and 64 test images, batch 32, flex), so the whole file takes
//! a few minutes on two cores. Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

use adamlab_train::checkpoint::PAUSE_FOR_TESTS_ENV;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// The outputs of one run configuration: the uninterrupted run's weights and metrics, and the
/// seconds it took.
struct Reference {
    weights: Vec<u8>,
    metrics: String,
    checkpoints: PathBuf,
    seconds: f64,
}

/// Two epochs, a checkpoint every 3 steps (some mid-epoch), every checkpoint kept.
fn run_args(dir: &Path) -> Vec<String> {
    tiny_run(&[
        "--epochs", "2", "--checkpoint-every", "3", "--keep-checkpoints", "100",
        "--checkpoint-dir", path(&dir.join("checkpoints")), "--save", path(&dir.join("weights.safetensors")),
        "--metrics-out", path(&dir.join("metrics.jsonl")),
    ])
}

/// The uninterrupted run, once for the whole file.
fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = sandbox("reference");
        let started = Instant::now();
        assert_success(&adamlab(&run_args(&dir)));
        let seconds = started.elapsed().as_secs_f64();
        let reference = Reference {
            weights: std::fs::read(dir.join("weights.safetensors")).unwrap(),
            metrics: metrics_without_timing(&dir.join("metrics.jsonl")),
            checkpoints: dir.join("checkpoints"),
            seconds,
        };
        let steps = reference.metrics.lines().filter(|l| l.contains("\"loss\"")).count();
        assert_eq!(steps, 2 * STEPS_PER_EPOCH, "{}", reference.metrics);
        reference
    })
}

/// `dir` holds the reference's outputs, byte for byte (the metrics' timing fields aside).
fn assert_same_as_reference(dir: &Path, what: &str) {
    let reference = reference();
    let weights = std::fs::read(dir.join("weights.safetensors")).unwrap();
    assert!(weights == reference.weights, "{what}: --save differs from the uninterrupted run's");
    let metrics = metrics_without_timing(&dir.join("metrics.jsonl"));
    assert_eq!(metrics, reference.metrics, "{what}: metrics differ from the uninterrupted run's");
}

/// Resumes the run in `dir` (or, when the kill came before any checkpoint, restarts it), as a
/// user would. A resume of a run that had completed has nothing left to do, and succeeds.
fn finish(dir: &Path, what: &str) {
    let mut args = run_args(dir);
    args.push("--resume".into());
    let output = adamlab(&args);
    if output.status.success() {
        return;
    }
    assert!(stderr(&output).contains("no checkpoint to resume from"), "{what}: {}", stderr(&output));
    assert_success(&adamlab(&run_args(dir)));
}

/// SplitMix64: the seeds of the fault schedules, so that a failure can be replayed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn kill_9_at_random_moments_then_resume_continues_byte_for_byte() {
    let reference = reference();
    let span = (reference.seconds * 1000.0) as u64;
    for seed in 1..=4u64 {
        let mut rng = SplitMix(seed);
        let dir = sandbox(&format!("kill-{seed}"));
        // One or two kills, each at a random moment of a (re)started run.
        for kill in 0..1 + rng.below(2) {
            let mut args = run_args(&dir);
            if dir.join("checkpoints/latest").exists() {
                args.push("--resume".into());
            }
            let mut child = command(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            let delay = rng.below(span * 4 / 5);
            std::thread::sleep(Duration::from_millis(delay));
            child.kill().unwrap();
            let status = child.wait().unwrap();
            println!("seed {seed}: kill {kill} after {delay} ms: {status}");
        }
        finish(&dir, &format!("seed {seed}"));
        assert_same_as_reference(&dir, &format!("kill -9 schedule of seed {seed}"));
    }
}

#[test]
fn kill_9_while_a_checkpoint_is_written_then_resume_continues_byte_for_byte() {
    for seed in 1..=3u64 {
        let mut rng = SplitMix(100 + seed);
        let dir = sandbox(&format!("kill-writing-{seed}"));
        let checkpoints = dir.join("checkpoints");
        // The k-th checkpoint write (of the 7 the run makes) is the one killed.
        let target = 1 + rng.below(7) as usize;
        // Each write pauses after its first file, so the poll below cannot miss it.
        let mut child = command(&run_args(&dir))
            .env(PAUSE_FOR_TESTS_ENV, "1500")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        let killed_at = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("seed {seed}: the run ended ({status}) before write {target} was caught");
            }
            assert!(Instant::now() < deadline, "seed {seed}: the run did not end");
            let writing: Vec<String> = std::fs::read_dir(&checkpoints)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Checkpoint directories being written (not `latest`'s own temporary file).
        .filter(|name| name.starts_with("epoch-") && name.ends_with(".tmp"))
                .collect();
            seen.extend(writing.iter().cloned());
            if seen.len() >= target && !writing.is_empty() {
                child.kill().unwrap();
                child.wait().unwrap();
                // The half-written checkpoint is still there: the kill landed inside the write.
                for name in &writing {
                    assert!(checkpoints.join(name).is_dir(), "seed {seed}: {name} was finished before the kill");
                }
                break writing.join(", ");
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        println!("seed {seed}: killed while writing {killed_at}");
        finish(&dir, &format!("seed {seed}"));
        assert_same_as_reference(&dir, &format!("kill -9 during checkpoint {target} (seed {seed})"));
    }
}

#[test]
fn resuming_from_every_mid_epoch_and_epoch_checkpoint_gives_the_uninterrupted_run() {
    let reference = reference();
    // The reference keeps all 7: steps 3 and 6 (epoch 1), its end (8), 9, 12, 15, and the end.
    let mut names: Vec<String> = std::fs::read_dir(&reference.checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("epoch-"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    let reference_dir = reference.checkpoints.parent().unwrap();
    for name in ["epoch-0001-batch-000003", "epoch-0001", "epoch-0002-batch-000007"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        let dir = sandbox(&format!("resume-{name}"));
        copy_dir(&reference.checkpoints, &dir.join("checkpoints"));
        // The whole metrics file of the finished run: the resume must cut it back itself.
        std::fs::copy(reference_dir.join("metrics.jsonl"), dir.join("metrics.jsonl")).unwrap();
        std::fs::write(dir.join("checkpoints/latest"), name).unwrap();
        let mut args = run_args(&dir);
        args.push("--resume".into());
        assert_success(&adamlab(&args));
        assert_same_as_reference(&dir, &format!("resumed from {name}"));
    }
}

#[test]
fn old_checkpoints_are_pruned_to_keep_checkpoints_and_nothing_else_is_touched() {
    let dir = sandbox("prune");
    let checkpoints = dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    std::fs::write(checkpoints.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir_all(checkpoints.join("epoch-1-not-ours")).unwrap();
    let output = adamlab(&tiny_run(&[
        "--epochs", "2", "--checkpoint-every", "3", "--keep-checkpoints", "3", "--checkpoint-dir",
        path(&checkpoints),
    ]));
    assert_success(&output);
    let mut names: Vec<String> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "epoch-0002", "epoch-0002-batch-000004", "epoch-0002-batch-000007", "epoch-1-not-ours",
            "latest", "notes.txt",
        ]
    );
    assert_eq!(std::fs::read_to_string(checkpoints.join("latest")).unwrap(), "epoch-0002");
}

/// A checkpoint directory holding one real checkpoint, an unrelated file, and a sibling file,
/// plus a directory elsewhere that an absolute `latest` could name.
struct Bystanders {
    sandbox: PathBuf,
    checkpoints: PathBuf,
    elsewhere: PathBuf,
}

impl Bystanders {
    fn new(name: &str) -> Self {
        let sandbox = sandbox(name);
        let checkpoints = sandbox.join("checkpoints");
        let output = adamlab(&tiny_run(&["--epochs", "1", "--checkpoint-dir", path(&checkpoints)]));
        assert_success(&output);
        std::fs::write(checkpoints.join("notes.txt"), "mine").unwrap();
        std::fs::write(sandbox.join("sibling.txt"), "mine").unwrap();
        let elsewhere = sandbox.join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("epoch-0001")).unwrap();
        std::fs::write(elsewhere.join("precious.txt"), "mine").unwrap();
        Self {
            sandbox,
            checkpoints,
            elsewhere,
        }
    }

    fn assert_untouched(&self, what: &str) {
        for file in [
            self.checkpoints.join("notes.txt"),
            self.checkpoints.join("epoch-0001/model.bpk"),
            self.sandbox.join("sibling.txt"),
            self.elsewhere.join("precious.txt"),
        ] {
            assert!(file.is_file(), "{what}: {} was deleted", file.display());
        }
        assert!(self.elsewhere.join("epoch-0001").is_dir(), "{what}: deleted outside the directory");
    }
}

#[test]
fn bad_latest_pointers_are_one_line_errors_and_delete_nothing() {
    let places = Bystanders::new("latest");
    let absolute = places.elsewhere.to_str().unwrap().to_string();
    let pointers: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("empty line", b"\n".to_vec()),
        ("dot", b".".to_vec()),
        ("dot-dot", b"..".to_vec()),
        ("absolute", absolute.clone().into_bytes()),
        ("absolute checkpoint", format!("{absolute}/epoch-0001").into_bytes()),
        ("escaping", b"epoch-0001/../..".to_vec()),
        ("non-UTF-8", b"epoch-\xff\xfe".to_vec()),
        ("missing", b"epoch-0009".to_vec()),
        ("partial", b"epoch-0002.tmp".to_vec()),
    ];
    let latest = places.checkpoints.join("latest");
    for (what, bytes) in pointers {
        std::fs::write(&latest, &bytes).unwrap();
        let checkpoint_dir = path(&places.checkpoints);
        for extra in [vec!["--epochs", "2"], vec!["--epochs", "2", "--resume"]] {
            let mut flags = extra.clone();
            flags.extend(["--checkpoint-dir", checkpoint_dir]);
            let output = adamlab(&tiny_run(&flags));
            assert_user_error(&output, &[path(&latest), "does not name a checkpoint"]);
            places.assert_untouched(&format!("latest {what} ({extra:?})"));
            assert_eq!(std::fs::read(&latest).unwrap(), bytes, "{what}: latest was rewritten");
        }
    }
    // --overwrite replaces the run's own entries, the bad pointer included, and nothing else.
    std::fs::write(&latest, "..").unwrap();
    let checkpoint_dir = path(&places.checkpoints);
    let output = adamlab(&tiny_run(&["--epochs", "1", "--overwrite", "--checkpoint-dir", checkpoint_dir]));
    assert_success(&output);
    assert_eq!(std::fs::read_to_string(&latest).unwrap(), "epoch-0001");
    places.assert_untouched("--overwrite");
}

#[test]
fn a_new_run_refuses_a_directory_with_another_runs_checkpoints() {
    let places = Bystanders::new("fresh");
    let before = std::fs::read(places.checkpoints.join("epoch-0001/model.bpk")).unwrap();
    let checkpoint_dir = path(&places.checkpoints);
    let output = adamlab(&tiny_run(&["--epochs", "1", "--seed", "3", "--checkpoint-dir", checkpoint_dir]));
    assert_user_error(&output, &["epoch-0001", "--resume", "--overwrite"]);
    let after = std::fs::read(places.checkpoints.join("epoch-0001/model.bpk")).unwrap();
    assert!(before == after, "the earlier run's checkpoint changed");
    places.assert_untouched("refused fresh run");
    // A checkpoint directory that is a file.
    let output = adamlab(&tiny_run(&["--checkpoint-dir", path(&places.sandbox.join("sibling.txt"))]));
    assert_user_error(&output, &["sibling.txt", "not a directory"]);
}

#[test]
fn a_second_run_on_a_locked_directory_is_refused_naming_the_first_runs_pid() {
    let dir = sandbox("lock");
    let checkpoints = dir.join("checkpoints");
    let first_args = tiny_run(&["--epochs", "3", "--checkpoint-dir", path(&checkpoints)]);
    let first = command(&first_args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = first.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = || std::fs::read_to_string(checkpoints.join("lock")).ok().map(|s| s.trim().to_string());
    while holder() != Some(pid.clone()) {
        assert!(Instant::now() < deadline, "the first run never took the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    let holder = format!("pid {pid}");
    for extra in [&[][..], &["--resume"][..], &["--overwrite"][..]] {
        let mut flags = vec!["--epochs", "3", "--checkpoint-dir", path(&checkpoints)];
        flags.extend(extra);
        let output = adamlab(&tiny_run(&flags));
        assert_user_error(&output, &[&holder, "in use"]);
    }
    let first = first.wait_with_output().unwrap();
    assert_success(&first);
    assert_eq!(std::fs::read_to_string(checkpoints.join("latest")).unwrap(), "epoch-0003");
    // The lock ends with its run, and so does its file.
    assert!(!checkpoints.join("lock").exists(), "the finished run left its lock file");
    let output = adamlab(&tiny_run(&["--epochs", "4", "--resume", "--checkpoint-dir", path(&checkpoints)]));
    assert_success(&output);
    assert!(!checkpoints.join("lock").exists());
}

/// A checkpoint after one epoch of the tiny run, in `sandbox/checkpoints`.
fn one_epoch_checkpoint(sandbox: &Path, extra: &[&str]) -> PathBuf {
    let checkpoints = sandbox.join("checkpoints");
    let mut flags = vec!["--epochs", "1", "--checkpoint-dir", path(&checkpoints)];
    flags.extend(extra);
    assert_success(&adamlab(&tiny_run(&flags)));
    checkpoints
}

fn resume_args(checkpoints: &Path, extra: &[&str]) -> Vec<String> {
    let mut flags = vec!["--epochs", "2", "--resume", "--checkpoint-dir", path(checkpoints)];
    flags.extend(extra);
    tiny_run(&flags)
}

#[test]
fn damaged_or_foreign_checkpoints_are_refused_naming_what_differs() {
    let template_dir = sandbox("damaged-template");
    let template = one_epoch_checkpoint(&template_dir, &[]);
    let seed_7 = one_epoch_checkpoint(&sandbox("damaged-seed-7"), &["--seed", "7"]);
    type Damage = Box<dyn Fn(&Path)>;
    let flip = |file: &'static str| -> Damage {
        Box::new(move |c: &Path| {
            let path = c.join("epoch-0001").join(file);
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x10;
            std::fs::write(&path, bytes).unwrap();
        })
    };
    let seed_7_model = seed_7.join("epoch-0001/model.bpk");
    let cases: Vec<(&str, Damage, Vec<&str>)> = vec![
        ("bit-flipped model", flip("model.bpk"), vec!["model.bpk", "CRC-32"]),
        ("bit-flipped optimizer", flip("optimizer.bpk"), vec!["optimizer.bpk", "CRC-32"]),
        (
            "optimizer replaced by the model",
            Box::new(|c: &Path| {
                std::fs::copy(c.join("epoch-0001/model.bpk"), c.join("epoch-0001/optimizer.bpk")).unwrap();
            }),
            vec!["optimizer.bpk", "bytes"],
        ),
        (
            "another seed's model",
            Box::new(move |c: &Path| {
                std::fs::copy(&seed_7_model, c.join("epoch-0001/model.bpk")).unwrap();
            }),
            vec!["model.bpk", "CRC-32"],
        ),
        (
            "truncated optimizer",
            Box::new(|c: &Path| {
                let path = c.join("epoch-0001/optimizer.bpk");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
            }),
            vec!["optimizer.bpk", "bytes"],
        ),
        (
            "missing model",
            Box::new(|c: &Path| std::fs::remove_file(c.join("epoch-0001/model.bpk")).unwrap()),
            vec!["model.bpk"],
        ),
        (
            "state that is not JSON",
            Box::new(|c: &Path| std::fs::write(c.join("epoch-0001/state.json"), "{{{").unwrap()),
            vec!["state.json"],
        ),
        (
            "epoch 2^64 - 1",
            Box::new(|c: &Path| {
                let path = c.join("epoch-0001/state.json");
                let text = std::fs::read_to_string(&path).unwrap();
                let edited = text.replace("\"epoch\": 1,", "\"epoch\": 18446744073709551615,");
                assert_ne!(edited, text);
                std::fs::write(&path, edited).unwrap();
            }),
            vec!["state.json", "checksum"],
        ),
    ];
    for (what, damage, needles) in cases {
        let dir = sandbox(&format!("damaged-{}", what.replace(' ', "-")));
        let checkpoints = dir.join("checkpoints");
        copy_dir(&template, &checkpoints);
        damage(&checkpoints);
        let output = adamlab(&resume_args(&checkpoints, &[]));
        println!("{what}: {}", stderr(&output).trim_end());
        assert_user_error(&output, &needles);
    }
    // Another run's whole checkpoint: the setting that differs is named.
    let output = adamlab(&resume_args(&seed_7, &[]));
    assert_user_error(&output, &["seed", "7"]);
    let output = adamlab(&resume_args(&template, &["--lr", "0.01"]));
    assert_user_error(&output, &["optimizer"]);
    // Other data with the same number of images: the next 256 training images.
    let other = sandbox("damaged-other-data");
    let images = adamlab_data::idx::read(&Path::new(DATA).join("train-images-idx3-ubyte.gz")).unwrap();
    let labels = adamlab_data::idx::read(&Path::new(DATA).join("train-labels-idx1-ubyte.gz")).unwrap();
    std::fs::write(
        other.join("train-images-idx3-ubyte"),
        adamlab_data::idx::encode(&[256, 28, 28], &images.data[256 * 784..512 * 784]),
    )
    .unwrap();
    std::fs::write(other.join("train-labels-idx1-ubyte"), adamlab_data::idx::encode(&[256], &labels.data[256..512]))
        .unwrap();
    for file in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(Path::new(DATA).join(file), other.join(file)).unwrap();
    }
    let output = adamlab(&with(resume_args(&template, &[]), "--data-dir", path(&other)));
    assert_user_error(&output, &["training data"]);
    // The template itself still resumes: the refusals above changed nothing in it.
    assert_success(&adamlab(&resume_args(&template, &[])));
}

/// A safetensors file of the article's MLP (`fc.weight` `[1, 2]`, `fc.bias` `[1]`) whose values
/// are exact in every float type: 0.5, -0.25 and 0.125, stored as `dtype`.
fn mlp_weights(dtype: &str) -> Vec<u8> {
    let values = [0.5f64, -0.25, 0.125];
    let encode = |x: f64| -> Vec<u8> {
        match dtype {
            "F32" => (x as f32).to_le_bytes().to_vec(),
            "F64" => x.to_le_bytes().to_vec(),
            // bfloat16 is the upper half of the f32; float16 of these powers of two by hand.
            "BF16" => ((x as f32).to_bits() >> 16).to_le_bytes()[..2].to_vec(),
            "F16" => {
                let bits: u16 = match x {
                    0.5 => 0x3800,
                    -0.25 => 0xb400,
                    _ => 0x3000,
                };
                bits.to_le_bytes().to_vec()
            }
            "I64" => (x as i64).to_le_bytes().to_vec(),
            "I32" => (x as i32).to_le_bytes().to_vec(),
            "BOOL" => vec![u8::from(x > 0.0)],
            other => panic!("{other}"),
        }
    };
    let weight: Vec<u8> = values[..2].iter().flat_map(|&x| encode(x)).collect();
    let bias = encode(values[2]);
    let header = serde_json::json!({
        "fc.weight": {"dtype": dtype, "shape": [1, 2], "data_offsets": [0, weight.len()]},
        "fc.bias": {
            "dtype": dtype, "shape": [1], "data_offsets": [weight.len(), weight.len() + bias.len()]
        },
    });
    let mut json = header.to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(weight);
    out.extend(bias);
    out
}

#[test]
fn float16_bfloat16_and_float64_weights_load_as_float32_and_integers_are_refused() {
    let dir = sandbox("dtypes");
    for backend in ["flex", "ndarray"] {
        let train = |init: &Path, save: &Path| {
            adamlab(&strings(&[
                "train", "--model", "mlp", "--backend", backend, "--epochs", "3", "--init", path(init),
                "--save", path(save),
            ]))
        };
        let f32_init = dir.join("F32.safetensors");
        std::fs::write(&f32_init, mlp_weights("F32")).unwrap();
        let expected_save = dir.join(format!("F32-{backend}-trained.safetensors"));
        let output = train(&f32_init, &expected_save);
        assert_success(&output);
        assert!(!stderr(&output).contains("converted"), "{}", stderr(&output));
        let expected = std::fs::read(&expected_save).unwrap();
        for (dtype, name) in [("F16", "float16"), ("BF16", "bfloat16"), ("F64", "float64")] {
            let init = dir.join(format!("{dtype}.safetensors"));
            std::fs::write(&init, mlp_weights(dtype)).unwrap();
            let save = dir.join(format!("{dtype}-{backend}-trained.safetensors"));
            let output = train(&init, &save);
            assert_success(&output);
            let note = format!("converted 2 {name} tensors to float32");
            assert!(stderr(&output).contains(&note), "{}", stderr(&output));
            // The values are exact in every type: training from them is training from the f32 file.
            let same = std::fs::read(&save).unwrap() == expected;
            assert!(same, "{dtype} on {backend}: other weights than from float32");
        }
        for (dtype, name) in [("I64", "int64"), ("I32", "int32"), ("BOOL", "bool")] {
            let init = dir.join(format!("{dtype}.safetensors"));
            std::fs::write(&init, mlp_weights(dtype)).unwrap();
            let output = train(&init, &dir.join("unused.safetensors"));
            assert_user_error(&output, &["fc.", name, "float32"]);
        }
    }
    // The CNN through `eval`: float64 weights evaluate exactly as the float32 ones they hold.
    let weights = dir.join("cnn.safetensors");
    assert_success(&adamlab(&tiny_run(&["--epochs", "1", "--save", path(&weights)])));
    let widened = widen_to_f64(&std::fs::read(&weights).unwrap());
    let weights_f64 = dir.join("cnn-f64.safetensors");
    std::fs::write(&weights_f64, widened).unwrap();
    let eval = |file: &Path| {
        let output = adamlab(&strings(&["eval", "--backend", "flex", "--init", path(file), "--data-dir", DATA]));
        assert_success(&output);
        let stdout = String::from_utf8(output.stdout).unwrap();
        stdout.split_once(": ").unwrap().1.to_string()
    };
    assert_eq!(eval(&weights_f64), eval(&weights));
}

/// The float32 safetensors `bytes` with every tensor widened to float64.
fn widen_to_f64(bytes: &[u8]) -> Vec<u8> {
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let data = &bytes[8 + len..];
    let mut out_header = serde_json::Map::new();
    let mut out_data = Vec::new();
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(info["dtype"], "F32");
        let [start, end] = [0, 1].map(|i| info["data_offsets"][i].as_u64().unwrap() as usize);
        let begin = out_data.len();
        for chunk in data[start..end].chunks_exact(4) {
            let x = f32::from_le_bytes(chunk.try_into().unwrap());
            out_data.extend(f64::from(x).to_le_bytes());
        }
        out_header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": "F64", "shape": info["shape"], "data_offsets": [begin, out_data.len()]
            }),
        );
    }
    let mut json = serde_json::Value::Object(out_header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(out_data);
    out
}

/// Runs `args` through `sh -c SCRIPT` with the binary as `$0`, for redirections Rust's
/// `Command` cannot make (a closed stdout, a pipe into `head`).
fn shell(script: &str, args: &[String]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .args(args)
        .env_remove("ADAMLAB_DATA_DIR")
        .output()
        .expect("bash runs")
}

#[test]
fn a_closed_full_or_broken_stdout_stops_printing_and_the_run_finishes_its_files() {
    let cases = [
        ("piped into head -1", "set -o pipefail; \"$0\" \"$@\" | head -1"),
        ("closed", "exec \"$0\" \"$@\" >&-"),
        ("on a full disk", "exec \"$0\" \"$@\" >/dev/full"),
        ("stdout and stderr into head -1", "set -o pipefail; \"$0\" \"$@\" 2>&1 | head -1"),
    ];
    for (what, script) in cases {
        let dir = sandbox(&format!("stdout-{}", what.replace(' ', "-")));
        let output = shell(script, &run_args(&dir));
        assert_success(&output);
        assert_same_as_reference(&dir, &format!("stdout {what}"));
    }
}

#[test]
fn a_full_disk_under_the_metrics_stops_the_run_and_keeps_its_weights() {
    let dir = sandbox("dev-full");
    let weights = dir.join("weights.safetensors");
    let output = adamlab(&tiny_run(&["--epochs", "2", "--metrics-out", "/dev/full", "--save", path(&weights)]));
    assert_user_error(&output, &["--metrics-out /dev/full", "No space left", "after step 1", path(&weights)]);
    let bytes = std::fs::read(&weights).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert!(header.get("fc2.bias").is_some(), "{header}");
    // Without --save the weights go to a rescue file, named in the message.
    let output = command(&tiny_run(&["--epochs", "1", "--metrics-out", "/dev/full"]))
        .current_dir(&dir)
        .output()
        .unwrap();
    let rescue = format!("adamlab-rescue-{}.safetensors", pid_of_rescue(&stderr(&output)));
    assert_user_error(&output, &["rescue file", &rescue]);
    assert!(dir.join(&rescue).is_file());
    // --save onto a device is refused before training, and the device is left a device.
    let output = adamlab(&tiny_run(&["--epochs", "1", "--save", "/dev/full"]));
    assert_user_error(&output, &["--save /dev/full", "not a regular file"]);
    assert!(output.stdout.is_empty(), "trained before refusing: {:?}", output.stdout);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());
}

/// The pid in `adamlab-rescue-PID.safetensors` within `message`.
fn pid_of_rescue(message: &str) -> String {
    let at = message.find("adamlab-rescue-").unwrap_or_else(|| panic!("no rescue file in: {message}"));
    message[at + "adamlab-rescue-".len()..].chars().take_while(char::is_ascii_digit).collect()
}

#[test]
fn outputs_that_cannot_be_written_are_refused_before_training() {
    let dir = sandbox("outputs");
    std::fs::create_dir_all(dir.join("a-directory")).unwrap();
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (strings(&["--save", path(&dir.join("missing/w.safetensors"))]), strings(&["--save", "No such file"])),
        (strings(&["--save", path(&dir.join("a-directory"))]), strings(&["--save", "is a directory"])),
        (strings(&["--save", "/proc/w.safetensors"]), strings(&["--save", "/proc/w.safetensors"])),
        (strings(&["--save", path(&dir.join("w".repeat(300)))]), strings(&["--save", "too long"])),
        (
            strings(&["--metrics-out", path(&dir.join("a-directory"))]),
            strings(&["--metrics-out", "is a directory"]),
        ),
        (
            strings(&["--metrics-out", path(&dir.join("missing/m.jsonl"))]),
            strings(&["--metrics-out", "No such file"]),
        ),
    ];
    for (flags, needles) in cases {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let output = adamlab(&tiny_run(&flags));
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_user_error(&output, &needles);
        assert!(output.stdout.is_empty(), "{flags:?}: trained before refusing");
    }
    // Nothing left behind by the checks, beside the targets.
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["a-directory"]);
    assert!(std::fs::read_dir(dir.join("a-directory")).unwrap().next().is_none());
    // A file name of 252 bytes is written (its temporary file has a short name of its own).
    let long = dir.join(format!("{}.st", "w".repeat(249)));
    assert_success(&adamlab(&tiny_run(&["--epochs", "1", "--save", path(&long)])));
    assert!(long.is_file());
    let left = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(left, 2, "temporary files left behind");
}

#[test]
fn a_save_directory_removed_during_training_sends_the_weights_to_a_rescue_file() {
    let dir = sandbox("rescue");
    let target = dir.join("gone");
    std::fs::create_dir_all(&target).unwrap();
    let metrics = dir.join("metrics.jsonl");
    let args = tiny_run(&[
        "--epochs", "2", "--save", path(&target.join("w.safetensors")), "--metrics-out", path(&metrics),
    ]);
    let child = command(&args).current_dir(&dir).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&metrics).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::fs::remove_dir(&target).unwrap();
    let output = child.wait_with_output().unwrap();
    let message = stderr(&output);
    let rescue = dir.join(format!("adamlab-rescue-{}.safetensors", pid_of_rescue(&message)));
    assert_user_error(&output, &["w.safetensors", "rescue file"]);
    // The rescued weights are the run's, complete.
    let reference = dir.join("reference.safetensors");
    assert_success(&adamlab(&tiny_run(&["--epochs", "2", "--save", path(&reference)])));
    assert!(std::fs::read(rescue).unwrap() == std::fs::read(reference).unwrap());
}

#[test]
fn absurd_sizes_are_clamped_or_refused_with_one_line() {
    for batch in ["18446744073709551615", "1000000000000"] {
        let output = adamlab(&with(tiny_run(&["--epochs", "1"]), "--batch-size", batch));
        assert_success(&output);
        let err = stderr(&output);
        assert!(err.contains("each epoch is one batch of 256"), "{err}");
    }
    let refused: Vec<(&str, &str, Vec<&str>)> = vec![
        ("--eps", "1e-320", vec!["eps", "1e-320"]),
        ("--eps", "1e-39", vec!["eps", "1e-39"]),
        ("--limit-test", "0", vec!["--limit-test 0"]),
        ("--limit-train", "0", vec!["--limit-train 0"]),
        ("--epochs", "0", vec!["--epochs 0"]),
        ("--checkpoint-every", "0", vec!["--checkpoint-every"]),
        ("--keep-checkpoints", "0", vec!["--keep-checkpoints"]),
        ("--data-dir", BIN, vec![BIN, "not a directory"]),
    ];
    let unused = sandbox("absurd").join("checkpoints");
    for (flag, value, needles) in refused {
        let args = with(tiny_run(&["--checkpoint-dir", path(&unused)]), flag, value);
        let output = adamlab(&args);
        assert_user_error(&output, &needles);
        assert!(!stderr(&output).contains("dataset-fashion-mnist"), "{}", stderr(&output));
        assert!(output.stdout.is_empty(), "{flag} {value}: trained before refusing");
    }
    assert_user_error(&adamlab(&strings(&["train", "--model", "mlp", "--epochs", "0"])), &["--epochs 0"]);
    // An empty test split, through `train` and `eval`.
    let empty = sandbox("empty-test");
    for file in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        std::fs::copy(Path::new(DATA).join(file), empty.join(file)).unwrap();
    }
    std::fs::write(empty.join("t10k-images-idx3-ubyte"), adamlab_data::idx::encode(&[0, 28, 28], &[])).unwrap();
    std::fs::write(empty.join("t10k-labels-idx1-ubyte"), adamlab_data::idx::encode(&[0], &[])).unwrap();
    let args = strings(&[
        "train", "--backend", "flex", "--limit-train", "256", "--epochs", "1", "--data-dir", path(&empty),
    ]);
    assert_user_error(&adamlab(&args), &["test set is empty"]);
    let weights = empty.join("w.safetensors");
    std::fs::write(&weights, mlp_weights("F32")).unwrap();
    let eval = ["eval", "--backend", "flex", "--init", path(&weights), "--data-dir", path(&empty)];
    let output = adamlab(&strings(&eval));
    assert_user_error(&output, &["no images"]);
    // clap's missing arguments are named.
    assert_user_error(&adamlab(&strings(&["eval"])), &["--init"]);
    assert_user_error(&adamlab(&strings(&["train", "--resume"])), &["--checkpoint-dir"]);
}

/// Writes are flushed line by line: a run killed mid-epoch has its steps so far in the metrics.
#[test]
fn a_killed_run_has_every_step_it_reported_in_the_metrics() {
    let dir = sandbox("flushed");
    let metrics = dir.join("metrics.jsonl");
    let mut child = command(&tiny_run(&["--epochs", "2", "--metrics-out", path(&metrics)]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&metrics).unwrap_or_default().lines().count() < 3 {
        assert!(Instant::now() < deadline, "the run wrote no metrics");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let text = metrics_without_timing(&metrics);
    let steps: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert!(steps.len() >= 3, "{text}");
    assert_eq!(steps[..3], [1, 2, 3], "{text}");
}

/// The loop's extras on the tiny run: 2 batches a step (4 steps an epoch), a weight EMA, Lookahead
/// every 3 steps and the non-finite policy; a checkpoint every step.
fn extras_args(dir: &Path) -> Vec<String> {
    tiny_run(&[
        "--epochs", "2", "--accumulate", "2", "--ema", "0.9", "--lookahead", "3", "--skip-nonfinite",
        "--checkpoint-every", "1", "--keep-checkpoints", "100", "--checkpoint-dir", path(&dir.join("checkpoints")),
        "--save", path(&dir.join("weights.safetensors")), "--metrics-out", path(&dir.join("metrics.jsonl")),
    ])
}

#[test]
fn kill_9_during_a_run_with_ema_lookahead_and_accumulation_then_resume_continues_byte_for_byte() {
    let reference = sandbox("extras-reference");
    let started = Instant::now();
    assert_success(&adamlab(&extras_args(&reference)));
    let span = (started.elapsed().as_secs_f64() * 1000.0) as u64;
    let weights = std::fs::read(reference.join("weights.safetensors")).unwrap();
    let metrics = metrics_without_timing(&reference.join("metrics.jsonl"));
    for seed in 1..=3u64 {
        let mut rng = SplitMix(200 + seed);
        let dir = sandbox(&format!("extras-kill-{seed}"));
        let mut child = command(&extras_args(&dir)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let delay = span / 5 + rng.below(span * 3 / 5);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        println!("seed {seed}: killed after {delay} ms: {status}");
        let mut args = extras_args(&dir);
        if dir.join("checkpoints/latest").exists() {
            args.push("--resume".into());
        }
        assert_success(&adamlab(&args));
        assert!(std::fs::read(dir.join("weights.safetensors")).unwrap() == weights, "seed {seed}: --save differs");
        assert_eq!(metrics_without_timing(&dir.join("metrics.jsonl")), metrics, "seed {seed}: metrics differ");
    }
}
