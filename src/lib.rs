//! adamlab: optimizers for burn, each proven to compute what its reference implementation
//! computes (`torch.optim`, `lion-pytorch`, `schedulefree`, `adabelief-pytorch`,
//! `pytorch-optimizer`).
//!
//! This package gathers the workspace's crates under one name for the top-level examples,
//! benchmarks and tests:
//!
//! - [`optim`]: the optimizers (`adamlab-optim`).
//! - [`models`]: the article's MLP and CNN and the workloads' models (`adamlab-models`).
//! - [`data`]: MNIST-format datasets and the fortunes corpus (`adamlab-data`).
//! - [`backend`]: choosing ndarray, flex or wgpu at run time (`adamlab-backend`).
//! - [`train`]: training loops and optimizer selection (`adamlab-train`).
//! - [`verify`]: the checks against burn and PyTorch (`adamlab-verify`).
//! - [`bench`]: the benchmarks behind `adamlab bench` and `cargo bench` (`adamlab-bench`).

pub use adamlab_backend as backend;
pub use adamlab_bench as bench;
pub use adamlab_data as data;
pub use adamlab_models as models;
pub use adamlab_optim as optim;
pub use adamlab_train as train;
pub use adamlab_verify as verify;
