//! English text for a character-level language model: the fortune cookies of Debian's `fortunes`
//! and `fortunes-min` packages (2.5 MB of quotations, jokes and verse), with a fixed vocabulary
//! and a fixed train/validation split.
//!
//! How the text is made, the same on every machine (and in `tools/reference/workloads.py`, which
//! computes the same corpus for PyTorch):
//!
//! 1. The 43 files of [`FILES`] are read in that order (sorted by name) from the directory
//!    (default [`DEFAULT_DIR`]); the `.dat` indexes and `.u8` links beside them are not read.
//! 2. Each file is cut into cookies at the lines that hold only `%`. Cookie `k`, counted over all
//!    files in order from 0, belongs to the validation split when `k % 10 == 9`, else to the
//!    training split. Each cookie keeps its text and is followed by the line `%\n` in its split.
//! 3. Bytes are mapped to the [`VOCAB`] = 96 tokens: `\n` is 0, the printable ASCII characters
//!    `' '..='~'` are 1–95, a tab becomes a space, and every other byte (UTF-8 sequences, the
//!    backspaces of overstruck text, carriage returns) is dropped.
//!
//! The model sees windows of `context + 1` tokens (inputs and the next-character targets)
//! starting at every multiple of `context`: consecutive windows share one token, and together
//! they cover the split once. [`TextWindows`] is that list, in text order.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where Debian's `fortunes` and `fortunes-min` packages install their cookies.
pub const DEFAULT_DIR: &str = "/usr/share/games/fortunes";
/// Environment variable naming the fortunes directory when `--data-dir` is not given.
pub const DIR_ENV: &str = "ADAMLAB_FORTUNES_DIR";
/// Tokens: `\n` and the 95 printable ASCII characters.
pub const VOCAB: usize = 96;
/// Every cookie `k` (from 0, over all files in order) with `k % VALIDATION_EVERY ==
/// VALIDATION_EVERY - 1` is a validation cookie: one in ten.
pub const VALIDATION_EVERY: usize = 10;

/// The cookie files read, in this order, and the Debian package that installs each.
pub const FILES: [(&str, &str); 43] = [
    ("art", "fortunes"),
    ("ascii-art", "fortunes"),
    ("computers", "fortunes"),
    ("cookie", "fortunes"),
    ("debian", "fortunes"),
    ("definitions", "fortunes"),
    ("disclaimer", "fortunes"),
    ("drugs", "fortunes"),
    ("education", "fortunes"),
    ("ethnic", "fortunes"),
    ("food", "fortunes"),
    ("fortunes", "fortunes-min"),
    ("goedel", "fortunes"),
    ("humorists", "fortunes"),
    ("kids", "fortunes"),
    ("knghtbrd", "fortunes"),
    ("law", "fortunes"),
    ("linux", "fortunes"),
    ("linuxcookie", "fortunes"),
    ("literature", "fortunes-min"),
    ("love", "fortunes"),
    ("magic", "fortunes"),
    ("medicine", "fortunes"),
    ("men-women", "fortunes"),
    ("miscellaneous", "fortunes"),
    ("news", "fortunes"),
    ("paradoxum", "fortunes"),
    ("people", "fortunes"),
    ("perl", "fortunes"),
    ("pets", "fortunes"),
    ("platitudes", "fortunes"),
    ("politics", "fortunes"),
    ("pratchett", "fortunes"),
    ("riddles", "fortunes-min"),
    ("science", "fortunes"),
    ("songs-poems", "fortunes"),
    ("sports", "fortunes"),
    ("startrek", "fortunes"),
    ("tao", "fortunes"),
    ("translate-me", "fortunes"),
    ("wisdom", "fortunes"),
    ("work", "fortunes"),
    ("zippy", "fortunes"),
];

/// Why the corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A cookie file is not there.
    #[error(
        "{}: not found: install Debian's `fortunes` and `fortunes-min` packages (`apt-get install \
         fortunes fortunes-min`; this file is in `{package}`), or point --data-dir (or {DIR_ENV}) \
         at a directory holding their cookie files",
        path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// The package that installs it.
        package: &'static str,
    },
    /// A cookie file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// The token of a byte, or `None` for a byte outside the vocabulary (a tab is a space).
