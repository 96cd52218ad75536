//! The training controls from the command line (issue 8): `--lr-schedule`, `--clip-grad-norm`
//! (`--clip-norm-type`), `--clip-grad-value` and `--no-decay-bias` on `adamlab train`, and the
//! loop's extras (`--accumulate`, `--ema`, `--skip-nonfinite`).
//!
//! - the article's MLP with a schedule and clipping against torch's losses and learning rates
//!   (`fixtures/torch/controls/mlp-*.json`, written by `tools/reference/generate.py controls`
//!   from `tools/reference/controls.py`);
//! - a tiny CNN run with every control, resumed mid-schedule from epoch-end and mid-epoch
//!   checkpoints and after a real stop: `--save` and the metrics byte-identical to the
//!   uninterrupted run's, each step's journal lr the schedule's;
//! - bad specs and values, and runs longer than a OneCycleLR: one line, exit code 2.
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

use adamlab_optim::schedule::ScheduleSpec;
use burn::optim::lr_scheduler::LrScheduler;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

mod common;
use common::*;

/// What the MLP fixtures hold that the command line needs.
#[derive(Debug)]
struct MlpFixture {
    torch_version: String,
    optimizer: String,
    schedule: Option<String>,
    /// `max_norm` and `norm_type`, or `clip_value`.
    clip: Option<BTreeMap<String, f64>>,
    groups: usize,
    initial: BTreeMap<String, Vec<f32>>,
    losses: Vec<f32>,
    /// The learning rate of each group at each epoch's step.
    lrs: Vec<Vec<f64>>,
}

fn fixture(name: &str) -> MlpFixture {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/torch/controls")
        .join(format!("mlp-{name}.json"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let floats = |v: &Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let numbers = |v: &Value| -> BTreeMap<String, f64> {
        v.as_object().unwrap().iter().map(|(k, x)| (k.clone(), x.as_f64().unwrap())).collect()
    };
    let f32s = |v: &Value| -> Vec<f32> { floats(v).into_iter().map(|x| x as f32).collect() };
    MlpFixture {
        torch_version: text(&json["torch_version"]),
        optimizer: text(&json["optimizer"]),
        schedule: json["schedule"].as_str().map(str::to_string),
        clip: (!json["clip"].is_null()).then(|| numbers(&json["clip"])),
        groups: json["groups"].as_array().unwrap().len(),
        initial: json["initial"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), f32s(v))).collect(),
        losses: f32s(&json["losses"]),
        lrs: json["lrs"].as_array().unwrap().iter().map(floats).collect(),
    }
}

/// The article's MLP (`fc.weight` `[1, 2]`, `fc.bias` `[1]`) as float32 safetensors.
fn mlp_safetensors(initial: &BTreeMap<String, Vec<f32>>) -> Vec<u8> {
    let weight: Vec<u8> = initial["fc.weight"].iter().flat_map(|x| x.to_le_bytes()).collect();
    let bias: Vec<u8> = initial["fc.bias"].iter().flat_map(|x| x.to_le_bytes()).collect();
    let header = serde_json::json!({
        "fc.weight": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, weight.len()]},
        "fc.bias": {"dtype": "F32", "shape": [1], "data_offsets": [weight.len(), weight.len() + bias.len()]},
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

/// The step lines of a metrics journal: `(loss, lr)` in order.
fn step_lines(file: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line.get("loss").is_some())
        .map(|line| (line["loss"].as_f64().unwrap(), line["lr"].as_f64().unwrap()))
        .collect()
}

/// Losses: atol 1e-6 + rtol 1e-4, the bound of the issue and of the library's check of the same
/// fixtures (`adamlab_verify::controls::MLP_CONTROLS_TOLERANCE`).
const LOSS_ATOL: f64 = 1e-6;
const LOSS_RTOL: f64 = 1e-4;
/// Learning rates: rtol 1e-7, the bound for schedules. The journal carries the f64 the
/// step used.
const LR_RTOL: f64 = 1e-7;

