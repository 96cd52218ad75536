//! burn's built-ins fed torch's gradients: on every replay fixture that a burn optimizer can run
//! with the same settings, burn's parameters equal the reference's at the parity tolerance,
//! except on the fixtures `BURN_REPLAY_DIFFERENCES` lists, which must still differ.
//!
//! Every such fixture runs on ndarray and flex; on wgpu (llvmpipe in CI, where the 70 replays take
//! minutes) each optimizer's `default` case runs, so burn's kernels there are covered once per
//! algorithm. `adamlab verify --backend wgpu` runs them all.

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::verify::parity::{BURN_REPLAY_DIFFERENCES, burn_replay, burn_replay_difference, difference_covers};
use adamlab::verify::replay::replay_fixtures;

#[test]
fn burns_built_ins_agree_with_torch_on_its_replays_except_where_documented() {
    let mut problems = Vec::new();
    let fixtures = replay_fixtures();
    for backend in compiled() {
        let device = device(backend).unwrap_or_else(|err| panic!("{err}"));
        let replays: Vec<_> = fixtures
            .iter()
            .filter(|f| {
                backend != BackendKind::Wgpu || f.case.ends_with("/default")
            })
            .filter_map(|f| burn_replay(f, &device))
            .collect();
        for optimizer in ["adam", "adamw", "sgd", "adagrad", "rmsprop", "lion", "adafactor", "muon"] {
            assert!(
                replays.iter().any(|r| r.fixture.starts_with(&format!("{optimizer}/"))),
                "{backend}: no fixture of {optimizer} runs on burn's built-in"
            );
        }
        for replay in &replays {
            println!("{backend}/{} [{}]", replay.report, replay.spec);
            match (burn_replay_difference(&replay.fixture), replay.report.passed()) {
                (None, false) => problems.push(format!("{backend}: {}", replay.report)),
                (Some(_), true) => problems.push(format!(
                    "{backend}: {} is listed as differing but agrees: {}",
                    replay.fixture, replay.report
                )),
                _ => {}
            }
        }
        if backend == BackendKind::Wgpu {
            continue;
        }
        for (pattern, _) in BURN_REPLAY_DIFFERENCES {
            assert!(
                replays.iter().any(|r| difference_covers(pattern, &r.fixture)),
                "{backend}: the documented difference {pattern} matches no fixture burn runs"
            );
        }
    }
    assert!(problems.is_empty(), "burn replays:\n{}", problems.join("\n"));
}
