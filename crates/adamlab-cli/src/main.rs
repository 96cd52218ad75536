//! `adamlab`: train the article's models with any optimizer of the registry, on any compiled
//! backend; evaluate saved weights; verify the optimizers against their references and burn; list
//! them.

#[macro_use]
mod console;
mod args;
mod bench;
mod error;
mod eval;
mod models;
mod optimizers;
mod progress;
mod sample;
mod schedules;
mod train;
mod verify;

use clap::{CommandFactory, FromArgMatches, Parser};
use error::CliError;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: a training step frees and allocates again the same 3–14 MB
/// tensors, which glibc hands back to the kernel and pages in again, thousands of minor page faults
/// per step (issue 23); mimalloc keeps them for reuse.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let parsed = command_line().try_get_matches().and_then(|matches| args::Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            tell!("{} (see --help)", first_paragraph(&err.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let command = cli
        .command
        .unwrap_or_else(|| args::Command::Train(Box::new(default_train_args())));
    let result = match command {
        args::Command::Bench(args) => bench::run(&args),
        args::Command::Train(args) => train::run(&args),
        args::Command::Eval(args) => eval::run(&args),
        args::Command::Verify(args) => verify::run(&args),
        args::Command::Optimizers(args) => optimizers::run(&args),
        args::Command::Schedules => schedules::run(),
        args::Command::Models => models::run(),
        args::Command::Sample(args) => sample::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tell!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// adamlab's command line, with one rule for every flag that takes a value: a negative number
/// is its value (`--clip-grad-norm -1`, `bench step --params -5`), so that adamlab's own check
/// answers, naming the flag, rather than clap's "unexpected argument '-1'".
fn command_line() -> clap::Command {
    fn negatives(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| {
                if arg.get_action().takes_values() {
                    arg.allow_negative_numbers(true)
                } else {
                    arg
                }
            })
            .mut_subcommands(negatives)
    }
    negatives(args::Cli::command())
}

/// clap's message without its usage block, on one line: the problem and what it names
/// (`error: the following required arguments were not provided: --init <FILE>`).
fn first_paragraph(rendered: &str) -> String {
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    if paragraph.is_empty() {
        "error: invalid arguments".to_string()
    } else {
        paragraph.join(" ")
    }
}

/// `adamlab` alone means `adamlab train` with every default.
fn default_train_args() -> args::TrainArgs {
    match args::Cli::parse_from(["adamlab", "train"]).command {
        Some(args::Command::Train(args)) => *args,
        _ => unreachable!("`train` parses as the train command"),
    }
}

/// Exit codes: 2 for what the user can fix (arguments, files, data), 1 for a run that failed.
impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::TrainingFailed(_) | CliError::VerificationFailed(_) | CliError::BenchFailed(_) => 1,
            CliError::Stopped { error, .. } => error.exit_code(),
            _ => 2,
        }
    }
}
