//! A directory in MNIST's layout — `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each optionally `.gz` — as a dataset.

use crate::idx::{self, IdxError};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST.
pub const DEFAULT_DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable naming the data directory when `--data-dir` is not given.
pub const DATA_DIR_ENV: &str = "ADAMLAB_DATA_DIR";
/// Image side in pixels.
pub const SIDE: usize = 28;
/// Number of classes.
pub const CLASSES: u8 = 10;

/// The training or the test half of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-*`: 60,000 images in Fashion-MNIST.
    Train,
    /// `t10k-*`: 10,000 images.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "t10k",
        }
    }
}

/// Why a dataset could not be loaded. Each message names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data directory does not exist.
    #[error(
        "data directory {0} not found: install Debian's `dataset-fashion-mnist` package, or point \
         --data-dir (or {DATA_DIR_ENV}) at a directory of MNIST-format IDX files"
    )]
    MissingDir(PathBuf),
    /// The data directory is a file (or something else that is not a directory).
    #[error(
        "data directory {0} is not a directory: point --data-dir (or {DATA_DIR_ENV}) at the \
         directory that holds the MNIST-format IDX files"
    )]
    NotADirectory(PathBuf),
    /// A file of the split is in neither raw nor `.gz` form.
    #[error("{dir}: neither {name} nor {name}.gz exists")]
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// The file's base name.
        name: String,
    },
    /// A file is unreadable, corrupt, or disagrees with its partner.
    #[error(transparent)]
    Idx(#[from] IdxError),
}

/// One image and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistItem {
    /// 28×28 grey levels, row-major, 0 (background) to 255.
    pub pixels: Vec<u8>,
    /// The class, 0–9.
    pub label: u8,
}

/// An MNIST-format split held in memory (Fashion-MNIST's training half is 47 MB).
#[derive(Debug, Clone)]
pub struct MnistDataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl MnistDataset {
    /// Loads `split` from `dir`, validating both files and their agreement.
    pub fn load(dir: &Path, split: Split) -> Result<Self, DataError> {
        if !dir.exists() {
            return Err(DataError::MissingDir(dir.to_path_buf()));
        }
        if !dir.is_dir() {
            return Err(DataError::NotADirectory(dir.to_path_buf()));
        }
        let images_path = find(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
        let labels_path = find(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
        let images = idx::read(&images_path)?;
        let labels = idx::read(&labels_path)?;
        let bad = |path: &Path, problem: String| IdxError {
            path: path.to_path_buf(),
            problem,
        };
        if images.dims.len() != 3 || images.dims[1..] != [SIDE, SIDE] {
            return Err(bad(
                &images_path,
                format!("dimensions {:?} are not [count, 28, 28] images", images.dims),
            )
            .into());
        }
        if labels.dims.len() != 1 {
            return Err(bad(
                &labels_path,
                format!("dimensions {:?} are not [count] labels", labels.dims),
            )
            .into());
        }
        if images.dims[0] != labels.dims[0] {
            return Err(bad(
                &labels_path,
                format!(
                    "holds {} labels but {} holds {} images",
                    labels.dims[0],
                    images_path.display(),
                    images.dims[0]
                ),
            )
            .into());
        }
        if let Some(index) = labels.data.iter().position(|&l| l >= CLASSES) {
            return Err(bad(
                &labels_path,
                format!(
                    "label {} at index {index} is not a class 0–{}",
                    labels.data[index],
                    CLASSES - 1
                ),
            )
            .into());
        }
        Ok(Self {
            pixels: images.data,
            labels: labels.data,
        })
    }

    /// The first `n` items (all of them if there are fewer), in file order.
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.labels.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * SIDE * SIDE);
        self
    }

    /// Splits off the items from `at` on (none if `at` is past the end): `self` keeps the first
    /// `at`, in file order. A held-out part of the training set, for tuning on data the test set
    /// does not see.
    pub fn split_off(&mut self, at: usize) -> Self {
        let at = at.min(self.labels.len());
        Self {
            labels: self.labels.split_off(at),
            pixels: self.pixels.split_off(at * SIDE * SIDE),
        }
    }

    /// A checksum (CRC-32) of the images and labels, in order: two datasets with the same
    /// checksum hold the same data, as far as a checkpoint's run identity needs to know.
    pub fn checksum(&self) -> u32 {
        let mut crc = flate2::Crc::new();
        crc.update(&self.labels);
        crc.update(&self.pixels);
        crc.sum()
    }

    /// The data directory to use: `explicit` if given, else `$ADAMLAB_DATA_DIR`, else
    /// [`DEFAULT_DATA_DIR`].
    pub fn resolve_dir(explicit: Option<&Path>) -> PathBuf {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(DATA_DIR_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }
}

fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    [name.to_string(), format!("{name}.gz")]
        .into_iter()
        .map(|candidate| dir.join(candidate))
        .find(|path| path.is_file())
        .ok_or_else(|| DataError::MissingFile {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
}

impl Dataset<MnistItem> for MnistDataset {
    fn get(&self, index: usize) -> Result<MnistItem, DatasetError> {
        let len = self.labels.len();
        let label = *self.labels.get(index).ok_or_else(|| {
            DatasetError::new(std::io::Error::other(format!(
                "index {index} is out of bounds for a dataset of {len} images"
            )))
        })?;
        let start = index * SIDE * SIDE;
        Ok(MnistItem {
            pixels: self.pixels[start..start + SIDE * SIDE].to_vec(),
            label,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// A batch of images and their labels.
#[derive(Debug, Clone)]
pub struct MnistBatch {
    /// `[batch, 1, 28, 28]`, grey levels scaled to [0, 1] (no mean/std normalisation).
    pub images: Tensor<4>,
    /// `[batch]`, class indices.
    pub targets: Tensor<1, Int>,
}

/// Turns [`MnistItem`]s into an [`MnistBatch`]: pixels divided by 255, as torchvision's
/// `ToTensor()` does.
#[derive(Debug, Clone, Default)]
pub struct MnistBatcher;

impl Batcher<MnistItem, MnistBatch> for MnistBatcher {
    fn batch(&self, items: Vec<MnistItem>, device: &Device) -> MnistBatch {
        let n = items.len();
        let pixels: Vec<f32> = items
            .iter()
            .flat_map(|item| item.pixels.iter().map(|&p| f32::from(p) / 255.0))
            .collect();
        let labels: Vec<i64> = items.iter().map(|item| i64::from(item.label)).collect();
        MnistBatch {
            images: Tensor::from_data(TensorData::new(pixels, [n, 1, SIDE, SIDE]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}
