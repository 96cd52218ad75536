//! Weights in PyTorch's form: safetensors files with the article programs' `state_dict` names
//! (`conv1.weight`, `fc.bias`, …) and PyTorch's layouts (a linear weight is `[out, in]`).

use burn::module::Module;
use burn_store::{
    ApplyError, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use std::path::{Path, PathBuf};

/// Why weights could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a safetensors file, or is damaged.
    #[error("{path}: not a readable safetensors file ({message})")]
    Format {
        /// The file.
        path: PathBuf,
        /// The parser's words.
        message: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("{path}: tensor `{tensor}` is missing")]
    Missing {
        /// The file.
        path: PathBuf,
        /// PyTorch name of the tensor.
        tensor: String,
    },
    /// A tensor has another shape than the model's.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, the model expects {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// PyTorch name of the tensor.
        tensor: String,
        /// Shape the model expects, in burn's layout.
        expected: Vec<usize>,
        /// Shape found in the file, in burn's layout.
        found: Vec<usize>,
    },
    /// A tensor could not be converted (e.g. an integer dtype where floats are expected).
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// PyTorch name of the tensor.
        tensor: String,
        /// What is wrong.
        message: String,
    },
}

/// Loads `model`'s weights from the safetensors bytes PyTorch wrote (`path` is for messages).
/// Every tensor of the model must be present with its shape; extra tensors are ignored.
pub fn load_pytorch_safetensors_bytes<M: Module>(
    mut model: M,
    bytes: Vec<u8>,
    path: &Path,
) -> Result<M, WeightsError> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .validate(false)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|err| WeightsError::Format {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
    let path = path.to_path_buf();
    if let Some(error) = result.errors.into_iter().next() {
        return Err(match error {
            ApplyError::ShapeMismatch {
                path: tensor,
                expected,
                found,
            } => WeightsError::Shape {
                path,
                tensor,
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            ApplyError::DTypeMismatch { path: ref tensor, .. }
            | ApplyError::AdapterError { path: ref tensor, .. }
            | ApplyError::LoadError { path: ref tensor, .. } => WeightsError::Tensor {
                path,
                tensor: tensor.clone(),
                message: error.to_string(),
            },
        });
    }
    if let Some((tensor, _)) = result.missing.into_iter().next() {
        return Err(WeightsError::Missing { path, tensor });
    }
    Ok(model)
}

/// Loads `model`'s weights from a safetensors file PyTorch wrote.
pub fn load_pytorch_safetensors<M: Module>(model: M, path: &Path) -> Result<M, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_pytorch_safetensors_bytes(model, bytes, path)
}

/// `model`'s weights as safetensors bytes in PyTorch's names and layouts.
///
/// Without burn's metadata header, which it keeps in a hash map: the same weights then always
/// give the same bytes.
pub fn pytorch_safetensors_bytes<M: Module>(model: &M) -> Vec<u8> {
    let mut store = SafetensorsStore::from_bytes(None)
        .clear_metadata()
        .with_to_adapter(BurnToPyTorchAdapter);
    model
        .save_into(&mut store)
        .expect("serialising to memory cannot fail");
    store.get_bytes().expect("the store was just written")
}

/// Writes `model`'s weights to `path` in PyTorch's form, atomically: the bytes go to a temporary
/// file beside it, which then replaces `path`, so a crash leaves the old file or the new one.
pub fn save_pytorch_safetensors<M: Module>(model: &M, path: &Path) -> Result<(), WeightsError> {
    write_atomically(path, &pytorch_safetensors_bytes(model))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    use std::io::Write;
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
