//! Progress for people (a bar on a terminal, plain lines otherwise) and for programs (the
//! metrics journal of `--metrics-out`, [`Journal`]).

use adamlab_train::checkpoint::Progress;
use adamlab_train::epoch_line;
use adamlab_train::fit::{EpochReport, Observer, ObserverError, StepReport};
use adamlab_train::journal::Journal;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Plain progress lines, when stdout is not a terminal, come every this many batches.
const PLAIN_EVERY: usize = 100;

/// Shows progress and writes the metrics journal; a journal that cannot be written stops the run.
pub struct Reporter {
    bar: Option<ProgressBar>,
    terminal: bool,
    journal: Option<Journal>,
    epochs: usize,
    /// The article's MLP program: stdout carries exactly its `Epoch [10/100], Loss: …` lines,
    /// and the journal its steps (one a epoch).
    article: bool,
    /// How the lines name the held-out data and the examples.
    labels: Labels,
}

/// How progress lines name the held-out data (`test`, `validation`) and the examples per second
/// (`img/s`), and how many decimals the held-out loss gets.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// `test loss 0.3405`, `validation loss 1.234`.
    pub held_out: &'static str,
    /// Decimals of the held-out loss.
    pub decimals: usize,
    /// `img/s`, `seq/s`, `steps/s`.
    pub per_second: &'static str,
}

impl Labels {
    /// The article's CNN: `test loss 0.3405`, images per second.
    pub const IMAGES: Labels = Labels {
        held_out: "test",
        decimals: 4,
        per_second: "img/s",
    };
}

impl Reporter {
    /// A reporter for a run of `epochs`, writing metrics to `journal` if given.
    pub fn new(epochs: usize, journal: Option<Journal>) -> Self {
        Self {
            bar: None,
            terminal: std::io::stdout().is_terminal(),
            journal,
            epochs,
            article: false,
            labels: Labels::IMAGES,
        }
    }

    /// A reporter whose lines use `labels`.
    pub fn labelled(epochs: usize, journal: Option<Journal>, labels: Labels) -> Self {
        Self {
            labels,
            ..Self::new(epochs, journal)
        }
    }

    /// A reporter that prints what the article's programs print: the loss every 10 epochs.
    pub fn article(epochs: usize, journal: Option<Journal>) -> Self {
        Self {
            article: true,
            ..Self::new(epochs, journal)
        }
    }

    /// `--metrics-out`'s part of a report, its errors named by the flag.
    fn journal(
        &mut self,
        write: impl FnOnce(&mut Journal) -> Result<(), ObserverError>,
    ) -> Result<(), ObserverError> {
        match &mut self.journal {
            Some(journal) => write(journal).map_err(|err| format!("--metrics-out {err}").into()),
            None => Ok(()),
        }
    }
}

impl Observer for Reporter {
    fn on_start(&mut self, progress: &Progress) -> Result<(), ObserverError> {
        if progress.step > 0 && progress.epoch == self.epochs && progress.batch == 0 {
            say!(
                "the checkpoint has completed all {} epoch(s): nothing left to train",
                self.epochs
            );
        }
        self.journal(|journal| journal.on_start(progress))
    }

    fn on_step(&mut self, r: &StepReport) -> Result<(), ObserverError> {
        self.journal(|journal| journal.on_step(r))?;
        let (batch, batches) = r.batch;
        if self.article {
            if batch == batches
                && let Some(line) = epoch_line(r.epoch, self.epochs, r.loss)
            {
                say!("{line}");
            }
            return Ok(());
        }
        let message = format!(
            "loss {:.4}  {:.0} {}",
            r.loss, r.images_per_second, self.labels.per_second
        );
        if self.terminal {
            let epochs = self.epochs;
            let bar = self.bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(batches as u64);
                bar.set_style(
                    ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(format!("{}/{epochs}", r.epoch));
                bar
            });
            bar.set_position(batch as u64);
            bar.set_message(message);
        } else if batch % PLAIN_EVERY == 0 || batch == batches {
            say!(
                "epoch {}/{} batch {batch}/{batches}: {message}",
                r.epoch,
                self.epochs
            );
        }
        Ok(())
    }

    fn on_epoch(&mut self, r: &EpochReport) -> Result<(), ObserverError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.article {
            return Ok(());
        }
        self.journal(|journal| journal.on_epoch(r))?;
        let mut evaluated = String::new();
        let Labels {
            held_out,
            decimals,
            per_second,
        } = self.labels;
        if let Some(test) = &r.test {
            evaluated = format!(", {held_out} loss {:.decimals$}", test.loss);
            if let Some(accuracy) = test.accuracy {
                evaluated += &format!(", {held_out} accuracy {:.2}%", 100.0 * accuracy);
            }
            if let Some(distance) = test.distance {
                evaluated += &format!(", distance to the optimum {distance:.3e}");
            }
        }
        say!(
            "epoch {}/{}: train loss {:.4}{evaluated} ({:.0} s, {:.0} {per_second})",
            r.epoch,
            self.epochs,
            r.train_loss,
            r.seconds,
            r.images_per_second
        );
        Ok(())
    }
}
