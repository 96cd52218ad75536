//! The properties every optimizer of the registry must have (`adamlab_verify::suite`): one table
//! over the registry, and over every fixture spec as well as the defaults, so a new optimizer is
//! covered by its registry line alone. Runs on flex (or the first backend compiled in): the
//! properties are the algorithm's, and the replays already cover every backend.

use adamlab::backend::{BackendKind, compiled, device};
use adamlab::optim::{OptimizerSpec, registry};
use adamlab::verify::replay::replay_fixtures;
use adamlab::verify::fused::{
    Agreement, FUSED_SPECS, fused_and_reference_resume_each_other, fused_equals_reference,
    fused_falls_back_to_the_reference, has_fused_step, multi_tensor_equals_one_by_one,
};
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

/// Every optimizer with a fused step (the `fused` keyword), at its defaults, at every
/// configuration of `FUSED_SPECS` and at every fixture spec, on every compiled backend: the
/// fused step equals the reference step (bit for bit on flex and ndarray, to f32 rounding on
/// wgpu; see `adamlab_verify::fused`) on random data and edge cases in every layout, each
/// resumes the other's state, and tensors no kernel takes (f64, autodiff) take the reference.
#[test]
fn every_fused_step_equals_its_reference_on_every_backend() {
    let mut specs: Vec<OptimizerSpec> = registry()
        .iter()
        .filter(|entry| has_fused_step(entry))
        .map(|entry| OptimizerSpec::parse(entry.name).unwrap())
        .collect();
    specs.extend(FUSED_SPECS.iter().map(|spec| OptimizerSpec::parse(spec).unwrap()));
    specs.extend(
        replay_fixtures()
            .iter()
            .map(|f| OptimizerSpec::parse(&f.spec).unwrap())
            .filter(|spec| has_fused_step(spec.entry())),
    );
    let mut seen = std::collections::BTreeSet::new();
    specs.retain(|spec| seen.insert(spec.canonical()));
    let mut failures = Vec::new();
    for backend in compiled() {
        let Ok(device) = device(backend) else { continue };
        let agreement = match backend {
            BackendKind::Flex | BackendKind::Ndarray => Agreement::Bits,
            BackendKind::Wgpu | BackendKind::Cuda => Agreement::F32Rounding,
        };
        for spec in &specs {
            let checks = [
                fused_equals_reference(spec, &device, agreement),
                fused_and_reference_resume_each_other(spec, &device, agreement),
                fused_falls_back_to_the_reference(spec, &device),
            ];
            failures.extend(checks.into_iter().filter_map(Result::err).map(|err| format!("{backend}: {err}")));
        }
        println!("{backend}: {} specs compared ({agreement:?})", specs.len());
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

/// The multi-tensor step (`AnyOptimizer::step_many_dyn`: on wgpu, one kernel launch for many
/// tensors) equals the per-tensor step bit for bit, for every configuration of `FUSED_SPECS`, on
/// every compiled backend, over tensors of several ranks, widths and layouts, more than one launch
/// takes, and one that joins late. On wgpu the kernels must have run (launches counted): with
/// burn's autotune compiled in, the fused steps still reach their kernels.
#[test]
fn the_multi_tensor_step_equals_the_per_tensor_step_on_every_backend() {
    let specs: Vec<OptimizerSpec> =
        FUSED_SPECS.iter().map(|spec| OptimizerSpec::parse(spec).unwrap()).collect();
    let mut failures = Vec::new();
    for backend in compiled() {
        let Ok(device) = device(backend) else { continue };
        let mut launches = 0;
        for spec in &specs {
            match multi_tensor_equals_one_by_one(spec, &device) {
                Ok(n) => launches += n,
                Err(err) => failures.push(format!("{backend}: {err}")),
            }
        }
        if matches!(backend, BackendKind::Wgpu | BackendKind::Cuda) && launches == 0 {
            failures.push(format!("{backend}: no fused kernel ran"));
        }
        println!("{backend}: {} specs, {launches} launches", specs.len());
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
