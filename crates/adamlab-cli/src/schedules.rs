//! `adamlab schedules`: the learning-rate schedules `--lr-schedule` takes.

use crate::error::CliError;
use adamlab_optim::schedule::SCHEDULES;

/// Prints every schedule with its keywords and defaults.
pub fn run() -> Result<(), CliError> {
    for (i, entry) in SCHEDULES.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}: {}", entry.name, entry.summary);
        println!("  reference: {}", entry.reference);
        let width = entry.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for param in entry.params {
            let default = if param.default == "None" { "required" } else { param.default };
            println!("  {:<width$}  default {:<20} {}; {}", param.name, default, param.kind, param.help);
        }
    }
    println!(
        "\nUse one with `adamlab train --lr-schedule 'NAME(keyword=value, …)'`; `sequential` chains \
         schedules given as calls: 'sequential(linear(start_factor=0.1, total_iters=10), cosine(t_max=90))'."
    );
    Ok(())
}
