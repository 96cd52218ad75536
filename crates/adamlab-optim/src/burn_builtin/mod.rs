//! burn 0.22.1's own optimizers, as registry entries named `burn-NAME`, so that the CLI, the
//! parity suite and the benchmarks can put them beside adamlab's.
//!
//! Each takes torch's keyword names, and torch's defaults where burn's differ (ε 1e-8 rather
//! than burn's 1e-5, for instance), so that a comparison measures the implementations, not their
//! defaults. Options burn lacks are not offered (no `maximize` anywhere).

pub mod adafactor;
pub mod adagrad;
pub mod adam;
pub mod lion;
pub mod muon;
pub mod rmsprop;
pub mod sgd;