#[test]
fn the_mlp_with_schedules_and_clipping_from_the_command_line_matches_torch_for_100_epochs() {
    let dir = sandbox("controls-mlp");
    // Every fixture the command line can express (the two-group one gives its bias group its own
    // lr, which no flag does); onecycle-sgd has a schedule and --clip-grad-norm together.
    for name in ["onecycle-sgd", "warmup-cosine", "clip-norm", "clip-value-sgd"] {
        let fixture = fixture(name);
        assert_eq!(fixture.groups, 0, "{name}");
        let init = dir.join(format!("{name}.safetensors"));
        std::fs::write(&init, mlp_safetensors(&fixture.initial)).unwrap();
        let metrics = dir.join(format!("{name}.jsonl"));
        let mut args = strings(&[
            "train", "--model", "mlp", "--backend", "flex", "--epochs", "100", "--optimizer",
            &fixture.optimizer, "--init", path(&init), "--metrics-out", path(&metrics),
        ]);
        if let Some(schedule) = &fixture.schedule {
            args.extend(strings(&["--lr-schedule", schedule]));
        }
        match &fixture.clip {
            Some(clip) if clip.contains_key("max_norm") => args.extend(strings(&[
                "--clip-grad-norm", &clip["max_norm"].to_string(),
                "--clip-norm-type", &clip["norm_type"].to_string(),
            ])),
            Some(clip) => args.extend(strings(&["--clip-grad-value", &clip["clip_value"].to_string()])),
            None => {}
        }
        let output = adamlab(&args);
        assert_success(&output);
        let steps = step_lines(&metrics);
        assert_eq!(steps.len(), 100, "{name}");
        let (mut loss_dev, mut lr_dev) = (0f64, 0f64);
        for (epoch, ((loss, lr), (torch_loss, torch_lrs))) in
            steps.iter().zip(fixture.losses.iter().zip(&fixture.lrs)).enumerate()
        {
            let torch_loss = f64::from(*torch_loss);
            let deviation = (loss - torch_loss).abs();
            assert!(
                deviation <= LOSS_ATOL + LOSS_RTOL * torch_loss.abs(),
                "{name}, epoch {}: loss {loss}, torch {torch_loss}",
                epoch + 1
            );
            let torch_lr = torch_lrs[0];
            assert!(
                (lr - torch_lr).abs() <= LR_RTOL * torch_lr.abs(),
                "{name}, epoch {}: lr {lr}, torch {torch_lr}",
                epoch + 1
            );
            loss_dev = loss_dev.max(deviation);
            lr_dev = lr_dev.max((lr - torch_lr).abs() / torch_lr.abs());
        }
        println!(
            "{name} ({}, torch {}): max |loss - torch| {loss_dev:.3e}, max lr relative deviation {lr_dev:.3e}",
            args[7..].join(" "),
            fixture.torch_version
        );
        // The article's ten lines on stdout carry the same losses.
        let stdout = String::from_utf8(output.stdout).unwrap();
        let printed: Vec<String> = stdout.lines().map(|l| l.rsplit(' ').next().unwrap().to_string()).collect();
        let expected: Vec<String> = (1..=10).map(|i| format!("{:.4}", steps[10 * i - 1].0 as f32)).collect();
        assert_eq!(printed, expected, "{name}: {stdout}");
    }
}

/// Every control at once on the tiny CNN run: AdamW without decay on the biases, a warm-up into
/// a cosine, clipping by the global norm; two epochs of 8 steps, a checkpoint every 3 steps.
const SCHEDULE: &str = "sequential(linear(start_factor=0.1, total_iters=4), cosine(t_max=12))";
const LR: f64 = 1e-3;

