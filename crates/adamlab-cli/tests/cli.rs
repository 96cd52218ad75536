//! The `adamlab` binary as a user meets it: real runs on small slices of Fashion-MNIST, and every
//! mistake a user can make ending in one clear line with exit code 2.
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`).

mod common;

use common::listed_optimizers;
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

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A user error: exit code 2, exactly one line on stderr, containing every `needle`, no panic.
fn assert_user_error(output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adamlab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small CNN run on flex: 256 training and 200 test images from `data`, batch 64.
fn small_cnn_run_on<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train", "--model", "cnn", "--backend", "flex", "--limit-train", "256", "--limit-test",
        "200", "--batch-size", "64", "--data-dir", data,
    ];
    args.extend_from_slice(extra);
    args
}

/// [`small_cnn_run_on`] the installed Fashion-MNIST.
fn small_cnn_run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    small_cnn_run_on(DATA, extra)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_missing_data_directory_names_the_debian_package_and_the_flag() {
    let output = adamlab(&["train", "--backend", "flex", "--data-dir", "/nonexistent/fmnist"]);
    assert_user_error(&output, &["/nonexistent/fmnist", "dataset-fashion-mnist", "--data-dir"]);
}

#[test]
fn corrupt_idx_files_are_named_with_what_is_wrong_and_never_panic() {
    let source = Path::new(DATA);
    let images = std::fs::read(source.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let labels = std::fs::read(source.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let raw_labels = adamlab_data::idx::encode(&[3], &[1, 2, 3]);
    let bad_label = adamlab_data::idx::encode(&[10_000], &[12; 10_000]);
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
        ("truncated-gzip", images[..images.len() / 2].to_vec(), labels.clone(), "t10k-images"),
        ("not-idx", b"hello world, not an idx file".to_vec(), labels.clone(), "bad magic"),
        ("empty", Vec::new(), labels.clone(), "truncated"),
        ("count-mismatch", images.clone(), raw_labels, "holds 3 labels"),
        ("label-out-of-range", images.clone(), bad_label, "label 12"),
        (
            "wrong-dims",
            adamlab_data::idx::encode(&[2, 27, 29], &[0; 2 * 27 * 29]),
            labels.clone(),
            "not [count, 28, 28]",
        ),
    ];
    for (name, images, labels, needle) in cases {
        let dir = temp_dir(&format!("corrupt-{name}"));
        // A valid training split, so the test split is the one that fails.
        for file in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
            std::fs::copy(source.join(file), dir.join(file)).unwrap();
        }
        let (images_name, labels_name) = if labels.starts_with(&[0x1f, 0x8b]) {
            ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz")
        } else {
            ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        };
        std::fs::write(dir.join(images_name), images).unwrap();
        std::fs::write(dir.join(labels_name), labels).unwrap();
        let output = adamlab(&small_cnn_run_on(path(&dir), &[]));
        assert_user_error(&output, &[needle]);
    }
}

#[test]
fn init_with_a_missing_or_misshaped_tensor_names_it_and_both_shapes() {
    let dir = temp_dir("init");
    // Train the MLP briefly to get a valid PyTorch-form file, then damage it.
    let good = dir.join("mlp.safetensors");
    let output = adamlab(&[
        "train", "--model", "mlp", "--backend", "flex", "--epochs", "1", "--save", path(&good),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // The MLP's weights into the CNN: the convolutions' tensors are missing.
    let output = adamlab(&small_cnn_run(&["--epochs", "1", "--init", path(&good)]));
    assert_user_error(&output, &["tensor `conv1.", "is missing"]);
    // A mis-shaped fc.weight names the tensor and both shapes, in PyTorch's layout ([out, in]).
    let misshaped = dir.join("misshaped.safetensors");
    std::fs::write(&misshaped, safetensors_with(&[("fc.weight", &[1, 3]), ("fc.bias", &[1])]))
        .unwrap();
    let output = adamlab(&[
        "train", "--model", "mlp", "--backend", "flex", "--init", path(&misshaped),
    ]);
    assert_user_error(&output, &["fc.weight", "has shape [1, 3]", "expects [1, 2]"]);
    let output = adamlab(&["eval", "--init", "/nonexistent.safetensors", "--backend", "flex"]);
    assert_user_error(&output, &["/nonexistent.safetensors"]);
}

