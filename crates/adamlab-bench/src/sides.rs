//! A whole bench command, side by side: adamlab's measurements ([`crate::step`],
//! [`crate::train`], [`crate::shootout`]), then PyTorch's ([`crate::torch`]) when asked for, in one
//! run, with the machine's load over each side ([`crate::load`]).
//!
//! The measuring modules know nothing of PyTorch, and [`crate::torch`] only reads their
//! configurations: this module is the one place that runs both sides.

use crate::load::{self, Side, SideLoad};
use crate::measure::Triad;
use crate::schema::Record;
use crate::shootout::{self, Datasets, ShootoutConfig};
use crate::step::{self, StepConfig};
use crate::torch::{self, Torch};
use crate::train::{self, TrainConfig};
use crate::{BenchError, Observer};

/// What a bench command measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Every record, in the order the bench file keeps them.
    pub records: Vec<Record>,
    /// The machine's load over each side, in the order they ran.
    pub load: Vec<SideLoad>,
}

/// Ends `side`, tells `observer` and keeps its load.
fn end(side: Side, observer: &mut dyn Observer, load: &mut Vec<SideLoad>) {
    let measured = side.end();
    observer.load(&measured);
    load.push(measured);
}

/// The whole `adamlab bench step`: the triad, then every measurement of `config`, then PyTorch's
/// rows when `torch` is given, all reported to `observer` as they come; with several rounds, that
/// measurement again and again, and every row merged over the rounds ([`step::merge_rounds`]).
/// The triad belongs to the first round's adamlab side.
pub fn step(
    config: &StepConfig,
    torch: Option<&Torch>,
    threads: usize,
    observer: &mut dyn Observer,
) -> Result<Measured, BenchError> {
    config.validate()?;
    let mut load = Vec::new();
    let mut first = Some(Side::start(load::ADAMLAB, 1));
    observer.started("triad (host bandwidth)");
    let triad = step::triad_record(&Triad::measure(Triad::LEN, 2, 10), threads);
    let triad_gbps = triad.bandwidth_gbps;
    observer.measured(&triad);
    let mut rounds = Vec::with_capacity(config.rounds);
    for round in 1..=config.rounds {
        if config.rounds > 1 {
            observer.note(&format!("round {round} of {}", config.rounds));
        }
        let ours = first
            .take()
            .unwrap_or_else(|| Side::start(load::ADAMLAB, round as u64));
        let mut records = step::run(config, triad_gbps, observer)?;
        end(ours, observer, &mut load);
        if let Some(torch) = torch {
            let theirs = Side::start(load::TORCH, round as u64);
            records.extend(torch::step(
                torch, config, threads, &records, triad_gbps, observer,
            )?);
            end(theirs, observer, &mut load);
        }
        rounds.push(records);
    }
    let mut records = vec![triad];
    records.extend(step::merge_rounds(rounds, triad_gbps));
    Ok(Measured { records, load })
}

/// The whole `adamlab bench train`: every measurement of `config`, then PyTorch's rows when
/// `torch` is given.
pub fn train(
    config: &TrainConfig,
    torch: Option<&Torch>,
    threads: usize,
    observer: &mut dyn Observer,
) -> Result<Measured, BenchError> {
    let mut load = Vec::new();
    let ours = Side::start(load::ADAMLAB, 1);
    let mut records = train::run(config, observer)?;
    end(ours, observer, &mut load);
    if let Some(torch) = torch {
        let theirs = Side::start(load::TORCH, 1);
        records.extend(torch::train(torch, config, threads, observer)?);
        end(theirs, observer, &mut load);
    }
    Ok(Measured { records, load })
}

/// The whole `adamlab bench optimizers`: one side, adamlab's, whose wall times and images per
/// second another process would slow.
pub fn shootout(
    config: &ShootoutConfig,
    data: &Datasets,
    observer: &mut dyn Observer,
) -> Result<Measured, BenchError> {
    let mut load = Vec::new();
    let ours = Side::start(load::ADAMLAB, 1);
    let records = shootout::run(config, data, observer)?;
    end(ours, observer, &mut load);
    Ok(Measured { records, load })
}
