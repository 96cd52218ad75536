//! Lines for people on stdout and stderr that never stop a run: Rust's `println!` panics when
//! stdout is a closed pipe (`adamlab train | head -1`). Here the first failed write (broken pipe,
//! full disk, closed descriptor) silences that stream for the rest of the run, which goes on to
//! write its files.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes one line to stdout, unless stdout has failed before.
pub fn out(args: fmt::Arguments<'_>) {
    write_line(&STDOUT_GONE, &mut std::io::stdout().lock(), args);
}

/// Writes one line to stderr, unless stderr has failed before.
pub fn err(args: fmt::Arguments<'_>) {
    write_line(&STDERR_GONE, &mut std::io::stderr().lock(), args);
}

fn write_line(gone: &AtomicBool, stream: &mut dyn Write, args: fmt::Arguments<'_>) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    if writeln!(stream, "{args}")
        .and_then(|()| stream.flush())
        .is_err()
    {
        gone.store(true, Ordering::Relaxed);
    }
}

/// `println!` through [`out`].
macro_rules! say {
    ($($arg:tt)*) => { $crate::console::out(format_args!($($arg)*)) };
}

/// `eprintln!` through [`err`].
macro_rules! tell {
    ($($arg:tt)*) => { $crate::console::err(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream whose every write fails, as a pipe whose reader has gone.
    struct BrokenPipe(usize);

    impl Write for BrokenPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            self.0 += 1;
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_stream_is_tried_once_then_left_alone() {
        let gone = AtomicBool::new(false);
        let mut pipe = BrokenPipe(0);
        write_line(&gone, &mut pipe, format_args!("first"));
        write_line(&gone, &mut pipe, format_args!("second"));
        assert!(gone.load(Ordering::Relaxed));
        assert_eq!(pipe.0, 1, "writes attempted");
    }
}
