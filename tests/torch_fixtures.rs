//! adamlab's Adam against PyTorch, on every backend compiled in.
//!
//! Fixtures: `fixtures/torch/`, written by `tools/reference/generate.py` (torch 2.15.0); the
//! tolerances and their reasons are in `adamlab_verify::torch`.

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::verify::CheckReport;
use adamlab::verify::torch::{
    REPLAY_FIXTURES, check_cnn_batch, check_mlp_article, replay_all, replay_fixture,
};

/// Runs `check` on every compiled backend and fails listing every failing case.
fn on_every_backend(check: impl Fn(&burn::tensor::Device) -> Vec<CheckReport>) {
    let mut failures = Vec::new();
    for backend in compiled() {
        let device = device(backend).unwrap_or_else(|err| panic!("{err}"));
        for report in check(&device) {
            println!("{backend}/{report}");
            if !report.passed() {
                failures.push(format!("{backend}/{report}"));
            }
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn adam_replays_every_torch_fixture_for_200_steps_on_every_backend() {
    on_every_backend(replay_all);
}

#[test]
fn the_article_mlp_follows_torchs_100_epochs_on_every_backend() {
    on_every_backend(|device| vec![check_mlp_article(device)]);
}

#[test]
fn the_article_cnn_follows_torchs_losses_from_torchs_weights_on_every_backend() {
    on_every_backend(|device| check_cnn_batch(device).to_vec());
}

#[test]
fn every_fixture_file_is_replayed_and_records_its_generator() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/torch/replay");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().replace(".json", ""))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = REPLAY_FIXTURES.iter().map(|(name, _)| name.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for name in &listed {
        let fixture = replay_fixture(name).unwrap();
        assert_eq!(&fixture.case, name);
        assert_eq!(fixture.generator, "tools/reference/generate.py");
        assert!(fixture.torch_version.starts_with("2."), "{}", fixture.torch_version);
        assert!(fixture.steps.len() >= 200, "{name}: {} steps", fixture.steps.len());
        let ranks: Vec<usize> = fixture.shapes.iter().map(Vec::len).collect();
        assert_eq!(ranks, [1, 2, 4], "{name}");
        assert!(fixture.optimizer.starts_with("torch.optim."));
    }
}

/// The replay must be sensitive: the same fixtures through an Adam whose ε sits inside the
/// square root's bias correction (burn's placement) or with another β₂ must fail, naming the
/// case and the step.
#[test]
fn a_changed_constant_fails_the_replay_with_case_step_and_deviation() {
    let device = device(BackendKind::Flex).or_else(|_| device(compiled()[0])).unwrap();
    let fixture = replay_fixture("tiny-gradients").unwrap();
    let wrong = fixture
        .hyper_parameters
        .adam_config()
        .with_eps(fixture.hyper_parameters.eps * 1.5)
        .build()
        .unwrap();
    let report = adamlab::verify::torch::replay(&wrong, &fixture, &device);
    assert!(!report.passed(), "{report}");
    let message = report.to_string();
    assert!(message.contains("torch-replay/tiny-gradients"), "{message}");
    assert!(message.contains("first at step 1,"), "{message}");

    let fixture = replay_fixture("default").unwrap();
    let wrong = fixture
        .hyper_parameters
        .adam_config()
        .with_beta2(0.99)
        .build()
        .unwrap();
    assert!(!adamlab::verify::torch::replay(&wrong, &fixture, &device).passed());
}
