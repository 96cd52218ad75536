//! `adamlab verify`.

use crate::args::VerifyArgs;
use crate::error::CliError;
use crate::train::resolve_device;
use adamlab_verify::{CheckReport, parity, torch};

/// Runs every check on the chosen backend and prints a table; fails if any check fails.
pub fn run(args: &VerifyArgs) -> Result<(), CliError> {
    let (device, described) = resolve_device(&args.backend)?;
    println!("adamlab verify on {described}");
    println!(
        "{:<48} {:>5} {:>11} {:>11} {:>19}  result",
        "case", "steps", "max abs", "max rel", "tolerance (atol/rtol)"
    );
    let mut failed = 0;
    let mut print = |report: CheckReport| {
        println!(
            "{:<48} {:>5} {:>11.3e} {:>11.3e} {:>9.0e}/{:<9.0e}  {}",
            report.case,
            report.steps,
            report.deviation.max_abs,
            report.deviation.max_rel,
            report.tolerance.atol,
            report.tolerance.rtol,
            if report.passed() { "pass" } else { "FAIL" }
        );
        if !report.passed() {
            failed += 1;
            println!("    {report}");
        }
    };
    torch::check_all(&device).into_iter().for_each(&mut print);
    parity::check_all(&device).into_iter().for_each(&mut print);
    if failed > 0 {
        return Err(CliError::VerificationFailed(failed));
    }
    println!("all checks passed");
    Ok(())
}
