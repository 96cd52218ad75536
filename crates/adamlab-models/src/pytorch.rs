//! Weights in PyTorch's form: safetensors files with the article programs' `state_dict` names
//! (`conv1.weight`, `fc.bias`, …) and PyTorch's layouts (a linear weight is `[out, in]`).

use adamlab_data::files::{self, Bound};
use burn::module::Module;
use burn::tensor::{bf16, f16};
use burn_store::{
    ApplyError, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most a weights file may hold: 256 MiB, a hundred times the article's CNN in float64.
/// A larger file (or `/dev/zero`) is refused before it is read.
pub const MAX_WEIGHTS_BYTES: Bound = Bound::new(256 << 20, "a weights file");

/// The most a safetensors header (its JSON table of tensors) may hold: 1 MiB, for a model of a
/// few tensors. A header longer than this or than the file is refused before it is parsed.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

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
    /// The file holds tensors the model does not have.
    #[error(
        "{path}: {} not the model's (it takes {expected}): remove {} or give the file of this model",
        list_tensors(extra), if extra.len() == 1 { "it" } else { "them" }
    )]
    Extra {
        /// The file.
        path: PathBuf,
        /// PyTorch names of the tensors the model does not have.
        extra: Vec<String>,
        /// The model's tensors, comma-separated.
        expected: String,
    },
    /// A tensor has another shape than the model's.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, the model expects {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// PyTorch name of the tensor.
        tensor: String,
        /// Shape the model expects, in PyTorch's layout (a linear weight is `[out, in]`).
        expected: Vec<usize>,
        /// Shape found in the file, in PyTorch's layout.
        found: Vec<usize>,
    },
    /// A tensor is stored in a type that is not a float (or not one adamlab can read).
    #[error(
        "{path}: tensor `{tensor}` is {dtype}, not a float type: the weights must be float32, \
         float16, bfloat16 or float64"
    )]
    DType {
        /// The file.
        path: PathBuf,
        /// PyTorch name of the tensor.
        tensor: String,
        /// PyTorch's name of the type found (`int64`, `bool`, …).
        dtype: &'static str,
    },
    /// A tensor could not be converted.
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

