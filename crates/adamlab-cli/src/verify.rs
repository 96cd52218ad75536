//! `adamlab verify`.

use crate::args::VerifyArgs;
use crate::error::CliError;
use crate::train::resolve_device;
use adamlab_optim::{OptimizerSpec, lookup};
use adamlab_verify::{CheckReport, controls, parity, replay, torch, workloads};

/// Runs every check (or one optimizer's) on the chosen backend and prints a table; fails if any
/// check fails.
pub fn run(args: &VerifyArgs) -> Result<(), CliError> {
    let only = args.optimizer.as_deref();
    if let Some(name) = only
        && lookup(name).is_none()
    {
        // The same one line as a bad `--optimizer`, listing the names.
        return Err(OptimizerSpec::parse(name).err().map_or_else(
            || CliError::Usage(format!("unknown optimizer `{name}`")),
            CliError::from,
        ));
    }
    let (device, described) = resolve_device(&args.backend)?;
    say!("adamlab verify on {described}");
    say!(
        "{:<52} {:>5} {:>11} {:>11} {:>19}  result",
        "case", "steps", "max abs", "max rel", "tolerance (atol/rtol)"
    );
    let mut failed = 0;
    let mut checked = 0;
    let mut print = |report: CheckReport| {
        row(&report, if report.passed() { "pass" } else { "FAIL" });
        checked += 1;
        if !report.passed() {
            failed += 1;
            say!("    {report}");
        }
    };
    replay::replay_all(&device, only).into_iter().for_each(&mut print);
    let unheld = replay::replay_fixtures()
        .into_iter()
        .filter(|f| only.is_none_or(|name| f.optimizer == name) && !device.supports_dtype(f.param_dtype))
        .count();
    if unheld > 0 {
        // Said, not counted: these cases have no tensors to run on this backend.
        say!("({unheld} replay cases of bfloat16 parameters not run: this backend stores no bfloat16; flex runs them)");
    }
    if only.is_none_or(|name| name == "adam") {
        print(torch::check_mlp_article(&device));
    }
    torch::check_mlp_fixtures(&device, only).into_iter().for_each(&mut print);
    if only.is_none_or(|name| name == "adam") {
        torch::check_cnn_batch(&device).into_iter().for_each(&mut print);
    }
    workloads::check_all(&device, only).into_iter().for_each(&mut print);
    parity::check_all(&device, only).into_iter().for_each(&mut print);
    if only.is_none() {
        controls::check_all(&device).into_iter().for_each(&mut print);
    }
    let mut documented = Vec::new();
    for burn in parity::burn_replays(&device, only) {
        match parity::burn_replay_difference(&burn.fixture) {
            None => print(burn.report),
            Some(why) => documented.push((burn, why)),
        }
    }
    for (burn, why) in documented {
        // A documented difference that has gone away is a failure: the table must be corrected.
        let stale = burn.report.passed();
        row(
            &burn.report,
            if stale { "FAIL (documented as differing, but agrees)" } else { "differs, as documented" },
        );
        checked += 1;
        if stale {
            failed += 1;
        } else {
            say!("    {why}");
        }
    }
    if failed > 0 {
        return Err(CliError::VerificationFailed(failed));
    }
    say!("all {checked} checks passed");
    Ok(())
}

/// One line of the table: the check, its deviations and tolerance, and `result`.
fn row(report: &CheckReport, result: &str) {
    say!(
        "{:<52} {:>5} {:>11.3e} {:>11.3e} {:>9.0e}/{:<9.0e}  {result}",
        report.case,
        report.steps,
        report.deviation.max_abs,
        report.deviation.max_rel,
        report.tolerance.atol,
        report.tolerance.rtol,
    );
}
