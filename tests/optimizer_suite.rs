//! The properties every optimizer of the registry must have (`adamlab_verify::suite`): a table
//! over the registry, so a new optimizer is covered by its registry line alone. Runs on flex (or
//! the first backend compiled in): the properties are the algorithm's, and the replays already
//! cover every backend.

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::optim::registry;
use adamlab::verify::suite::PROPERTIES;

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