/// `tensor `a` is`, `tensors `a`, `b` are`; past five names, `and N more`.
fn list_tensors(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut quoted: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{}`", shown_name(n))).collect();
    if names.len() > SHOWN {
        quoted.push(format!("and {} more", names.len() - SHOWN));
    }
    if names.len() == 1 {
        format!("tensor {} is", quoted[0])
    } else {
        format!("tensors {} are", quoted.join(", "))
    }
}

/// A tensor name from a file, with control characters escaped and cut to 40 characters, so that
/// an error stays one short line.
fn shown_name(name: &str) -> String {
    let escaped: String = name.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() > 40 {
        format!("{}…", escaped.chars().take(40).collect::<String>())
    } else {
        escaped
    }
}

/// The entries of a safetensors header in file order, duplicates kept (a JSON map read into a
/// map would keep only the last of two equal keys, and the error would then name another
/// tensor).
struct HeaderEntries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for HeaderEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = HeaderEntries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of tensors")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = if key == "__metadata__" {
                        map.next_value::<IgnoredAny>()?;
                        serde_json::Value::Null
                    } else {
                        map.next_value::<serde_json::Value>()?
                    };
                    entries.push((key, value));
                }
                Ok(HeaderEntries(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// Checks the safetensors framing of `bytes` before the parser sees them: the header's stated
/// length against the file and [`MAX_HEADER_BYTES`], every key once, every tensor's byte range
/// inside the file. Returns the message of the first problem.
fn check_framing(bytes: &[u8]) -> Result<(), String> {
    let Some(prefix) = bytes.get(..8) else {
        return Err(format!("{} bytes, shorter than the 8-byte header length", bytes.len()));
    };
    let stated = u64::from_le_bytes(prefix.try_into().expect("8 bytes"));
    let available = bytes.len() as u64 - 8;
    if stated > available {
        return Err(format!(
            "its header claims {stated} bytes, more than the {available} bytes the file holds after its length"
        ));
    }
    if stated > MAX_HEADER_BYTES {
        return Err(format!(
            "its header claims {stated} bytes, more than the {} a header may hold",
            files::show_bytes(MAX_HEADER_BYTES)
        ));
    }
    let header = &bytes[8..8 + stated as usize];
    let data = available - stated;
    let entries = serde_json::from_slice::<HeaderEntries>(header)
        .map_err(|err| format!("its header is not a JSON object of tensors ({err})"))?;
    let mut seen = BTreeSet::new();
    for (name, value) in &entries.0 {
        if !seen.insert(name.as_str()) {
            return Err(format!("its header gives the key `{}` twice", shown_name(name)));
        }
        let offsets = value.get("data_offsets").and_then(|o| o.as_array());
        if let Some([start, end]) = offsets.map(Vec::as_slice)
            && let (Some(start), Some(end)) = (start.as_u64(), end.as_u64())
            && (start > end || end > data)
        {
            return Err(format!(
                "tensor `{}` claims bytes {start}..{end}, beyond the {data} bytes of data the file holds",
                shown_name(name)
            ));
        }
    }
    Ok(())
}

/// Weights read from a file, and what had to be converted on the way.
#[derive(Debug)]
pub struct Loaded<M> {
    /// The model with the file's weights.
    pub model: M,
    /// Tensors stored in another float type than float32, converted on load.
    pub converted: Conversions,
}

/// The number of tensors converted to float32, by PyTorch's name of their stored type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversions(BTreeMap<&'static str, usize>);

impl Conversions {
    /// Whether every tensor was float32 already.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Conversions {
    /// `converted 8 float16 tensors to float32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(dtype, count)| format!("{count} {dtype}"))
            .collect();
        let total: usize = self.0.values().sum();
        let noun = if total == 1 { "tensor" } else { "tensors" };
        write!(f, "converted {} {noun} to float32", parts.join(" and "))
    }
}

/// PyTorch's name of a safetensors type (`torch.float16` is `F16`).
fn torch_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::BOOL => "bool",
        Dtype::U8 => "uint8",
        Dtype::I8 => "int8",
        Dtype::I16 => "int16",
        Dtype::U16 => "uint16",
        Dtype::I32 => "int32",
        Dtype::U32 => "uint32",
        Dtype::I64 => "int64",
        Dtype::U64 => "uint64",
        Dtype::F16 => "float16",
        Dtype::BF16 => "bfloat16",
        Dtype::F32 => "float32",
        Dtype::F64 => "float64",
        Dtype::C64 => "complex64",
        Dtype::F8_E5M2 => "float8_e5m2",
        Dtype::F8_E4M3 => "float8_e4m3fn",
        Dtype::F8_E8M0 => "float8_e8m0fnu",
        Dtype::F8_E4M3FNUZ => "float8_e4m3fnuz",
        Dtype::F8_E5M2FNUZ => "float8_e5m2fnuz",
        _ => "a packed sub-byte type",
    }
}

/// The float32 values of a float16, bfloat16 or float64 tensor's little-endian bytes; `None`
/// for any other type.
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let halves = |convert: fn(u16) -> f32| {
        bytes
            .chunks_exact(2)
            .map(|b| convert(u16::from_le_bytes([b[0], b[1]])))
            .collect()
    };
    match dtype {
        Dtype::F16 => Some(halves(|bits| f16::from_bits(bits).to_f32())),
        Dtype::BF16 => Some(halves(|bits| bf16::from_bits(bits).to_f32())),
        Dtype::F64 => Some(
            bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")) as f32)
                .collect(),
        ),
        _ => None,
    }
}

