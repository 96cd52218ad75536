//! Progress for people (a bar on a terminal, plain lines otherwise) and for programs (JSON
//! lines in `--metrics-out`).

use adamlab_train::classifier::{EpochReport, Observer, StepReport};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};

/// Plain progress lines, when stdout is not a terminal, come every this many batches.
const PLAIN_EVERY: usize = 100;

/// Shows progress and writes metrics.
pub struct Reporter {
    bar: Option<ProgressBar>,
    terminal: bool,
    metrics: Option<Box<dyn Write>>,
    metrics_error: Option<std::io::Error>,
    epochs: usize,
}

impl Reporter {
    /// A reporter for a run of `epochs`, writing metrics to `metrics` if given.
    pub fn new(epochs: usize, metrics: Option<Box<dyn Write>>) -> Self {
        Self {
            bar: None,
            terminal: std::io::stdout().is_terminal(),
            metrics,
            metrics_error: None,
            epochs,
        }
    }

    /// Writes one JSON line of metrics, keeping the first error for [`Reporter::finish`].
    fn metric(&mut self, value: serde_json::Value) {
        if let Some(out) = &mut self.metrics
            && let Err(err) = writeln!(out, "{value}")
        {
            self.metrics_error.get_or_insert(err);
            self.metrics = None;
        }
    }

    /// Flushes the metrics, returning the first write error.
    pub fn finish(mut self) -> Result<(), std::io::Error> {
        if let Some(out) = &mut self.metrics {
            out.flush()?;
        }
        self.metrics_error.map_or(Ok(()), Err)
    }
}

impl Observer for Reporter {
    fn on_step(&mut self, r: &StepReport) {
        self.metric(serde_json::json!({"epoch": r.epoch, "step": r.step, "loss": r.loss, "lr": r.lr}));
        let (batch, batches) = r.batch;
        let message = format!("loss {:.4}  {:.0} img/s", r.loss, r.images_per_second);
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
            println!("epoch {}/{} batch {batch}/{batches}: {message}", r.epoch, self.epochs);
        }
    }

    fn on_epoch(&mut self, r: &EpochReport) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.metric(serde_json::json!({
            "epoch": r.epoch,
            "step": r.step,
            "train_loss": r.train_loss,
            "test_loss": r.test.loss,
            "test_accuracy": r.test.accuracy,
            "seconds": r.seconds,
            "images_per_second": r.images_per_second,
        }));
        println!(
            "epoch {}/{}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}% ({:.0} s, {:.0} img/s)",
            r.epoch,
            self.epochs,
            r.train_loss,
            r.test.loss,
            100.0 * r.test.accuracy,
            r.seconds,
            r.images_per_second
        );
    }
}
