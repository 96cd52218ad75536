//! Reading a file the user names, bounded: only a regular file is read (a device such as
//! `/dev/zero` or `/dev/urandom`, a FIFO or a socket is refused from its metadata, before it is
//! opened, so nothing blocks or grows without end), and only up to a size the caller states,
//! checked before anything is allocated.

use std::fs::{File, Metadata};
use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// A bound on what one input may hold, with the words that name it in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The most bytes the input may hold.
    pub bytes: u64,
    /// What the input is, for the error: `a weights file`.
    pub what: &'static str,
}

impl Bound {
    /// At most `bytes` bytes of `what`.
    pub const fn new(bytes: u64, what: &'static str) -> Self {
        Self { bytes, what }
    }
}

/// `Ok` with the metadata when `path` (links followed) is a regular file; else an error saying
/// what it is. Opens nothing, so a FIFO cannot block.
pub fn regular(path: &Path) -> std::io::Result<Metadata> {
    let meta = std::fs::metadata(path)?;
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        return Ok(meta);
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("{kind}, not a regular file: adamlab reads only regular files"),
    ))
}

/// Opens `path` for reading when it is a regular file of at most `bound` bytes, checked before
/// opening; returns the file and its size.
pub fn open(path: &Path, bound: Bound) -> std::io::Result<(File, u64)> {
    let size = regular(path)?.len();
    check_size(size, bound)?;
    let file = File::open(path)?;
    // Replaced between the check and the open: check what was opened.
    let opened = file.metadata()?;
    if !opened.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file once opened (it was replaced): adamlab reads only regular files",
        ));
    }
    check_size(opened.len(), bound)?;
    Ok((file, opened.len()))
}

/// Refuses `size` bytes beyond `bound`, naming both.
pub fn check_size(size: u64, bound: Bound) -> std::io::Result<()> {
    if size > bound.bytes {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "{size} bytes, more than the {} {} may hold",
                show_bytes(bound.bytes),
                bound.what
            ),
        ));
    }
    Ok(())
}

/// The whole of the regular file `path`, of at most `bound` bytes (a file that grows while it is
/// read is refused at the bound, too).
pub fn read(path: &Path, bound: Bound) -> std::io::Result<Vec<u8>> {
    let (file, size) = open(path, bound)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(bound.bytes.saturating_add(1)).read_to_end(&mut bytes)?;
    check_size(bytes.len() as u64, bound)?;
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, bound: Bound) -> std::io::Result<String> {
    String::from_utf8(read(path, bound)?)
        .map_err(|err| Error::new(ErrorKind::InvalidData, format!("not UTF-8 text ({err})")))
}

/// `256 MiB`, `1 GiB`, or bytes when not a whole number of MiB.
pub fn show_bytes(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes % GIB == 0 {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Bound = Bound::new(16, "a test file");

    fn sandbox(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("adamlab-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn devices_and_directories_are_refused_without_reading() {
        for (path, kind) in [("/dev/zero", "character device"), ("/dev/urandom", "character device"), ("/", "directory")] {
            let err = read(Path::new(path), SMALL).unwrap_err().to_string();
            assert!(err.contains(kind) && err.contains("regular file"), "{path}: {err}");
        }
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = sandbox("fifo");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // No writer ever opens it: opening it for reading would block for ever, so the read runs
        // on a thread of its own and the test fails (rather than hangs) if it does not return.
        let (sender, receiver) = std::sync::mpsc::channel();
        let reader = fifo.clone();
        std::thread::spawn(move || sender.send(read(&reader, SMALL).map_err(|e| e.to_string())));
        let result = receiver
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO blocked");
        let err = result.unwrap_err();
        assert!(err.contains("FIFO"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_beyond_its_bound_is_refused_naming_both_sizes() {
        let dir = sandbox("bound");
        let file = dir.join("big");
        std::fs::write(&file, [0u8; 17]).unwrap();
        let err = read(&file, SMALL).unwrap_err().to_string();
        assert!(err.contains("17 bytes") && err.contains("16 bytes a test file"), "{err}");
        std::fs::write(&file, [7u8; 16]).unwrap();
        assert_eq!(read(&file, SMALL).unwrap(), [7u8; 16]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_read_in_whole_units() {
        assert_eq!(show_bytes(256 << 20), "256 MiB");
        assert_eq!(show_bytes(1 << 30), "1 GiB");
        assert_eq!(show_bytes(1000), "1000 bytes");
    }
}
