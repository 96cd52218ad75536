//! Evidence that adamlab's optimizers compute what they claim, on the backend at hand.
//!
//! - [`compare`]: element-wise deviation between two runs, with explicit tolerances, keeping the
//!   worst element so a failure names the case, the step and the tensor.
//! - [`controls`]: schedules, gradient clipping and param groups against torch's.
//! - [`fused`]: every fused step against its tensor-op reference, bit for bit on the CPU.
//! - [`parity`]: our optimizers against burn's built-ins, from the same weights on the same
//!   data, on the article's MLP (and Adam on the CNN).
//! - [`replay`]: every optimizer of the registry fed the gradients its reference implementation
//!   was fed, compared on parameters and state after every step.
//! - [`torch`]: the article's MLP with every optimizer, and its CNN with Adam, against torch's.
//! - [`workloads`]: char-gpt (with Adam, AdamW, SGD, Adafactor, Muon and Lion), softmax
//!   regression and the test functions against torch's losses, from torch's weights on torch's
//!   batches.
//! - [`suite`]: the properties every registered optimizer must have (resume, finite values,
//!   descent on a quadratic and on Rosenbrock).
//!
//! The same checks back the test suite and `adamlab verify`, so a user can rerun them on their
//! own GPU.

pub mod compare;
pub mod controls;
pub mod fused;
pub mod params;
pub mod parity;
pub mod replay;
pub mod suite;
pub mod torch;
pub mod workloads;

pub use compare::{CheckReport, Deviation, Tolerance};