/// A safetensors file of f32 zeros with the given names and shapes.
fn safetensors_with(tensors: &[(&str, &[usize])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, shape) in tensors {
        let bytes = 4 * shape.iter().product::<usize>();
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(vec![0u8; offset]);
    out
}

#[test]
fn bad_flags_are_one_line_errors() {
    assert_user_error(&adamlab(&["train", "--model", "mlp", "--lr=-1"]), &["invalid lr -1"]);
    assert_user_error(&adamlab(&["train", "--model", "mlp", "--lr", "fast"]), &["--lr"]);
    assert_user_error(&adamlab(&["train", "--no-such-flag"]), &["--no-such-flag"]);
    assert_user_error(&adamlab(&["train", "--model", "mlp", "--beta1", "1"]), &["invalid betas (1.0, 0.999)"]);
    assert_user_error(&adamlab(&["train", "--model", "mlp", "--eps", "0"]), &["eps"]);
    assert_user_error(
        &adamlab(&["train", "--model", "mlp", "--optimizer", "burn-adam", "--maximize"]),
        &["maximize"],
    );
    // The MLP takes checkpoints since it trains in the generic loop; flags about the CNN's data
    // are refused, not ignored.
    for flag in [&["--limit-train", "8"][..], &["--batch-size", "5"], &["--no-shuffle"]] {
        let mut args = vec!["train", "--model", "mlp"];
        args.extend(flag);
        assert_user_error(&adamlab(&args), &[flag[0], "cnn"]);
    }
    assert_user_error(&adamlab(&["train", "--backend", "cuda"]), &["cuda"]);
}

#[test]
fn bad_optimizer_specs_are_one_line_errors_naming_what_is_valid() {
    let mlp = |spec: &str| adamlab(&["train", "--model", "mlp", "--optimizer", spec]);
    assert_user_error(&mlp("nosuch"), &["unknown optimizer `nosuch`", "sgd", "adamw"]);
    assert_user_error(&mlp("sgd(betas=(0.9, 0.99))"), &["sgd has no keyword `betas`", "it belongs to", "momentum"]);
    assert_user_error(&mlp("sgd(momentum=-1)"), &["invalid momentum -1"]);
    assert_user_error(&mlp("sgd(nesterov=maybe)"), &["invalid nesterov", "true or false"]);
    assert_user_error(&mlp("sgd(momentum=0.9"), &["cannot parse", "at character"]);
    assert_user_error(&mlp("adamw(betas=(0.9, 1.0))"), &["invalid betas"]);
    assert_user_error(
        &adamlab(&["train", "--model", "mlp", "--optimizer", "sgd(lr=0.1)", "--lr", "0.2"]),
        &["given twice"],
    );
    assert_user_error(
        &adamlab(&["train", "--model", "mlp", "--optimizer", "sgd", "--beta1", "0.5"]),
        &["sgd has no keyword `betas`"],
    );
    assert_user_error(&adamlab(&["optimizers", "nosuch"]), &["unknown optimizer"]);
    assert_user_error(&adamlab(&["verify", "--optimizer", "nosuch"]), &["unknown optimizer"]);
}

#[test]
fn optimizers_lists_at_least_15_with_their_keywords_defaults_and_references() {
    let names = listed_optimizers();
    let ours: Vec<&String> = names.iter().filter(|n| !n.starts_with("burn-")).collect();
    assert!(ours.len() >= 15, "{names:?}");
    let output = adamlab(&["optimizers", "adamw"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("reference: torch.optim.AdamW"), "{stdout}");
    assert!(stdout.contains("weight_decay") && stdout.contains("0.01"), "{stdout}");
    assert!(stdout.contains("betas") && stdout.contains("(0.9, 0.999)"), "{stdout}");
}

/// Every optimizer `adamlab optimizers` lists trains the article's MLP from the command line on
/// every backend compiled in: ten finite loss lines, exit 0, the learning rate in the metrics.
#[test]
fn every_listed_optimizer_trains_the_article_mlp_on_every_backend() {
    let dir = temp_dir("every-optimizer");
    let backends = ["ndarray", "flex", "wgpu"];
    for name in listed_optimizers() {
        for backend in backends {
            let metrics = dir.join(format!("{name}-{backend}.jsonl"));
            let output = adamlab(&[
                "train", "--model", "mlp", "--optimizer", &name, "--backend", backend, "--metrics-out",
                path(&metrics),
            ]);
            let err = stderr(&output);
            if output.status.code() == Some(2) && err.contains("--features wgpu") {
                continue; // not compiled in
            }
            assert!(output.status.success(), "{name} on {backend}: {err}");
            let stdout = String::from_utf8(output.stdout).unwrap();
            let losses: Vec<f32> = stdout
                .lines()
                .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(losses.len(), 10, "{name} on {backend}: {stdout}");
            assert!(losses.iter().all(|l| l.is_finite()), "{name} on {backend}: {losses:?}");
            let journal = std::fs::read_to_string(&metrics).unwrap();
            let first: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
            assert_eq!(first["lr"], 0.01, "{name} on {backend}: {first}");
        }
    }
}

#[test]
fn the_mlp_command_is_the_articles_program() {
    let output = adamlab(&["train", "--model", "mlp", "--optimizer", "adam", "--lr", "0.01", "--epochs", "100"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{stdout}");
    let losses: Vec<f32> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let prefix = format!("Epoch [{}/100], Loss: ", 10 * (i + 1));
            line.strip_prefix(&prefix).unwrap_or_else(|| panic!("{line}")).parse().unwrap()
        })
        .collect();
    assert!(losses[9] < losses[0], "{losses:?}");
}

#[test]
fn save_then_eval_reproduces_the_evaluation_and_writes_pytorch_names_and_shapes() {
    let dir = temp_dir("save");
    let weights = dir.join("cnn.safetensors");
    let output = adamlab(&small_cnn_run(&["--epochs", "1", "--save", path(&weights)]));
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let trained = stdout.lines().find(|l| l.contains("test accuracy")).unwrap().to_string();
    let accuracy_of = |line: &str| {
        let at = line.find("test accuracy ").unwrap() + "test accuracy ".len();
        line[at..].split('%').next().unwrap().to_string()
    };
    let loss_of = |line: &str| {
        let at = line.find("test loss ").unwrap() + "test loss ".len();
        line[at..].split(',').next().unwrap().to_string()
    };

    let data = temp_dir("save-data");
    for file in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(Path::new(DATA).join(file), data.join(file)).unwrap();
    }
    // `eval` uses the whole test split: give it the same 200 images the run evaluated on.
    let images = adamlab_data::idx::read(&data.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let labels = adamlab_data::idx::read(&data.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::remove_file(data.join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::write(
        data.join("t10k-images-idx3-ubyte"),
        adamlab_data::idx::encode(&[200, 28, 28], &images.data[..200 * 784]),
    )
    .unwrap();
    std::fs::write(
        data.join("t10k-labels-idx1-ubyte"),
        adamlab_data::idx::encode(&[200], &labels.data[..200]),
    )
    .unwrap();
    let output = adamlab(&["eval", "--init", path(&weights), "--backend", "flex", "--data-dir", path(&data)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let evaluated = String::from_utf8(output.stdout).unwrap();
    assert_eq!(accuracy_of(&evaluated), accuracy_of(&trained), "{trained} / {evaluated}");
    assert_eq!(loss_of(&evaluated), loss_of(&trained), "{trained} / {evaluated}");

    // PyTorch's state_dict names and shapes, read from the safetensors header.
    let bytes = std::fs::read(&weights).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let expected: [(&str, &[u64]); 8] = [
        ("conv1.weight", &[32, 1, 3, 3]),
        ("conv1.bias", &[32]),
        ("conv2.weight", &[64, 32, 3, 3]),
        ("conv2.bias", &[64]),
        ("fc1.weight", &[128, 3136]),
        ("fc1.bias", &[128]),
        ("fc2.weight", &[10, 128]),
        ("fc2.bias", &[10]),
    ];
    for (name, shape) in expected {
        let found: Vec<u64> = header[name]["shape"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} missing from {header}"))
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(found, shape, "{name}");
        assert_eq!(header[name]["dtype"], "F32", "{name}");
    }
    let names = header.as_object().unwrap().keys().filter(|k| *k != "__metadata__").count();
    assert_eq!(names, expected.len(), "{header}");
}

#[test]
fn two_epochs_straight_equal_one_epoch_then_a_resumed_one() {
    let dir = temp_dir("resume");
    let straight = dir.join("straight.safetensors");
    let resumed = dir.join("resumed.safetensors");
    let checkpoints = dir.join("checkpoints");
    let metrics = dir.join("metrics.jsonl");
    let output = adamlab(&small_cnn_run(&["--epochs", "2", "--save", path(&straight)]));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = adamlab(&small_cnn_run(&[
        "--epochs", "1", "--checkpoint-dir", path(&checkpoints), "--metrics-out", path(&metrics),
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    // A kill while writing the next checkpoint leaves a partial directory behind: resume ignores it.
    std::fs::create_dir_all(checkpoints.join("epoch-0002.tmp")).unwrap();
    std::fs::write(checkpoints.join("epoch-0002.tmp/model.bpk"), b"partial").unwrap();
    let output = adamlab(&small_cnn_run(&[
        "--epochs", "2", "--checkpoint-dir", path(&checkpoints), "--resume", "--save",
        path(&resumed), "--metrics-out", path(&metrics),
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        std::fs::read(&straight).unwrap() == std::fs::read(&resumed).unwrap(),
        "resumed weights differ from the uninterrupted run's"
    );
    // Metrics: 4 steps and one epoch line per epoch, the resumed run appending.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = lines
        .iter()
        .filter(|l| l.get("loss").is_some())
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
    let epochs: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("test_accuracy").is_some()).collect();
    assert_eq!(epochs.len(), 2);
    // Resuming with other settings is refused, naming the setting.
    let output = adamlab(&small_cnn_run(&[
        "--epochs", "3", "--checkpoint-dir", path(&checkpoints), "--resume", "--seed", "7",
    ]));
    assert_user_error(&output, &["seed"]);
}

#[test]
fn a_diverging_run_stops_at_the_step_and_keeps_the_last_good_checkpoint() {
    let dir = temp_dir("nan");
    let checkpoints = dir.join("checkpoints");
    // One batch per epoch; lr 1e30 turns the weights to ±1e30 at the first step, so the
    // second step's loss is not finite.
    let output = adamlab(&[
        "train", "--backend", "flex", "--limit-train", "64", "--limit-test", "64", "--data-dir",
        DATA, "--lr", "1e30", "--epochs", "3", "--checkpoint-dir", path(&checkpoints),
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("step 2") && err.contains("epoch 1"), "{err}");
    assert_eq!(std::fs::read_to_string(checkpoints.join("latest")).unwrap(), "epoch-0001");
    assert!(checkpoints.join("epoch-0001/model.bpk").is_file());
}
