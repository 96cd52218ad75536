//! The properties every optimizer of the registry must have (`adamlab_verify::suite`): one table
//! over the registry, and over every fixture spec as well as the defaults, so a new optimizer is
//! covered by its registry line alone. Runs on flex (or the first backend compiled in): the
//! properties are the algorithm's, and the replays already cover every backend.

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::optim::{OptimizerSpec, registry};
use adamlab::verify::replay::replay_fixtures;
use adamlab::verify::suite::{PROPERTIES, SPEC_PROPERTIES};

#[test]
fn every_registered_optimizer_resumes_stays_finite_and_descends() {
    let device = device(BackendKind::Flex).or_else(|_| device(compiled()[0])).unwrap();
    let mut failures = Vec::new();
    for entry in registry() {
        for (property, check) in PROPERTIES {
            match check(entry, &device) {
                Ok(()) => println!("{}: {property}: ok", entry.name),
                Err(err) => failures.push(format!("{property}: {err}")),
            }
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

/// Every optimizer at its defaults and at every fixture's spec: save and load resume the same
/// update bit for bit, `maximize` is a step on −g bit for bit, and every keyword's out-of-range
/// values are one-line errors naming the optimizer and the keyword.
#[test]
fn every_registered_optimizer_and_fixture_spec_has_the_spec_properties() {
    let device = device(BackendKind::Flex).or_else(|_| device(compiled()[0])).unwrap();
    let mut specs: Vec<OptimizerSpec> = registry()
        .iter()
        .map(|entry| OptimizerSpec::parse(entry.name).unwrap())
        .collect();
    specs.extend(replay_fixtures().iter().map(|f| OptimizerSpec::parse(&f.spec).unwrap()));
    let mut failures = Vec::new();
    for spec in &specs {
        for (property, check) in SPEC_PROPERTIES {
            if let Err(err) = check(spec, &device) {
                failures.push(format!("{property}: {err}"));
            }
        }
    }
    println!("{} specs × {} properties", specs.len(), SPEC_PROPERTIES.len());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