fn controlled_run(dir: &Path, epochs: &str) -> Vec<String> {
    tiny_run(&[
        "--epochs", epochs, "--optimizer", "adamw(weight_decay=0.1)", "--no-decay-bias", "--lr-schedule",
        SCHEDULE, "--clip-grad-norm", "0.5", "--checkpoint-every", "3", "--keep-checkpoints", "100",
        "--checkpoint-dir", path(&dir.join("checkpoints")), "--save", path(&dir.join("weights.safetensors")),
        "--metrics-out", path(&dir.join("metrics.jsonl")),
    ])
}

fn resume(mut args: Vec<String>) -> Vec<String> {
    args.push("--resume".into());
    args
}

#[test]
fn a_cnn_run_with_controls_resumed_mid_schedule_equals_the_uninterrupted_run() {
    let reference = sandbox("controls-reference");
    assert_success(&adamlab(&controlled_run(&reference, "2")));
    let weights = std::fs::read(reference.join("weights.safetensors")).unwrap();
    let metrics = metrics_without_timing(&reference.join("metrics.jsonl"));
    // Each step's journal lr is the schedule's for that step, from the optimizer's lr.
    let mut schedule = ScheduleSpec::parse(SCHEDULE).unwrap().build(LR).unwrap();
    let expected: Vec<f64> = (0..2 * STEPS_PER_EPOCH).map(|_| LrScheduler::step(&mut schedule)).collect();
    let lrs: Vec<f64> = step_lines(&reference.join("metrics.jsonl")).iter().map(|(_, lr)| *lr).collect();
    assert_eq!(lrs.len(), expected.len());
    for (step, (lr, expected)) in lrs.iter().zip(&expected).enumerate() {
        // Exact but for serde_json's default float parsing, which may miss the last bit.
        let tolerance = 2.0 * f64::EPSILON * expected.abs();
        assert!((lr - expected).abs() <= tolerance, "step {}: lr {lr}, schedule {expected}", step + 1);
    }
    assert!(lrs[0] < lrs[4] && lrs[15] < lrs[4], "warm-up then cosine: {lrs:?}");

    let same_as_reference = |dir: &Path, what: &str| {
        let resumed = std::fs::read(dir.join("weights.safetensors")).unwrap();
        assert!(resumed == weights, "{what}: --save differs from the uninterrupted run's");
        assert_eq!(metrics_without_timing(&dir.join("metrics.jsonl")), metrics, "{what}: metrics differ");
    };
    // A run stopped after its first epoch, then resumed to the second.
    let stopped = sandbox("controls-stopped");
    assert_success(&adamlab(&controlled_run(&stopped, "1")));
    assert_success(&adamlab(&resume(controlled_run(&stopped, "2"))));
    same_as_reference(&stopped, "stopped after epoch 1, resumed");
    // Resumed from checkpoints inside the warm-up (step 3), inside the cosine in both epochs
    // (steps 6 and 12) and at the end of an epoch (step 8); the metrics the finished run wrote
    // beyond the checkpoint are cut back by the resume.
    for name in ["epoch-0001-batch-000003", "epoch-0001-batch-000006", "epoch-0001", "epoch-0002-batch-000004"] {
        let dir = sandbox(&format!("controls-resume-{name}"));
        copy_dir(&reference.join("checkpoints"), &dir.join("checkpoints"));
        std::fs::copy(reference.join("metrics.jsonl"), dir.join("metrics.jsonl")).unwrap();
        std::fs::write(dir.join("checkpoints/latest"), name).unwrap();
        assert_success(&adamlab(&resume(controlled_run(&dir, "2"))));
        same_as_reference(&dir, &format!("resumed from {name}"));
    }
    // A resume with other controls is refused, naming them.
    let checkpoints = reference.join("checkpoints");
    std::fs::write(checkpoints.join("latest"), "epoch-0001").unwrap();
    let other = |flag: &str, value: &str| with(resume(controlled_run(&reference, "2")), flag, value);
    assert_user_error(
        &adamlab(&other("--lr-schedule", "cosine(t_max=16)")),
        &["training controls", "this run has group no-decay-bias: weight_decay=0.0; schedule cosine(t_max=16", "resume with the same settings"],
    );
    assert_user_error(&adamlab(&other("--clip-grad-norm", "1")), &["training controls", "clip_grad_norm 1 (2-norm)"]);
    let mut without_groups = resume(controlled_run(&reference, "2"));
    without_groups.retain(|a| a != "--no-decay-bias");
    assert_user_error(&adamlab(&without_groups), &["training controls", "group no-decay-bias"]);
    // The refusals changed nothing: the checkpoint still resumes to the reference's weights.
    assert_success(&adamlab(&resume(controlled_run(&reference, "2"))));
    assert!(std::fs::read(reference.join("weights.safetensors")).unwrap() == weights);
}