pub fn token(byte: u8) -> Option<u8> {
    match byte {
        b'\n' => Some(0),
        b'\t' => Some(1),
        b' '..=b'~' => Some(byte - b' ' + 1),
        _ => None,
    }
}

/// The character of a token (`\n` for 0). Tokens past the vocabulary are `?`.
pub fn character(token: u8) -> char {
    match token {
        0 => '\n',
        1..=95 => char::from(token - 1 + b' '),
        _ => '?',
    }
}

/// The tokens of `text`, dropping the characters outside the vocabulary.
pub fn encode(text: &str) -> Vec<u8> {
    text.bytes().filter_map(token).collect()
}

/// The text of `tokens`.
pub fn decode(tokens: &[u8]) -> String {
    tokens.iter().map(|&t| character(t)).collect()
}

/// The fortunes corpus as tokens, split into training and validation text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// The training split's tokens.
    pub train: Vec<u8>,
    /// The validation split's tokens.
    pub validation: Vec<u8>,
}

impl Corpus {
    /// Reads the cookies of [`FILES`] from `dir`, as the module documentation describes.
    pub fn load(dir: &Path) -> Result<Self, CorpusError> {
        let mut corpus = Corpus {
            train: Vec::new(),
            validation: Vec::new(),
        };
        let mut cookie = 0usize;
        for (name, package) in FILES {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => CorpusError::Missing {
                    path: path.clone(),
                    package,
                },
                _ => CorpusError::Io {
                    path: path.clone(),
                    source,
                },
            })?;
            for text in cookies(&bytes) {
                let split = if cookie % VALIDATION_EVERY == VALIDATION_EVERY - 1 {
                    &mut corpus.validation
                } else {
                    &mut corpus.train
                };
                split.extend(text.iter().copied().filter_map(token));
                split.extend(encode("%\n"));
                cookie += 1;
            }
        }
        Ok(corpus)
    }

    /// The directory to read: `explicit` if given, else `$ADAMLAB_FORTUNES_DIR`, else
    /// [`DEFAULT_DIR`].
    pub fn resolve_dir(explicit: Option<&Path>) -> PathBuf {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(DIR_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
    }
}

/// The cookies of one file: the text between lines that hold only `%`, each with its final
/// newline; empty cookies (two `%` lines in a row, a file ending in `%`) are skipped.
fn cookies(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line_start = 0;
    while line_start < bytes.len() {
        let line_end = bytes[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| line_start + i + 1);
        let line = &bytes[line_start..line_end];
        if line == b"%\n" || line == b"%" {
            if line_start > start {
                out.push(&bytes[start..line_start]);
            }
            start = line_end;
        }
        line_start = line_end;
    }
    if bytes.len() > start {
        out.push(&bytes[start..]);
    }
    out
}

/// CRC-32 of `tokens`, for a checkpoint's identity and the fixtures: `crc32 1a2b3c4d`.
pub fn fingerprint(tokens: &[u8]) -> String {
    let mut crc = flate2::Crc::new();
    crc.update(tokens);
    format!("crc32 {:08x}", crc.sum())
}

/// The windows of `context + 1` tokens at every multiple of `context` in a text, in order.
#[derive(Debug, Clone)]
pub struct TextWindows {
    tokens: Arc<Vec<u8>>,
    context: usize,
    count: usize,
}

impl TextWindows {
    /// Every window of `tokens` (`(len − 1) / context` of them; none for a `context` of 0).
    pub fn new(tokens: Vec<u8>, context: usize) -> Self {
        let count = if context == 0 {
            0
        } else {
            tokens.len().saturating_sub(1) / context
        };
        Self {
            tokens: Arc::new(tokens),
            context,
            count,
        }
    }

