//! Every optimizer of the registry against its reference implementation, on every backend
//! compiled in (ndarray, flex, and wgpu with `--features wgpu`).
//!
//! Fixtures: `fixtures/torch/`, written by `tools/reference/generate.py` (torch 2.15.0,
//! lion-pytorch 0.2.5, schedulefree 1.4.1; cases in `tools/reference/cases/<optimizer>.py`); the
//! tolerances and their reasons are in `adamlab_verify::replay` and `adamlab_verify::torch`.
//!
//! `ADAMLAB_OPTIMIZER=sgd` limits the replays and MLP checks to one optimizer.

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::optim::fused::FUSED;
use adamlab::optim::{Kind, OptimizerSpec, Value, registry};
use adamlab::verify::CheckReport;
use adamlab::verify::replay::{REPLAY_FIXTURES, replay_fixtures, replay_with, replays};
use adamlab::verify::torch::{check_cnn_batch, check_mlp_article, check_mlp_fixtures};

fn only() -> Option<String> {
    std::env::var("ADAMLAB_OPTIMIZER").ok()
}

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

/// With the fused step and, for an optimizer that has one, the reference step too.
#[test]
fn every_optimizer_replays_its_reference_fixtures_for_200_steps_on_every_backend() {
    let fixtures = replay_fixtures();
    on_every_backend(|device| {
        fixtures
            .iter()
            .filter(|f| only().is_none_or(|o| f.optimizer == o))
            .flat_map(|f| replays(f, device))
            .collect()
    });
}

#[test]
fn the_article_mlp_follows_the_reference_for_100_epochs_with_every_optimizer_on_every_backend() {
    on_every_backend(|device| {
        let mut reports = check_mlp_fixtures(device, only().as_deref());
        if only().is_none_or(|o| o == "adam") {
            reports.push(check_mlp_article(device));
        }
        reports
    });
}

#[test]
fn the_article_cnn_follows_torchs_losses_from_torchs_weights_on_every_backend() {
    on_every_backend(|device| check_cnn_batch(device).to_vec());
}

/// Every adamlab optimizer of the registry (not burn's built-ins) has replay fixtures and an MLP
/// fixture, and every fixture names an optimizer of the registry and its generator.
#[test]
fn every_optimizer_has_fixtures_and_every_fixture_an_optimizer() {
    let fixtures = replay_fixtures();
    for entry in registry().iter().filter(|e| !e.name.starts_with("burn-")) {
        let cases = fixtures.iter().filter(|f| f.optimizer == entry.name).count();
        assert!(cases > 0, "{} has no replay fixture", entry.name);
        assert!(
            adamlab::verify::replay::MLP_FIXTURES.iter().any(|(n, _)| *n == entry.name)
                || entry.name == "adam",
            "{} has no MLP fixture",
            entry.name
        );
    }
    for fixture in &fixtures {
        assert!(adamlab::optim::lookup(&fixture.optimizer).is_some(), "{}", fixture.case);
        assert_eq!(fixture.generator, "tools/reference/generate.py", "{}", fixture.case);
        assert!(fixture.steps >= 200, "{}: {} steps", fixture.case, fixture.steps);
        assert!(!fixture.reference_version.is_empty(), "{}", fixture.case);
        assert!(fixture.params.iter().all(|p| p.grads.len() == fixture.steps), "{}", fixture.case);
    }
    assert_eq!(fixtures.len(), REPLAY_FIXTURES.len());
}

/// The replays must be sensitive to every hyper-parameter: for each optimizer and each of its
/// keywords, changing that keyword's value (a number by half again, or from 0 to 0.1; a whole
/// number by one; a boolean flipped; a choice to another) must fail at least one of the
/// optimizer's replay cases, naming it. A keyword no case notices is a keyword the fixtures do
/// not test. Run on one backend; a changed constant is a changed constant everywhere.
#[test]
fn a_changed_hyper_parameter_fails_a_replay_of_its_optimizer() {
    let device = device(BackendKind::Flex).or_else(|_| device(compiled()[0])).unwrap();
    let fixtures = replay_fixtures();
    let mut unnoticed = Vec::new();
    for entry in registry().iter().filter(|e| only().is_none_or(|o| e.name == o)) {
        let mine: Vec<_> = fixtures.iter().filter(|f| f.optimizer == entry.name).collect();
        if mine.is_empty() {
            continue;
        }
        // `fused` picks the kernel, not the numbers: the replays run both of its values.
        for param in entry.params.iter().filter(|p| p.name != FUSED.name) {
            let mut tried = false;
            let mut noticed = false;
            for fixture in &mine {
                let spec = OptimizerSpec::parse(&fixture.spec).unwrap();
                let Some(changed) = changed(param.kind, &spec.args().values()[param.name]) else {
                    continue;
                };
                // A changed value outside the range (β = 0.9·1.5) or an incompatible pair is
                // refused by the spec: nothing to replay with it.
                let Ok(wrong) = spec.with(param.name, changed) else { continue };
                tried = true;
                let report = replay_with(&*wrong.build().unwrap(), wrong.lr(), fixture, &device);
                if !report.passed() {
                    assert!(report.to_string().contains(&fixture.case), "{report}");
                    noticed = true;
                    break;
                }
            }
            if tried && !noticed {
                unnoticed.push(format!("{}.{}", entry.name, param.name));
            }
        }
    }
    assert!(unnoticed.is_empty(), "hyper-parameters no replay case notices: {}", unnoticed.join(", "));
}

/// Another value of the same kind, in range where one exists (a number half again as large,
/// else halfway to its upper bound, else halved; 0 becomes 0.1; a whole number grows by one; a
/// boolean flips; a choice becomes another; every element of a tuple changes), or `None` where
/// there is nothing to change.
fn changed(kind: Kind, value: &Value) -> Option<Value> {
    Some(match (kind, value) {
        (Kind::Int { .. }, Value::Number(x)) => Value::Number(x + 1.0),
        (Kind::Float(range), Value::Number(x)) => {
            let upper = if range.max.is_finite() { (x + range.max) / 2.0 } else { x * 1.5 };
            let candidates = if *x == 0.0 { vec![0.1, range.max / 2.0] } else { vec![x * 1.5, upper, x / 2.0] };
            Value::Number(candidates.into_iter().find(|c| range.contains(*c) && c != x)?)
        }
        (_, Value::Bool(b)) => Value::Bool(!b),
        (Kind::Choice(names), Value::Name(n)) => Value::Name(names.iter().find(|c| *c != n)?.to_string()),
        (Kind::Tuple(kinds), Value::Tuple(values)) => Value::Tuple(
            kinds
                .iter()
                .zip(values)
                .map(|(k, v)| changed(*k, v).unwrap_or_else(|| v.clone()))
                .collect(),
        ),
        (Kind::Optional(inner), v) if *v != Value::None => changed(*inner, v)?,
        _ => return None,
    })
}
