//! The random bits of stochastic rounding (`bf16_stochastic_round`): a counter-based stream, so
//! that every element's draw is a pure function of where it is, and the fused step, the
//! tensor-op reference and a NumPy transcription (`tools/reference/bf16_params.py`) draw the same.
//!
//! torchao draws its bits with `torch.randint` from torch's global generator: a stream whose
//! draws depend on everything drawn before, on the device and on the order of kernels. Here
//! the 16 bits of element `i` of a parameter at step `t` are those of SplitMix64 (Steele, Lea
//! and Flood, 2014) at position `i + 1` of the stream keyed by `(seed, parameter, t)`
//! ([`key`], [`bits16`]). The parameter's number is its stream: the order in which the
//! optimizer first stepped it ([`Streams`]), kept in its state so that a resumed run draws
//! what the uninterrupted run would have.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::{Device, Tensor, TensorData};

/// SplitMix64's increment, ⌊2⁶⁴/φ⌋ (odd).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (its finaliser): a bijection of u64 that mixes every input bit
/// into every output bit.
#[inline(always)]
pub fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of one parameter's draws at step `t` (1-based): the seed, the parameter's stream and
/// the step, mixed in turn.
pub fn key(seed: u64, stream: u64, t: u64) -> u64 {
    mix(mix(mix(seed.wrapping_add(GOLDEN)) ^ stream) ^ t)
}

/// The draw of element `index` under `key`: the top 16 bits of SplitMix64's output at position
/// `index + 1` of the stream seeded with `key`, a whole number in [0, 2¹⁶).
#[inline(always)]
pub fn bits16(key: u64, index: u64) -> u32 {
    (mix(key.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN))) >> 48) as u32
}

/// [`bits16`] of every element of a tensor of `shape`, row-major, as an f32 tensor (each draw
/// is exact in f32): the tensor-op reference's input to
/// [`round_stochastic`](crate::torch_ops::bf16::round_stochastic).
pub fn bits16_tensor<const D: usize>(key: u64, shape: [usize; D], device: &Device) -> Tensor<D> {
    let count = shape.iter().product::<usize>() as u64;
    let draws: Vec<f32> = (0..count).map(|i| bits16(key, i) as f32).collect();
    Tensor::from_data(TensorData::new(draws, shape), device)
}

/// The streams an optimizer hands out: the next parameter to start gets the next number, so
/// that parameters stepped in the same order (burn visits a module's parameters in a fixed
/// order) draw the same bits run after run. Clones share the count.
#[derive(Clone, Debug, Default)]
pub struct Streams(Arc<AtomicU64>);

impl Streams {
    /// A new parameter's stream.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    /// Records that `stream` is taken (a state loaded from a checkpoint), so that a parameter
    /// that starts after a resume gets a stream of its own.
    pub fn taken(&self, stream: u64) {
        self.0
            .fetch_max(stream.saturating_add(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64's published first outputs for seed 0 (the reference C code's `next()` called
    /// three times): [`bits16`] takes position `index + 1` of that stream.
    #[test]
    fn bits16_is_the_top_of_splitmix64s_stream() {
        let outputs = [
            0xE220_A839_7B1D_CDAFu64,
            0x6E78_9E6A_A1B9_65F4,
            0x06C4_5D18_8009_454F,
        ];
        for (index, output) in outputs.into_iter().enumerate() {
            assert_eq!(bits16(0, index as u64), (output >> 48) as u32);
        }
    }

    /// The draws are uniform on [0, 2¹⁶): over 2¹⁸ draws of one key, each of 16 equal bins holds
    /// its 2¹⁴ within 5σ (σ = √(2¹⁴·15/16) ≈ 124), and streams differ.
    #[test]
    fn draws_fill_sixteen_bins_evenly_and_streams_differ() {
        let key = key(7, 3, 11);
        let mut bins = [0u32; 16];
        for i in 0..1u64 << 18 {
            bins[(bits16(key, i) >> 12) as usize] += 1;
        }
        for count in bins {
            assert!((f64::from(count) - 16384.0).abs() < 5.0 * 124.0, "{bins:?}");
        }
        assert_ne!(super::key(7, 3, 11), super::key(7, 4, 11));
        assert_ne!(super::key(7, 3, 11), super::key(8, 3, 11));
        assert_ne!(super::key(7, 3, 11), super::key(7, 3, 12));
    }

    /// A stream loaded from a checkpoint is never handed out again.
    #[test]
    fn a_taken_stream_is_skipped() {
        let streams = Streams::default();
        assert_eq!(streams.next(), 0);
        streams.taken(5);
        assert_eq!(streams.next(), 6);
        streams.taken(2);
        assert_eq!(streams.next(), 7);
    }
}