/// Checks the tensors `model` needs in the safetensors `bytes` against the model, in PyTorch's
/// terms (names, `[out, in]` layouts, dtypes), and converts those stored as float16, bfloat16
/// or float64 to float32. Returns the bytes to load (the same ones if nothing was converted).
fn checked_float32<M: Module>(
    model: &M,
    bytes: Vec<u8>,
    path: &Path,
) -> Result<(Vec<u8>, Conversions), WeightsError> {
    check_framing(&bytes).map_err(|message| WeightsError::Format {
        path: path.to_path_buf(),
        message,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|err| WeightsError::Format {
        path: path.to_path_buf(),
        message: err.to_string(),
    })?;
    // The model's tensors as `save_pytorch_safetensors` writes them: PyTorch's names and shapes.
    let needed = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    let mut converted = Conversions::default();
    let mut floats: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for tensor in &needed {
        let name = tensor.name.clone();
        let Ok(view) = file.tensor(&name) else {
            return Err(WeightsError::Missing {
                path: path.to_path_buf(),
                tensor: name,
            });
        };
        let expected = tensor.shape.to_vec();
        if view.shape() != expected.as_slice() {
            return Err(WeightsError::Shape {
                path: path.to_path_buf(),
                tensor: name,
                expected,
                found: view.shape().to_vec(),
            });
        }
        if view.dtype() == Dtype::F32 {
            floats.push((name, expected, view.data().to_vec()));
            continue;
        }
        let Some(values) = to_f32(view.dtype(), view.data()) else {
            return Err(WeightsError::DType {
                path: path.to_path_buf(),
                tensor: name,
                dtype: torch_name(view.dtype()),
            });
        };
        *converted.0.entry(torch_name(view.dtype())).or_default() += 1;
        let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        floats.push((name, expected, bytes));
    }
    let wanted: BTreeSet<&str> = needed.iter().map(|t| t.name.as_str()).collect();
    let mut extra: Vec<String> = file
        .names()
        .into_iter()
        .filter(|name| !wanted.contains(name))
        .map(str::to_string)
        .collect();
    if !extra.is_empty() {
        extra.sort();
        let expected: Vec<&str> = wanted.into_iter().collect();
        return Err(WeightsError::Extra {
            path: path.to_path_buf(),
            extra,
            expected: expected.join(", "),
        });
    }
    if converted.is_empty() {
        drop(file);
        return Ok((bytes, converted));
    }
    let views = floats
        .iter()
        .map(|(name, shape, data)| {
            let view =
                TensorView::new(Dtype::F32, shape.clone(), data).expect("sizes match shapes");
            (name.as_str(), view)
        })
        .collect::<Vec<_>>();
    let bytes = safetensors::serialize(views, None).map_err(|err| WeightsError::Format {
        path: path.to_path_buf(),
        message: err.to_string(),
    })?;
    Ok((bytes, converted))
}

/// The names PyTorch gives `model`'s tensors (`norm.weight` for burn's `norm.gamma`), as
/// [`save_pytorch_safetensors`] writes them and the loaders expect them.
pub fn pytorch_names<M: Module>(model: &M) -> BTreeSet<String> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
        .into_iter()
        .map(|tensor| tensor.name.clone())
        .collect()
}

/// Loads `model`'s weights from the safetensors bytes PyTorch wrote (`path` is for messages).
/// Every tensor of the model must be present with its shape, and no other (a tensor the model
/// does not have is refused, naming it). Tensors in float16, bfloat16 or float64 are converted to
/// float32.
pub fn load_pytorch_safetensors_bytes<M: Module>(
    model: M,
    bytes: Vec<u8>,
    path: &Path,
) -> Result<M, WeightsError> {
    load_bytes(model, bytes, path).map(|loaded| loaded.model)
}