    /// The first `n` windows only (all of them if there are fewer), in text order.
    pub fn truncated(mut self, n: usize) -> Self {
        self.count = self.count.min(n);
        self
    }

    /// Tokens per window's input.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The fingerprint of the tokens the windows cover, with the context.
    pub fn fingerprint(&self) -> String {
        let end = (self.count * self.context + 1).min(self.tokens.len());
        format!("{}, context {}", fingerprint(&self.tokens[..end]), self.context)
    }
}

/// `context + 1` consecutive tokens: the inputs are the first `context`, the targets the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window(pub Vec<u8>);

impl Dataset<Window> for TextWindows {
    fn get(&self, index: usize) -> Result<Window, DatasetError> {
        if index >= self.count {
            return Err(DatasetError::new(std::io::Error::other(format!(
                "window {index} is out of bounds for {} windows",
                self.count
            ))));
        }
        let start = index * self.context;
        Ok(Window(self.tokens[start..start + self.context + 1].to_vec()))
    }

    fn len(&self) -> usize {
        self.count
    }
}

/// A batch of windows: inputs and next-character targets.
#[derive(Debug, Clone)]
pub struct TextBatch {
    /// `[batch, context]` tokens.
    pub inputs: Tensor<2, Int>,
    /// `[batch, context]`: each input's next token.
    pub targets: Tensor<2, Int>,
}

/// Stacks [`Window`]s into a [`TextBatch`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TextBatcher;

impl Batcher<Window, TextBatch> for TextBatcher {
    fn batch(&self, windows: Vec<Window>, device: &Device) -> TextBatch {
        let n = windows.len();
        let context = windows.first().map_or(0, |w| w.0.len().saturating_sub(1));
        let mut inputs = Vec::with_capacity(n * context);
        let mut targets = Vec::with_capacity(n * context);
        for Window(tokens) in &windows {
            inputs.extend(tokens[..context].iter().map(|&t| i64::from(t)));
            targets.extend(tokens[1..].iter().map(|&t| i64::from(t)));
        }
        TextBatch {
            inputs: Tensor::from_data(TensorData::new(inputs, [n, context]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n, context]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vocabulary_character_round_trips_and_others_are_dropped() {
        let text: String = std::iter::once('\n').chain((b' '..=b'~').map(char::from)).collect();
        let tokens = encode(&text);
        assert_eq!(tokens, (0..VOCAB as u8).collect::<Vec<_>>());
        assert_eq!(decode(&tokens), text);
        assert_eq!(decode(&encode("a\tb\u{e9}c\r\u{8}d")), "a bcd");
    }

    #[test]
    fn cookies_are_cut_at_percent_lines_and_empty_ones_skipped() {
        let file = b"one\ntwo\n%\nthree\n%\n%\nfour";
        let cut: Vec<&[u8]> = cookies(file);
        assert_eq!(cut, [&b"one\ntwo\n"[..], b"three\n", b"four"]);
    }

    #[test]
    fn windows_overlap_by_one_token_and_batch_into_shifted_targets() {
        let windows = TextWindows::new((0..10).collect(), 3);
        assert_eq!(windows.len(), 3);
        assert_eq!(windows.get(1).unwrap(), Window(vec![3, 4, 5, 6]));
        assert!(windows.get(3).is_err());
        let batch = TextBatcher.batch(
            vec![windows.get(0).unwrap(), windows.get(2).unwrap()],
            &Device::flex(),
        );
        let inputs: Vec<i64> = batch.inputs.into_data().try_to_vec_as().unwrap();
        let targets: Vec<i64> = batch.targets.into_data().try_to_vec_as().unwrap();
        assert_eq!(inputs, [0, 1, 2, 6, 7, 8]);
        assert_eq!(targets, [1, 2, 3, 7, 8, 9]);
    }

    #[test]
    fn a_missing_cookie_file_names_both_packages() {
        let err = Corpus::load(Path::new("/nonexistent-fortunes")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("/nonexistent-fortunes/art"), "{message}");
        assert!(message.contains("`fortunes` and `fortunes-min`"), "{message}");
    }
}