#[test]
fn bad_control_specs_and_runs_longer_than_a_onecycle_are_one_line_errors() {
    let mlp = |extra: &[&str]| {
        let mut args = strings(&["train", "--model", "mlp", "--backend", "flex"]);
        args.extend(strings(extra));
        adamlab(&args)
    };
    let cases: &[(&[&str], &[&str])] = &[
        (&["--lr-schedule", "nosuch"], &["unknown schedule `nosuch`", "cosine", "onecycle"]),
        (&["--lr-schedule", "cosine"], &["`t_max` is required"]),
        (&["--lr-schedule", "cosine(t_max=10"], &["cannot parse"]),
        (&["--lr-schedule", "step(step_size=3, momentum=1)"], &["no keyword `momentum`", "gamma"]),
        (&["--lr-schedule", "linear(start_factor=0)"], &["invalid start_factor"]),
        (&["--clip-grad-norm=-1"], &["--clip-grad-norm -1", "≥ 0"]),
        (&["--clip-grad-norm", "inf"], &["--clip-grad-norm inf", "finite"]),
        (&["--clip-grad-norm", "1", "--clip-norm-type", "0"], &["--clip-norm-type 0", "inf"]),
        (&["--clip-grad-norm", "1", "--clip-norm-type", "two"], &["--clip-norm-type"]),
        (&["--clip-norm-type", "2"], &["--clip-grad-norm"]),
        (&["--clip-grad-norm", "1", "--clip-grad-value", "1"], &["--clip-grad-value", "cannot be used with"]),
        (&["--clip-grad-value=-0.5"], &["--clip-grad-value -0.5"]),
        (&["--ema", "1.5"], &["--ema 1.5", "[0, 1]"]),
        (&["--ema", "-0.5"], &["--ema -0.5", "[0, 1]"]),
        (&["--ema", "nan"], &["--ema NaN", "[0, 1]"]),
        (&["--accumulate", "0"], &["--accumulate 0", "at least 1"]),
        (&["--lookahead", "0"], &["--lookahead 0", "K ≥ 1"]),
        (&["--lookahead", "5", "--lookahead-alpha", "1.5"], &["--lookahead-alpha 1.5", "[0, 1]"]),
        (&["--lookahead-alpha", "0.5"], &["--lookahead"]),
        (&["--optimizer", "rprop", "--no-decay-bias"], &["--no-decay-bias", "weight_decay"]),
        (
            &["--optimizer", "adagrad", "--lr-schedule", "onecycle(max_lr=0.1, total_steps=100)"],
            &["adagrad", "cycle_momentum=false"],
        ),
        // 100 epochs of one step each.
        (
            &["--lr-schedule", "onecycle(max_lr=0.1, total_steps=99)"],
            &["ends after 99 optimizer steps", "this run takes 100", "total_steps=100"],
        ),
        (
            &["--lr-schedule", "sequential(linear(total_iters=10), onecycle(max_lr=0.1, total_steps=50))"],
            &["ends after 60 optimizer steps", "this run takes 100"],
        ),
    ];
    for (extra, needles) in cases {
        assert_user_error(&mlp(extra), needles);
    }
    // A run exactly as long as the OneCycleLR is fine; inf is a norm type.
    assert_success(&mlp(&["--epochs", "99", "--lr-schedule", "onecycle(max_lr=0.1, total_steps=99)"]));
    assert_success(&mlp(&["--clip-grad-norm", "0.5", "--clip-norm-type", "inf"]));
    // The CNN's steps are epochs × batches: 2 × 8 here, refused before any step is taken.
    let dir = sandbox("controls-onecycle-cnn");
    let metrics = dir.join("metrics.jsonl");
    let output = adamlab(&tiny_run(&[
        "--epochs", "2", "--lr-schedule", "onecycle(max_lr=0.01, total_steps=15)", "--metrics-out", path(&metrics),
    ]));
    assert_user_error(&output, &["ends after 15 optimizer steps", "this run takes 16", "total_steps=16"]);
    assert_eq!(std::fs::read_to_string(&metrics).unwrap(), "");
}

