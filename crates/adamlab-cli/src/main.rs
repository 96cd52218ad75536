//! `adamlab`: train the article's models with any optimizer of the registry, on any compiled
//! backend; evaluate saved weights; verify the optimizers against their references and burn; list
//! them.

mod args;
mod error;
mod eval;
mod optimizers;
mod progress;
mod schedules;
mod train;
mod verify;

use clap::Parser;
use error::CliError;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            // clap's first line names the problem; its usage block would make it five.
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("error: invalid arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
    };
    let command = cli
        .command
        .unwrap_or_else(|| args::Command::Train(Box::new(default_train_args())));
    let result = match command {
        args::Command::Train(args) => train::run(&args),
        args::Command::Eval(args) => eval::run(&args),
        args::Command::Verify(args) => verify::run(&args),
        args::Command::Optimizers(args) => optimizers::run(&args),
        args::Command::Schedules => schedules::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
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
            CliError::TrainingFailed(_) | CliError::VerificationFailed(_) => 1,
            _ => 2,
        }
    }
}
