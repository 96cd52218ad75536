//! The metrics journal of a run: JSON lines, one per optimizer step and one per epoch, written as
//! they come so that nothing reported is lost with the process, and cut back on resume so that
//! a resumed run's journal reads as the uninterrupted run's.
//!
//! Lines (keys sorted):
//!
//! ```text
//! {"epoch":1,"loss":2.30,"lr":0.001,"step":1}                                   every step
//! {"epoch":1,"images_per_second":690.1,"seconds":87.0,"step":938,
//!  "test_accuracy":0.877,"test_loss":0.34,"train_loss":0.45}                    every epoch
//! ```
//!
//! `seconds` and `images_per_second` are timings: two runs, or a run and its resumed copy, differ
//! in them and nowhere else ([`TIMING_FIELDS`]). `test_*` appear when the run has an evaluator
//! (`test_distance`, the distance to the optimum, for the test functions).

use crate::checkpoint::Progress;
use crate::fit::{EpochReport, Observer, ObserverError, StepReport};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The fields of a journal line that measure time: compare journals without them.
pub const TIMING_FIELDS: [&str; 2] = ["seconds", "images_per_second"];

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
    /// the rest: `step` 0 empties the journal for a new run. Returns the step of the last line
    /// kept (0 when none; `step` itself for a device or a pipe, which is not rewound).
    pub fn rewind(&mut self, step: usize) -> std::io::Result<usize> {
        if !self.regular {
            return Ok(step);
        }
        let mut contents = Vec::new();
        (&self.file).read_to_end(&mut contents)?;
        let (mut keep, mut last) = (0, 0);
        for line in contents.split_inclusive(|&b| b == b'\n') {
            let line_step = line
                .ends_with(b"\n")
                .then(|| serde_json::from_slice::<serde_json::Value>(line).ok())
                .flatten()
                .and_then(|value| value.get("step")?.as_u64())
                .filter(|&s| s <= step as u64);
            let Some(line_step) = line_step else {
                break;
            };
            keep += line.len();
            last = line_step as usize;
        }
        self.file.set_len(keep as u64)?;
        Ok(last)
    }

    /// Appends `value` as one line, in one write.
    pub fn write(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        let mut line = value.to_string();
        line.push('\n');
        self.file.write_all(line.as_bytes())
    }
}

/// The journal as an observer: rewinds to the start's step, then writes every step and epoch.
/// Errors name the file.
impl Observer for Journal {
    /// A resumed run's journal must reach its checkpoint's step: one cut back by hand, or another
    /// run's, would read as a run with a gap.
    fn on_start(&mut self, progress: &Progress) -> Result<(), ObserverError> {
        let last = self
            .rewind(progress.step)
            .map_err(|err| format!("{}: {err}", self.path.display()))?;
        if last < progress.step {
            return Err(format!(
                "{}: the journal ends at step {last}, the checkpoint is at step {}: its lines up to \
                 the checkpoint are missing; resume with the run's own metrics file, or without one",
                self.path.display(),
                progress.step
            )
            .into());
        }
        Ok(())
    }

    fn on_step(&mut self, r: &StepReport) -> Result<(), ObserverError> {
        let mut line = serde_json::json!({
            "epoch": r.epoch,
            "step": r.step,
            "loss": r.loss,
            "lr": r.lr,
        });
        if r.skipped {
            line["skipped"] = true.into();
        }
        self.write(&line)
            .map_err(|err| format!("{}: {err}", self.path.display()).into())
    }

    fn on_epoch(&mut self, r: &EpochReport) -> Result<(), ObserverError> {
        let mut line = serde_json::json!({
            "epoch": r.epoch,
            "step": r.step,
            "train_loss": r.train_loss,
            "seconds": r.seconds,
            "images_per_second": r.images_per_second,
        });
        if let Some(test) = &r.test {
            line["test_loss"] = test.loss.into();
            if let Some(accuracy) = test.accuracy {
                line["test_accuracy"] = accuracy.into();
            }
            if let Some(distance) = test.distance {
                line["test_distance"] = distance.into();
            }
        }
        self.write(&line)
            .map_err(|err| format!("{}: {err}", self.path.display()).into())
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
