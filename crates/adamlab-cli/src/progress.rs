//! Progress for people (a bar on a terminal, plain lines otherwise) and for programs (the
//! metrics journal of `--metrics-out`).

use adamlab_train::checkpoint::Progress;
use adamlab_train::classifier::{EpochReport, Observer, ObserverError, StepReport};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Plain progress lines, when stdout is not a terminal, come every this many batches.
const PLAIN_EVERY: usize = 100;

/// The metrics file: JSON lines, one per step and one per epoch, each carrying its `step`.
///
/// An append-only journal that survives kill -9: every line goes out whole in one unbuffered
/// write, so nothing reported is lost with the process. A resumed run first cuts the journal back
/// to the step of its checkpoint ([`Journal::rewind`]), dropping what the interrupted run wrote
/// after it (a torn last line included), so the journal then reads as the uninterrupted run's.
/// A device or a pipe (`/dev/stdout`) gets the lines as they come, without rewinding.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    regular: bool,
}

impl Journal {
    /// Opens `path` (creating it) to append to, changing nothing in it yet: this checks that
    /// it can be written before a run starts.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let metadata = std::fs::metadata(path).ok();
        if metadata.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory, not a file",
            ));
        }
        let regular = metadata.as_ref().is_none_or(|m| m.is_file());
        let file = OpenOptions::new()
            .read(regular)
            .append(true)
            .create(true)
            .open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            regular,
        })
    }

    /// The file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the lines up to the first one that is torn, unreadable or beyond `step`, and cuts
    /// the rest: `step` 0 empties the journal for a new run.
    pub fn rewind(&mut self, step: usize) -> std::io::Result<()> {
        if !self.regular {
            return Ok(());
        }
        let mut contents = Vec::new();
        (&self.file).read_to_end(&mut contents)?;
        let mut keep = 0;
        for line in contents.split_inclusive(|&b| b == b'\n') {
            let within = line.ends_with(b"\n")
                && serde_json::from_slice::<serde_json::Value>(line)
                    .ok()
                    .and_then(|value| value.get("step")?.as_u64())
                    .is_some_and(|s| s <= step as u64);
            if !within {
                break;
            }
            keep += line.len();
        }
        self.file.set_len(keep as u64)
    }

    /// Appends `value` as one line, in one write.
    pub fn write(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        let mut line = value.to_string();
        line.push('\n');
        self.file.write_all(line.as_bytes())
    }
}

/// Shows progress and writes the metrics journal; a journal that cannot be written stops the run.
pub struct Reporter {
    bar: Option<ProgressBar>,
    terminal: bool,
    journal: Option<Journal>,
    epochs: usize,
}

impl Reporter {
    /// A reporter for a run of `epochs`, writing metrics to `journal` if given.
    pub fn new(epochs: usize, journal: Option<Journal>) -> Self {
        Self {
            bar: None,
            terminal: std::io::stdout().is_terminal(),
            journal,
            epochs,
        }
    }

    fn record(&mut self, value: serde_json::Value) -> Result<(), ObserverError> {
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        journal
            .write(&value)
            .map_err(|err| format!("--metrics-out {}: {err}", journal.path().display()).into())
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
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        journal
            .rewind(progress.step)
            .map_err(|err| format!("--metrics-out {}: {err}", journal.path().display()).into())
    }

    fn on_step(&mut self, r: &StepReport) -> Result<(), ObserverError> {
        self.record(serde_json::json!({
            "epoch": r.epoch,
            "step": r.step,
            "loss": r.loss,
            "lr": r.lr,
        }))?;
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
        self.record(serde_json::json!({
            "epoch": r.epoch,
            "step": r.step,
            "train_loss": r.train_loss,
            "test_loss": r.test.loss,
            "test_accuracy": r.test.accuracy,
            "seconds": r.seconds,
            "images_per_second": r.images_per_second,
        }))?;
        say!(
            "epoch {}/{}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}% ({:.0} s, {:.0} img/s)",
            r.epoch,
            self.epochs,
            r.train_loss,
            r.test.loss,
            100.0 * r.test.accuracy,
            r.seconds,
            r.images_per_second
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_with(name: &str, contents: &str) -> (PathBuf, Journal) {
        let path =
            std::env::temp_dir().join(format!("adamlab-journal-{name}-{}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        let journal = Journal::open(&path).unwrap();
        (path, journal)
    }

    #[test]
    fn rewinding_keeps_the_lines_up_to_the_step_and_cuts_a_torn_tail() {
        let lines =
            "{\"step\":1}\n{\"step\":2}\n{\"step\":2,\"test_loss\":1.5}\n{\"step\":3}\n{\"st";
        let (path, mut journal) = journal_with("rewind", lines);
        journal.rewind(2).unwrap();
        journal.write(&serde_json::json!({"step": 3})).unwrap();
        let expected = "{\"step\":1}\n{\"step\":2}\n{\"step\":2,\"test_loss\":1.5}\n{\"step\":3}\n";
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        journal.rewind(0).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn rewinding_stops_at_the_first_line_it_cannot_read() {
        let (path, mut journal) = journal_with("garbage", "{\"step\":1}\nnot json\n{\"step\":2}\n");
        journal.rewind(5).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"step\":1}\n");
        std::fs::remove_file(path).unwrap();
    }
}
