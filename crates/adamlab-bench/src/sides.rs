//! A whole bench command, side by side: adamlab's measurements ([`crate::step`],
//! [`crate::train`]), then PyTorch's ([`crate::torch`]) when asked for, in one run.
//!
//! The measuring modules know nothing of PyTorch, and [`crate::torch`] only reads their
//! configurations: this module is the one place that runs both sides.

use crate::measure::Triad;
use crate::schema::Record;
use crate::step::{self, StepConfig};
use crate::torch::{self, Torch};
use crate::train::{self, TrainConfig};
use crate::{BenchError, Observer};

/// The whole `adamlab bench step`: the triad, then every measurement of `config`, then PyTorch's
/// rows when `torch` is given, all reported to `observer` as they come; with several rounds, that
/// measurement again and again, and every row merged over the rounds ([`step::merge_rounds`]).
pub fn step(
    config: &StepConfig,
    torch: Option<&Torch>,
    threads: usize,
    observer: &mut dyn Observer,
) -> Result<Vec<Record>, BenchError> {
    config.validate()?;
    observer.started("triad (host bandwidth)");
    let triad = step::triad_record(&Triad::measure(Triad::LEN, 2, 10), threads);
    let triad_gbps = triad.bandwidth_gbps;
    observer.measured(&triad);
    let mut rounds = Vec::with_capacity(config.rounds);
    for round in 1..=config.rounds {
        if config.rounds > 1 {
            observer.note(&format!("round {round} of {}", config.rounds));
        }
        let mut records = step::run(config, triad_gbps, observer)?;
        if let Some(torch) = torch {
            let theirs = torch::step(torch, config, threads, &records, triad_gbps, observer)?;
            records.extend(theirs);
        }
        rounds.push(records);
    }
    let mut records = vec![triad];
    records.extend(step::merge_rounds(rounds, triad_gbps));
    Ok(records)
}

/// The whole `adamlab bench train`: every measurement of `config`, then PyTorch's rows when
/// `torch` is given.
pub fn train(
    config: &TrainConfig,
    torch: Option<&Torch>,
    threads: usize,
    observer: &mut dyn Observer,
) -> Result<Vec<Record>, BenchError> {
    let mut records = train::run(config, observer)?;
    if let Some(torch) = torch {
        records.extend(torch::train(torch, config, threads, observer)?);
    }
    Ok(records)
}
