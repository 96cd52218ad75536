//! Evidence that adamlab's optimizers compute what they claim, on the backend at hand.
//!
//! - [`compare`]: element-wise deviation between two runs, with explicit tolerances, keeping the
//!   worst element so a failure names the case, the step and the tensor.
//! - [`parity`]: our Adam against burn's built-in `Adam`/`AdamW`, from the same weights on the
//!   same data, on the article's MLP and CNN.
//! - [`torch`]: replays of `torch.optim.Adam`/`AdamW` fixtures (fixed gradients, every step's
//!   parameters and state), and the article's MLP and CNN trajectories against torch's.
//!
//! The same checks back the test suite and `adamlab verify`, so a user can rerun them on their
//! own GPU.

pub mod compare;
pub mod params;
pub mod parity;
pub mod torch;

pub use compare::{CheckReport, Deviation, Tolerance};