fn load_bytes<M: Module>(
    mut model: M,
    bytes: Vec<u8>,
    path: &Path,
) -> Result<Loaded<M>, WeightsError> {
    let (bytes, converted) = checked_float32(&model, bytes, path)?;
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
    // The checks above leave burn nothing to refuse; should it still, say what it says.
    let path = path.to_path_buf();
    if let Some(error) = result.errors.into_iter().next() {
        let tensor = match &error {
            ApplyError::ShapeMismatch { path, .. }
            | ApplyError::DTypeMismatch { path, .. }
            | ApplyError::AdapterError { path, .. }
            | ApplyError::LoadError { path, .. } => path.clone(),
        };
        return Err(WeightsError::Tensor {
            path,
            tensor,
            message: error.to_string().replace('\n', " "),
        });
    }
    if let Some((tensor, _)) = result.missing.into_iter().next() {
        return Err(WeightsError::Missing { path, tensor });
    }
    Ok(Loaded { model, converted })
}

/// Loads `model`'s weights from a safetensors file PyTorch wrote, converting float16, bfloat16
/// and float64 tensors to float32 (the returned [`Loaded::converted`] says which). Only a regular
/// file of at most [`MAX_WEIGHTS_BYTES`] is read: a device, a FIFO or a larger file is refused
/// before any byte is.
pub fn load_pytorch_safetensors<M: Module>(
    model: M,
    path: &Path,
) -> Result<Loaded<M>, WeightsError> {
    let bytes = files::read(path, MAX_WEIGHTS_BYTES).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_bytes(model, bytes, path)
}

/// The name and shape of every tensor in a safetensors file, without reading the weights into a
/// model (to tell a model's configuration from its file).
pub fn tensor_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|err| WeightsError::Format {
        path: path.to_path_buf(),
        message: err.to_string(),
    })?;
    Ok(file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect())
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

/// Writes `bytes` to `path` through a temporary file beside it and a rename, so that a crash
/// leaves the old file or the new one, never a mix. The temporary file has a short name of its
/// own (`path` may be as long as the file system allows) and is removed if anything fails.
/// `path` must be a regular file or not exist: a directory or a device (`/dev/full`) is refused
/// rather than replaced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    refuse_non_regular(path).map_err(io)?;
    let tmp = temporary_beside(path);
    let written = (|| {
        let mut file = create_beside(path, &tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(err));
    }
    // Make the rename itself durable; a file system that cannot sync directories loses nothing.
    if let Ok(dir) = std::fs::File::open(parent_of(path)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Checks, before any work, that [`write_atomically`] can write `path`: the directory exists and
/// takes new files, and `path` is a regular file or can be created. Leaves nothing behind.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    refuse_non_regular(path)?;
    let tmp = temporary_beside(path);
    create_beside(path, &tmp)?;
    std::fs::remove_file(&tmp)?;
    if std::fs::symlink_metadata(path).is_err() {
        // The name itself must be valid here (a name too long for the file system fails only now).
        std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// Creates the temporary file `tmp` beside `path`; should that fail, the error says why in terms
/// of `path`'s directory (`/proc` refuses new files with "No such file or directory", which
/// alone would blame `path`).
fn create_beside(path: &Path, tmp: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(tmp).map_err(|err| {
        let dir = parent_of(path);
        let why = match std::fs::metadata(dir) {
            Err(_) => format!("its directory {} does not exist ({err})", dir.display()),
            Ok(meta) if !meta.is_dir() => format!("{} is not a directory", dir.display()),
            Ok(_) if err.kind() == std::io::ErrorKind::NotFound => format!(
                "its directory {} does not accept new files (creating one there fails with: {err})",
                dir.display()
            ),
            Ok(_) => format!("cannot create a file in its directory {} ({err})", dir.display()),
        };
        std::io::Error::new(
            err.kind(),
            format!("{why}; the file is written beside its final name first, then renamed"),
        )
    })
}

fn refuse_non_regular(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory, not a file",
        )),
        Ok(meta) if !meta.is_file() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is not a regular file (a device or a pipe): give a file name",
        )),
        _ => Ok(()),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `.adamlab-PID-N.tmp` in `path`'s directory: short, and unique to this process and write.
fn temporary_beside(path: &Path) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    parent_of(path).join(format!(".adamlab-{}-{n}.tmp", std::process::id()))
}
