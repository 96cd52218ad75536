//! `adamlab optimizers`: the registry, as a reader wants it.

use crate::args::OptimizersArgs;
use crate::error::CliError;
use adamlab_optim::{OptimizerSpec, SpecError, lookup, registry};

/// Prints every optimizer (or the one named) with its hyper-parameters.
pub fn run(args: &OptimizersArgs) -> Result<(), CliError> {
    let entries = match &args.name {
        Some(name) => vec![lookup(name).ok_or_else(|| {
            // The same one line as a bad `--optimizer`.
            OptimizerSpec::parse(name).err().unwrap_or(SpecError::Malformed(format!("unknown optimizer `{name}`")))
        })?],
        None => registry().iter().collect(),
    };
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}: {}", entry.name, entry.summary);
        println!("  reference: {}", entry.reference);
        let width = entry.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for param in entry.params {
            println!(
                "  {:<width$}  default {:<14} {}; {}",
                param.name, param.default, param.kind, param.help
            );
        }
    }
    if args.name.is_none() {
        println!(
            "\n{} optimizers. Use one with `adamlab train --optimizer 'NAME(keyword=value, …)'`.",
            entries.len()
        );
    }
    Ok(())
}
