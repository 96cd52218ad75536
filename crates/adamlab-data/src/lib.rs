//! The data of adamlab's workloads for burn: MNIST-format image datasets (Fashion-MNIST, classic
//! MNIST) and the English text of Debian's fortune cookies.
//!
//! - [`idx`]: the IDX file format, raw or gzip-compressed, validated as it is read.
//! - [`mnist`]: a directory of four IDX files as a burn [`Dataset`](burn::data::dataset::Dataset)
//!   of 28×28 images with labels 0–9, and a [`Batcher`](burn::data::dataloader::batcher::Batcher)
//!   that turns them into tensors for burn's `DataLoader`.
//! - [`fortunes`]: the cookies of Debian's `fortunes` and `fortunes-min` as character tokens, split
//!   into training and validation text, as windows for a character-level language model.
//! - [`paths`]: whether two paths name one file, so that no command writes over its inputs.
//! - [`files`]: reading a file the user names, bounded: regular files only, up to a stated size.
//!
//! burn's own `MnistDataset` downloads from the web; this reader works offline, by default on
//! the copy Debian's `dataset-fashion-mnist` package installs.

pub mod files;
pub mod fortunes;
pub mod idx;
pub mod mnist;
pub mod paths;

pub use idx::IdxError;
pub use mnist::{
    DEFAULT_DATA_DIR, DATA_DIR_ENV, DataError, MnistBatch, MnistBatcher, MnistDataset, MnistItem,
    Split,
};
