//! adamlab's optimizers equal burn's built-ins, parameter by parameter, for 50 steps of the
//! article's MLP (and, for Adam, 20 steps of its CNN), on every backend compiled in (ndarray, flex, and wgpu
//! with `--features wgpu`). Cases: `adamlab_verify::parity::PARITY_CASES`; tolerance and
//! reasoning: `adamlab_verify::parity::PARITY_TOLERANCE`.

use adamlab::backend::{compiled, device};
use adamlab::verify::CheckReport;
use adamlab::verify::parity::{PARITY_CASES, ParityModel, check};

fn assert_parity_on_every_backend(model: ParityModel) {
    let mut reports: Vec<CheckReport> = Vec::new();
    for backend in compiled() {
        let device = device(backend).unwrap_or_else(|err| panic!("{err}"));
        for case in PARITY_CASES.iter().filter(|c| c.models.contains(&model)) {
            let mut report = check(&device, model, case, model.parity_steps());
            report.case = format!("{backend}/{}", report.case);
            println!("{report}");
            reports.push(report);
        }
    }
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(ToString::to_string)
        .collect();
    assert!(failures.is_empty(), "parity failures:\n{}", failures.join("\n"));
}

#[test]
fn our_optimizers_equal_burns_built_ins_for_50_steps_of_the_mlp_on_every_backend() {
    assert_parity_on_every_backend(ParityModel::Mlp);
}

#[test]
fn our_adam_equals_burns_adam_for_20_steps_of_the_cnn_on_every_backend() {
    assert_parity_on_every_backend(ParityModel::Cnn);
}