/// The loop's extras on the tiny CNN: batches of 32 accumulated 2 per step (4 steps an epoch), a
/// weight EMA and the non-finite policy; a checkpoint every 3 steps.
fn extras_run(dir: &Path, ema: &str) -> Vec<String> {
    tiny_run(&[
        "--epochs", "2", "--accumulate", "2", "--ema", ema, "--skip-nonfinite", "--checkpoint-every", "3",
        "--keep-checkpoints", "100", "--checkpoint-dir", path(&dir.join("checkpoints")), "--save",
        path(&dir.join("weights.safetensors")), "--metrics-out", path(&dir.join("metrics.jsonl")),
    ])
}

#[test]
fn a_cnn_run_with_accumulation_and_an_ema_resumes_byte_for_byte_and_refuses_other_extras() {
    let reference = sandbox("extras-reference");
    assert_success(&adamlab(&extras_run(&reference, "0.9")));
    let weights = std::fs::read(reference.join("weights.safetensors")).unwrap();
    let metrics = metrics_without_timing(&reference.join("metrics.jsonl"));
    assert_eq!(step_lines(&reference.join("metrics.jsonl")).len(), 2 * STEPS_PER_EPOCH / 2);
    // The saved weights are the EMA's: a run without it saves other weights.
    let plain = sandbox("extras-plain");
    let mut args = extras_run(&plain, "0.9");
    let at = args.iter().position(|a| a == "--ema").unwrap();
    args.drain(at..at + 2);
    assert_success(&adamlab(&args));
    assert!(std::fs::read(plain.join("weights.safetensors")).unwrap() != weights, "--ema changed nothing");
    for name in ["epoch-0001-batch-000006", "epoch-0001", "epoch-0002-batch-000004"] {
        let dir = sandbox(&format!("extras-resume-{name}"));
        copy_dir(&reference.join("checkpoints"), &dir.join("checkpoints"));
        std::fs::copy(reference.join("metrics.jsonl"), dir.join("metrics.jsonl")).unwrap();
        std::fs::write(dir.join("checkpoints/latest"), name).unwrap();
        assert_success(&adamlab(&resume(extras_run(&dir, "0.9"))));
        let resumed = std::fs::read(dir.join("weights.safetensors")).unwrap();
        assert!(resumed == weights, "resumed from {name}: --save differs from the uninterrupted run's");
        assert_eq!(metrics_without_timing(&dir.join("metrics.jsonl")), metrics, "resumed from {name}");
    }
    std::fs::write(reference.join("checkpoints/latest"), "epoch-0001").unwrap();
    assert_user_error(&adamlab(&resume(extras_run(&reference, "0.99"))), &["training controls", "ema 0.99"]);
    let other = with(resume(extras_run(&reference, "0.9")), "--accumulate", "4");
    assert_user_error(&adamlab(&other), &["training controls", "accumulate 4"]);
}

