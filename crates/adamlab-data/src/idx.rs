//! The IDX format of the MNIST files: a 4-byte magic (two zero bytes, a type code, the number of
//! dimensions), one big-endian `u32` per dimension, then the data row-major. Files may be
//! gzip-compressed, as distributed.

use crate::files::{self, Bound};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The IDX type code of unsigned bytes, the only one MNIST uses.
const UNSIGNED_BYTE: u8 = 0x08;

/// The most an IDX file may hold, compressed or not: 1 GiB, twenty times Fashion-MNIST's largest
/// file (47 MB), so that `/dev/zero` or a gzip bomb named as data ends in an error, not in
/// memory exhaustion.
pub const MAX_IDX_BYTES: Bound = Bound::new(1 << 30, "an IDX file");

/// An IDX file that cannot be used, with the file's path and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct IdxError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, in words.
    pub problem: String,
}

/// The contents of an IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads and validates the IDX file at `path` (gzip-compressed or not).
pub fn read(path: &Path) -> Result<IdxArray, IdxError> {
    let fail = |problem: String| IdxError {
        path: path.to_path_buf(),
        problem,
    };
    let raw = files::read(path, MAX_IDX_BYTES).map_err(|err| fail(err.to_string()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .take(MAX_IDX_BYTES.bytes + 1)
            .read_to_end(&mut out)
            .map_err(|err| fail(format!("corrupt gzip data ({err})")))?;
        files::check_size(out.len() as u64, MAX_IDX_BYTES)
            .map_err(|err| fail(format!("decompressed: {err}")))?;
        out
    } else {
        raw
    };
    parse(&bytes).map_err(fail)
}

/// Parses IDX bytes, checking the header against the data.
pub fn parse(bytes: &[u8]) -> Result<IdxArray, String> {
    let Some(magic) = bytes.get(..4) else {
        return Err(format!("truncated: {} bytes, shorter than the 4-byte IDX header", bytes.len()));
    };
    if magic[0] != 0 || magic[1] != 0 {
        return Err(format!(
            "bad magic {:02x}{:02x}{:02x}{:02x}: not an IDX file",
            magic[0], magic[1], magic[2], magic[3]
        ));
    }
    if magic[2] != UNSIGNED_BYTE {
        return Err(format!(
            "IDX type code 0x{:02x} is not 0x08 (unsigned bytes), the type MNIST files use",
            magic[2]
        ));
    }
    let ndim = usize::from(magic[3]);
    if ndim == 0 {
        return Err("IDX header declares 0 dimensions".to_string());
    }
    let header_len = 4 + 4 * ndim;
    let Some(dim_bytes) = bytes.get(4..header_len) else {
        return Err(format!(
            "truncated: the header declares {ndim} dimensions but the file ends after {} bytes",
            bytes.len()
        ));
    };
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    let found = bytes.len() - header_len;
    if found != expected {
        let what = if found < expected { "truncated" } else { "trailing data" };
        return Err(format!(
            "{what}: dimensions {dims:?} need {expected} bytes of data, the file has {found}"
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header_len..].to_vec(),
    })
}

/// Encodes `data` with dimensions `dims` as an (uncompressed) IDX file of unsigned bytes.
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_round_trips() {
        let bytes = encode(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let array = parse(&bytes).unwrap();
        assert_eq!(array.dims, vec![2, 3]);
        assert_eq!(array.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn header_and_data_disagreements_are_named() {
        let good = encode(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..3].to_vec(), "truncated"),
            (good[..7].to_vec(), "truncated"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![0]].concat(), "trailing data"),
            ([&[1u8, 0], &good[2..]].concat(), "bad magic"),
            ([&[0u8, 0, 0x0d], &good[3..]].concat(), "type code"),
            (vec![0, 0, 8, 0], "0 dimensions"),
            (encode(&[u32::MAX as usize, u32::MAX as usize, u32::MAX as usize], &[]), "overflow"),
        ];
        for (bytes, expected) in cases {
            let err = parse(&bytes).unwrap_err();
            assert!(err.contains(expected), "{bytes:?}: {err}");
        }
    }
}
