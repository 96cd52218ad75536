//! Schedules, gradient clipping, param groups, the weight EMA and gradient accumulation against
//! torch's, on every backend compiled in.
//! Fixtures: `fixtures/torch/controls/`, written by `tools/reference/generate.py controls`;
//! tolerances and their reasons: `adamlab_verify::controls`.

use adamlab::backend::{compiled, device};
use adamlab::verify::controls::{
    MLP_CONTROLS, MLP_LOOP, check_clipping, check_mlp_controls, check_mlp_loop, check_plateau, check_schedules,
};
use adamlab::verify::CheckReport;

fn assert_all_pass(reports: &[CheckReport]) {
    let failures: Vec<String> = reports.iter().filter(|r| !r.passed()).map(ToString::to_string).collect();
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn every_schedule_gives_torchs_learning_rate_for_300_steps() {
    let reports = check_schedules();
    reports.iter().for_each(|r| println!("{r}"));
    assert!(reports.len() >= 16, "{} schedule cases", reports.len());
    assert_all_pass(&reports);
}

#[test]
fn reduce_on_plateau_gives_torchs_learning_rate_after_each_of_80_epoch_metrics() {
    let reports = check_plateau();
    reports.iter().for_each(|r| println!("{r}"));
    assert!(reports.len() >= 8, "{} plateau cases", reports.len());
    assert_all_pass(&reports);
}

#[test]
fn clipping_and_the_mlp_with_schedules_clipping_groups_ema_and_accumulation_follow_torch_on_every_backend() {
    let mut reports = Vec::new();
    for backend in compiled() {
        let device = device(backend).unwrap_or_else(|err| panic!("{err}"));
        for mut report in check_clipping(&device)
            .into_iter()
            .chain(MLP_CONTROLS.iter().map(|(name, json)| check_mlp_controls(name, json, &device)))
            .chain(MLP_LOOP.iter().map(|(name, json)| check_mlp_loop(name, json, &device)))
        {
            report.case = format!("{backend}/{}", report.case);
            println!("{report}");
            reports.push(report);
        }
    }
    assert_all_pass(&reports);
}