#[test]
fn reduce_on_plateau_lowers_the_lr_after_a_stalled_epoch_and_resumes_byte_for_byte() {
    // threshold=0.9: an epoch is "better" only if its test loss falls below a tenth of the best,
    // so every epoch after the first is bad and, with patience=0, halves the lr.
    let run = |dir: &Path| {
        tiny_run(&[
            "--epochs", "3", "--lr-schedule", "reduce-on-plateau(patience=0, threshold=0.9, factor=0.5)",
            "--keep-checkpoints", "100", "--checkpoint-dir", path(&dir.join("checkpoints")), "--save",
            path(&dir.join("weights.safetensors")), "--metrics-out", path(&dir.join("metrics.jsonl")),
        ])
    };
    let reference = sandbox("plateau-reference");
    assert_success(&adamlab(&run(&reference)));
    let lrs: Vec<f64> = step_lines(&reference.join("metrics.jsonl")).iter().map(|(_, lr)| *lr).collect();
    let per_epoch: Vec<f64> = lrs.chunks(STEPS_PER_EPOCH).map(|c| c[0]).collect();
    assert_eq!(per_epoch, [LR, LR, LR / 2.0], "{lrs:?}");
    assert!(lrs.chunks(STEPS_PER_EPOCH).all(|c| c.iter().all(|lr| *lr == c[0])), "constant within an epoch");
    let weights = std::fs::read(reference.join("weights.safetensors")).unwrap();
    let metrics = metrics_without_timing(&reference.join("metrics.jsonl"));
    for name in ["epoch-0001", "epoch-0002"] {
        let dir = sandbox(&format!("plateau-resume-{name}"));
        copy_dir(&reference.join("checkpoints"), &dir.join("checkpoints"));
        std::fs::copy(reference.join("metrics.jsonl"), dir.join("metrics.jsonl")).unwrap();
        std::fs::write(dir.join("checkpoints/latest"), name).unwrap();
        assert_success(&adamlab(&resume(run(&dir))));
        assert!(std::fs::read(dir.join("weights.safetensors")).unwrap() == weights, "resumed from {name}");
        assert_eq!(metrics_without_timing(&dir.join("metrics.jsonl")), metrics, "resumed from {name}");
    }
}

/// The float32 tensors of a safetensors file, by name.
fn read_safetensors(file: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(file).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let data = &bytes[8 + len..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, tensor)| {
            assert_eq!(tensor["dtype"], "F32", "{name}");
            let offsets = &tensor["data_offsets"];
            let (start, end) = (offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize);
            let values = data[start..end].chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name.clone(), values)
        })
        .collect()
}

#[test]
fn no_decay_bias_exempts_the_bias_and_only_the_bias_from_weight_decay() {
    let dir = sandbox("controls-no-decay-bias");
    let init = dir.join("init.safetensors");
    let initial = BTreeMap::from([("fc.weight".to_string(), vec![0.5, -0.25]), ("fc.bias".to_string(), vec![0.125])]);
    std::fs::write(&init, mlp_safetensors(&initial)).unwrap();
    // One SGD step with L2 decay: θ ← θ − lr·(g + λ·θ). Without decay on the bias, it ends
    // lr·λ·b higher, and the weight is the same.
    let (lr, decay) = (0.1f32, 0.5f32);
    let optimizer = format!("sgd(lr={lr}, weight_decay={decay})");
    let trained = |extra: &[&str], name: &str| {
        let save = dir.join(name);
        let mut args = strings(&[
            "train", "--model", "mlp", "--backend", "flex", "--epochs", "1", "--optimizer", &optimizer, "--init",
            path(&init), "--save", path(&save),
        ]);
        args.extend(strings(extra));
        assert_success(&adamlab(&args));
        read_safetensors(&save)
    };
    let decayed = trained(&[], "decayed.safetensors");
    let exempt = trained(&["--no-decay-bias"], "exempt.safetensors");
    assert_eq!(exempt["fc.weight"], decayed["fc.weight"]);
    let difference = exempt["fc.bias"][0] - decayed["fc.bias"][0];
    let expected = lr * decay * initial["fc.bias"][0];
    assert!((difference - expected).abs() <= 1e-7, "bias difference {difference}, expected {expected}");
}
