//! bitsandbytes' blockwise quantization: its dynamic maps, blocks of 256 elements with one absmax
//! each, and the nearest-code search of its CUDA kernels (`quantize_2D` in csrc/kernels.cu), on
//! one value (for the fused CPU steps) and on tensors (for the reference steps). Shared by the
//! 8-bit optimizers (`adam8bit`, `lion8bit`).

use burn::tensor::kind::Basic;
use burn::tensor::{Bool, DType, Device, Int, Shape, Tensor, TensorData};

use super::layout::Codes;

/// Elements per quantization block: bitsandbytes' `BLOCKSIZE_2STATE` (csrc/ops.cu), the block size
/// its 8-bit blockwise optimizers use on every device.
pub const BLOCK: usize = 256;

/// The code a padding element of the last, partial block holds in the first-moment state: cub's
/// `BlockLoad` fills the kernel's registers past the end with 128 (and the second moment with 0,
/// the gradient with 0.0), and the kernel takes those padding values into the block's absmax.
pub const PAD_CODE1: u8 = 128;

/// `bitsandbytes.functional.create_dynamic_map(signed=True)` (bitsandbytes 0.50.2), as f32 bits:
/// the map of the first moment. 127 magnitudes in seven decades from 5.5e-7 to 0.993, each with
/// both signs, then 0 and 1, sorted; code 127 is 0 and code 255 is 1 (there is no −1). The replay
/// fixtures record the map bitsandbytes gave, and a test compares it with this one bit for bit.
pub const DYNAMIC_SIGNED: [u32; 256] = [
    0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
    0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
    0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
];

/// `bitsandbytes.functional.create_dynamic_map(signed=False)` (bitsandbytes 0.50.2), as f32 bits:
/// the map of the second moment. 254 magnitudes in seven decades from 3.25e-7 to 0.996, then 0 and
/// 1, sorted; code 0 is 0.
pub const DYNAMIC_UNSIGNED: [u32; 256] = [
    0x00000000, 0x34ae7baa, 0x35500998, 0x360e9b38, 0x3692ccf6, 0x36de4c51, 0x3714e5d5, 0x3783126e,
    0x37e171a0, 0x381fe868, 0x384f1800, 0x387e479a, 0x3896bb99, 0x38ae5364, 0x38c5eb31, 0x3906594b,
    0x394154ca, 0x397c5049, 0x399ba5e4, 0x39b923a2, 0x39d6a163, 0x39f41f22, 0x3a08ce71, 0x3a178d50,
    0x3a264c30, 0x3a350b10, 0x3a43c9ef, 0x3a5288d0, 0x3a6147af, 0x3a70068e, 0x3a7ec56e, 0x3a958106,
    0x3aba5e35, 0x3adf3b64, 0x3b020c4a, 0x3b147ae1, 0x3b26e978, 0x3b395810, 0x3b4bc6a7, 0x3b5e3540,
    0x3b70a3d7, 0x3b818937, 0x3b8ac082, 0x3b93f7cf, 0x3b9d2f1a, 0x3ba66666, 0x3baf9db2, 0x3bb8d4fd,
    0x3bc20c4a, 0x3bcb4395, 0x3bd47ae1, 0x3bddb22e, 0x3be6e978, 0x3bf020c5, 0x3bf9580f, 0x3c0147ae,
    0x3c05e354, 0x3c0a7ef9, 0x3c0f1aa0, 0x3c13b645, 0x3c1851eb, 0x3c1ced92, 0x3c218937, 0x3c2f5c2a,
    0x3c466667, 0x3c5d70a3, 0x3c747ae2, 0x3c85c28f, 0x3c9147af, 0x3c9ccccd, 0x3ca851eb, 0x3cb3d70b,
    0x3cbf5c29, 0x3ccae147, 0x3cd66667, 0x3ce1eb87, 0x3ced70a3, 0x3cf8f5c3, 0x3d023d70, 0x3d080000,
    0x3d0dc28f, 0x3d13851f, 0x3d1947af, 0x3d1f0a3d, 0x3d24cccd, 0x3d2a8f5c, 0x3d3051eb, 0x3d36147b,
    0x3d3bd70a, 0x3d41999a, 0x3d475c28, 0x3d4d1eb8, 0x3d52e147, 0x3d58a3d7, 0x3d5e6667, 0x3d6428f7,
    0x3d69eb87, 0x3d6fae15, 0x3d7570a3, 0x3d7b3333, 0x3d807ae2, 0x3d835c2a, 0x3d863d71, 0x3d891eb8,
    0x3d8c0000, 0x3d8ee148, 0x3d91c290, 0x3d94a3d7, 0x3d97851f, 0x3d9a6667, 0x3d9d47af, 0x3da028f6,
    0x3da30a3e, 0x3da5eb85, 0x3da8cccd, 0x3dabae15, 0x3dae8f5c, 0x3db170a4, 0x3db451eb, 0x3db73333,
    0x3dba147b, 0x3dbcf5c3, 0x3dbfd70b, 0x3dc2b852, 0x3dc5999a, 0x3dc87ae2, 0x3dcb5c29, 0x3dd40000,
    0x3de26666, 0x3df0cccd, 0x3dff3333, 0x3e06cccc, 0x3e0e0000, 0x3e153334, 0x3e1c6666, 0x3e23999a,
    0x3e2acccc, 0x3e320000, 0x3e393334, 0x3e406666, 0x3e47999a, 0x3e4ecccc, 0x3e560000, 0x3e5d3334,
    0x3e646666, 0x3e6b999a, 0x3e72cccc, 0x3e7a0000, 0x3e809999, 0x3e843333, 0x3e87cccd, 0x3e8b6666,
    0x3e8f0000, 0x3e92999a, 0x3e963333, 0x3e99cccc, 0x3e9d6666, 0x3ea10000, 0x3ea4999a, 0x3ea83333,
    0x3eabcccc, 0x3eaf6666, 0x3eb30000, 0x3eb6999a, 0x3eba3333, 0x3ebdcccc, 0x3ec16666, 0x3ec50000,
    0x3ec8999a, 0x3ecc3333, 0x3ecfcccc, 0x3ed36666, 0x3ed70000, 0x3eda999a, 0x3ede3333, 0x3ee1cccc,
    0x3ee56666, 0x3ee90000, 0x3eec999a, 0x3ef03333, 0x3ef3cccc, 0x3ef76666, 0x3efb0000, 0x3efe9999,
    0x3f01199a, 0x3f02e666, 0x3f04b333, 0x3f068000, 0x3f084ccc, 0x3f0a199a, 0x3f0be666, 0x3f0db334,
    0x3f0f8000, 0x3f114ccd, 0x3f13199a, 0x3f14e666, 0x3f16b334, 0x3f188000, 0x3f1a4ccd, 0x3f1c199a,
    0x3f1de666, 0x3f1fb334, 0x3f218000, 0x3f234ccd, 0x3f25199a, 0x3f26e666, 0x3f28b334, 0x3f2a8000,
    0x3f2c4ccd, 0x3f2e199a, 0x3f2fe666, 0x3f31b334, 0x3f338000, 0x3f354ccd, 0x3f37199a, 0x3f38e666,
    0x3f3ab334, 0x3f3c8000, 0x3f3e4ccd, 0x3f40199a, 0x3f41e666, 0x3f43b334, 0x3f458000, 0x3f474ccc,
    0x3f49199a, 0x3f4ae666, 0x3f4cb334, 0x3f4e8000, 0x3f504ccc, 0x3f52199a, 0x3f53e666, 0x3f55b334,
    0x3f578000, 0x3f594ccc, 0x3f5b199a, 0x3f5ce666, 0x3f5eb334, 0x3f608000, 0x3f624ccc, 0x3f64199a,
    0x3f65e666, 0x3f67b334, 0x3f698000, 0x3f6b4ccc, 0x3f6d199a, 0x3f6ee666, 0x3f70b334, 0x3f728000,
    0x3f744ccc, 0x3f76199a, 0x3f77e666, 0x3f79b334, 0x3f7b8000, 0x3f7d4ccc, 0x3f7f199a, 0x3f800000,
];

/// A map's codes as f32 values.
pub const fn values(bits: &[u32; 256]) -> [f32; 256] {
    let mut values = [0f32; 256];
    let mut i = 0;
    while i < 256 {
        values[i] = f32::from_bits(bits[i]);
        i += 1;
    }
    values
}

/// The signed map's values ([`DYNAMIC_SIGNED`]): the CPU steps' look-ups, the code tables, the
/// kernels' buffers.
pub(crate) static SIGNED: [f32; 256] = values(&DYNAMIC_SIGNED);

/// The unsigned map's values ([`DYNAMIC_UNSIGNED`]), as [`SIGNED`] is the signed one's.
pub(crate) static UNSIGNED: [f32; 256] = values(&DYNAMIC_UNSIGNED);

/// Whether `x` counts as negative for the first moment's sign fix: below 0, or −0. A NaN counts as
/// positive, as CUDA's canonical NaN (sign bit clear) does in the kernel's `signbit`; on x86 a NaN
/// made by `0 · ∞` has its sign bit set, so reading the bit would make the CPU differ from CUDA.
#[inline(always)]
pub fn sign_bit(x: f32) -> bool {
    x < 0.0 || (x == 0.0 && x.is_sign_negative())
}

/// The code of `map` nearest to `x` (a state divided by its block's absmax, in [−1, 1]) as the
/// kernels' `quantize_2D<SIGNED>` finds it: a binary search over codes 127, 63 or 191, …, then the
/// nearer of the last code and its neighbour on the side of `x`, the midpoint computed in f32.
/// Past the ends the neighbours are −1 (signed) or 0 (unsigned) below and 1 above, which are not
/// codes; a NaN goes to code 0, as every comparison with it is false.
#[inline(always)]
pub fn quantize(map: &[f32; 256], x: f32, signed: bool) -> u8 {
    let (mut pivot, mut upper_pivot, mut lower_pivot) = (127usize, 255usize, 0usize);
    let (mut lower, mut upper) = (if signed { -1.0f32 } else { 0.0 }, 1.0f32);
    let mut val = map[pivot];
    let mut i = 64;
    while i > 0 {
        if x > val {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = map[pivot];
        i >>= 1;
    }
    let code = if x > val {
        if x > (upper + val) * 0.5 {
            upper_pivot
        } else {
            pivot
        }
    } else if x < (lower + val) * 0.5 {
        lower_pivot
    } else {
        pivot
    };
    code as u8
}

/// The first moment's code: [`quantize`] on `s1 / absmax`, then, if the code's value has the
/// other sign than `s1`, the next code towards `s1`'s sign (wrapping as the kernel's unsigned char
/// does), so that a small moment does not change direction through quantization.
#[inline(always)]
pub fn quantize_signed_keeping_sign(map: &[f32; 256], s1: f32, absmax: f32) -> u8 {
    let code = quantize(map, s1 / absmax, true);
    if sign_bit(map[code as usize]) == sign_bit(s1) {
        code
    } else if s1 > 0.0 {
        code.wrapping_add(1)
    } else {
        code.wrapping_sub(1)
    }
}

/// A code search as a table look-up, for the fused CPU steps: [`quantize`] on the unsigned map,
/// or [`quantize_signed_keeping_sign`] on the signed one, the same code for every f32 but NaN,
/// without the search's eight dependent, unpredictable branches.
///
/// Both are monotone in `x` (a NaN aside): `quantize`'s code is the number of the map's 255
/// midpoints below `x`, and the sign fix only moves the values in (midpoint, −0] from code 127
/// (+0) down to 126. So are f32 values in the order of [`order_key`], an integer. The table has
/// one entry per 2¹⁶ consecutive keys (per value of the key's top 16 bits: sign, exponent and 7
/// mantissa bits): the code at the first key of the bucket, and the key inside it from which the
/// code is one more, if there is one. The maps' codes are far enough apart (the nearest two
/// boundaries are 88 474 keys apart, near 1 in the unsigned map) that no bucket holds two;
/// [`CodeTable::new`] checks it. The boundaries are found by bisection on the search itself, so
/// the table encodes it and nothing re-derived from it; the tests compare the two on every
/// boundary and around it, on a sweep of all f32, and exhaustively when asked.
pub struct CodeTable {
    /// Per bucket: the code at its first key in bits 16..24, the last key (its low 16 bits)
    /// before the code goes up by one in bits 0..16, or 0xffff if it does not.
    entries: Box<[u32; 1 << 16]>,
}

/// An integer in the order of f32 values: −NaN < −∞ < … < −0 < +0 < … < +∞ < +NaN (−0 just below
/// +0, which [`quantize`] does not tell apart: no midpoint is 0).
#[inline(always)]
pub fn order_key(x: f32) -> u32 {
    let bits = x.to_bits();
    // Negative: every bit flipped; positive: the sign bit set.
    bits ^ (((bits as i32) >> 31) as u32 | 0x8000_0000)
}

/// The f32 whose [`order_key`] is `key`.
fn from_order_key(key: u32) -> f32 {
    f32::from_bits(if key & 0x8000_0000 != 0 {
        key ^ 0x8000_0000
    } else {
        !key
    })
}

impl CodeTable {
    /// The table of `search`, a code search monotone in `x` from −∞ to +∞.
    ///
    /// # Panics
    /// If a bucket of 2¹⁶ keys holds two code boundaries, or `search` is not monotone at the
    /// bisection's probes: neither happens for bitsandbytes' dynamic maps (tested).
    fn new(search: impl Fn(f32) -> u8) -> Self {
        let code = |key: u32| search(from_order_key(key));
        // The non-NaN keys: −∞ to +∞.
        let (first, last) = (order_key(f32::NEG_INFINITY), order_key(f32::INFINITY));
        let (lowest, highest) = (code(first), code(last));
        // boundaries[j]: the first key whose code is lowest + j + 1.
        let boundaries: Vec<u32> = (lowest + 1..=highest)
            .map(|target| {
                let (mut below, mut at) = (first, last);
                while at - below > 1 {
                    let mid = below + (at - below) / 2;
                    if code(mid) >= target {
                        at = mid;
                    } else {
                        below = mid;
                    }
                }
                assert!(
                    code(below) < target && code(at) == target,
                    "monotone, by one"
                );
                at
            })
            .collect();
        assert!(boundaries.windows(2).all(|w| w[0] < w[1]), "monotone");
        let mut entries: Box<[u32; 1 << 16]> = vec![0; 1 << 16]
            .into_boxed_slice()
            .try_into()
            .expect("2^16 entries");
        // boundaries[..passed]: at or before the bucket's first key.
        let mut passed = 0;
        for (bucket, entry) in (0u32..).zip(entries.iter_mut()) {
            let start = bucket << 16;
            while boundaries.get(passed).is_some_and(|&b| b <= start) {
                passed += 1;
            }
            let in_bucket = |j: usize| boundaries.get(j).filter(|&&b| b >> 16 == bucket);
            assert!(
                in_bucket(passed + 1).is_none(),
                "two code boundaries in bucket {bucket:#06x}"
            );
            let base = u32::from(lowest) + passed as u32;
            *entry = base << 16 | in_bucket(passed).map_or(0xffff, |&b| (b & 0xffff) - 1);
        }
        Self { entries }
    }

    /// The table's code of `x`, which is not NaN: one value, for the tests.
    #[cfg(test)]
    fn code(&self, x: f32) -> u8 {
        let key = order_key(x);
        Self::finish(key, self.entries[(key >> 16) as usize]) as u8
    }

    /// The code of a key from its bucket's entry, as a u32.
    #[inline(always)]
    fn finish(key: u32, entry: u32) -> u32 {
        (entry >> 16) + u32::from(key & 0xffff > entry & 0xffff)
    }

    /// The code of every `s / absmax` into `codes` (`s` a block of moments, `absmax` its
    /// absmax); a NaN quotient (whose code the table does not know: the sign fix's depends on the
    /// moment) takes `nan(i)`. The quotients' keys and the codes are computed in loops the
    /// compiler vectorizes, apart from the look-ups between them; `nan` runs only for a block
    /// that has a NaN quotient (a block of zeros, 0/0).
    #[inline(always)]
    pub fn codes<const N: usize>(
        &self,
        s: &[f32; N],
        absmax: f32,
        codes: &mut [u8; N],
        nan: impl Fn(usize) -> u8,
    ) {
        let mut keys = [0u32; N];
        for (key, &s) in keys.iter_mut().zip(s) {
            *key = order_key(s / absmax);
        }
        let mut entries = [0u32; N];
        for (entry, &key) in entries.iter_mut().zip(&keys) {
            *entry = self.entries[(key >> 16) as usize];
        }
        for i in 0..N {
            codes[i] = Self::finish(keys[i], entries[i]) as u8;
        }
        // NaN keys lie below −∞'s and above +∞'s.
        let (low, high) = (order_key(f32::NEG_INFINITY), order_key(f32::INFINITY));
        if keys
            .iter()
            .fold(false, |any, &k| any | (k < low) | (k > high))
        {
            for i in 0..N {
                if (s[i] / absmax).is_nan() {
                    codes[i] = nan(i);
                }
            }
        }
    }
}

/// The table of [`quantize_signed_keeping_sign`] on [`DYNAMIC_SIGNED`] for `s1 / absmax` = `x`:
/// built for absmax 1, whose quotient is `s1` itself, it serves every absmax, as the sign fix reads
/// only `s1`'s sign (and whether it is above 0 where that differs from the quotient's: `s1 > 0`
/// with a quotient of +0, whose code 127 the fix keeps), and the quotient has `s1`'s sign unless it
/// is NaN. Built on first use (256 KiB).
pub fn signed_table() -> &'static CodeTable {
    static TABLE: std::sync::LazyLock<CodeTable> = std::sync::LazyLock::new(|| {
        CodeTable::new(|x| quantize_signed_keeping_sign(&SIGNED, x, 1.0))
    });
    &TABLE
}

/// The table of [`quantize`] on [`DYNAMIC_UNSIGNED`], built on first use (256 KiB).
pub fn unsigned_table() -> &'static CodeTable {
    static TABLE: std::sync::LazyLock<CodeTable> = std::sync::LazyLock::new(|| {
        CodeTable::new(|x| quantize(&UNSIGNED, x, false))
    });
    &TABLE
}

// The tensor forms of the above, for the reference steps, on `[blocks, 256]` tensors.

/// A parameter laid out as the reference steps compute on it: flattened and padded to whole
/// blocks, `[blocks, 256]`, so that each block's absmax is a reduction over its row. The padding
/// is what the kernels' loads put there: gradient 0, first-moment code [`PAD_CODE1`], second 0.
pub(crate) struct Rows {
    shape: Shape,
    n: usize,
    blocks: usize,
    device: Device,
    float: DType,
    int: DType,
}

impl Rows {
    /// The layout of `theta`.
    pub(crate) fn of<const D: usize>(theta: &Tensor<D>) -> Self {
        let shape = theta.shape();
        let n = shape.num_elements();
        let device = theta.device();
        Self {
            int: Tensor::<1, Int>::zeros([1], &device).dtype(),
            float: theta.dtype(),
            blocks: n.div_ceil(BLOCK),
            n,
            shape,
            device,
        }
    }

    /// A map's values, a `[256]` tensor on the parameter's device.
    pub(crate) fn map(&self, bits: &[u32; 256]) -> Tensor<1> {
        let values = TensorData::new(values(bits).to_vec(), [256]);
        Tensor::from_data(values, (&self.device, self.float))
    }

    /// `x` (the gradient), as rows padded with 0.
    pub(crate) fn floats<const D: usize>(&self, x: Tensor<D>) -> Tensor<2> {
        let fill = |pad| Tensor::zeros([pad], (&self.device, self.float));
        self.padded(x.reshape([self.n]), fill)
            .reshape([self.blocks, BLOCK])
    }

    /// `flat`, of the parameter's n elements, followed by `fill(pad)` up to whole blocks.
    fn padded<K: Basic>(&self, flat: Tensor<1, K>, fill: impl Fn(usize) -> Tensor<1, K>) -> Tensor<1, K> {
        match self.blocks * BLOCK - self.n {
            0 => flat,
            pad => Tensor::cat(vec![flat, fill(pad)], 0),
        }
    }

    /// A moment dequantized, `map[code]·absmax` per row, its codes padded with `pad`.
    pub(crate) fn dequantize<const D: usize>(
        &self,
        map: &Tensor<1>,
        codes: Codes<D>,
        pad: u8,
        absmax: Tensor<1>,
    ) -> Tensor<2> {
        let fill = |n| Tensor::full([n], pad, (&self.device, self.int));
        let codes = self.padded(codes.into_flat(self.int), fill);
        map.clone()
            .select(0, codes)
            .reshape([self.blocks, BLOCK])
            .mul(absmax.reshape([self.blocks, 1]))
    }

    /// The parameter's own elements of rows, in its shape.
    pub(crate) fn own<const D: usize, K: Basic>(&self, x: Tensor<2, K>) -> Tensor<D, K> {
        self.flat(x).reshape(self.shape.clone())
    }

    /// The parameter's own elements of rows, flat.
    fn flat<K: Basic>(&self, x: Tensor<2, K>) -> Tensor<1, K> {
        x.reshape([self.blocks * BLOCK]).slice(0..self.n)
    }

    /// The codes of a moment's new rows `s` and the absmax of each row (as `[blocks]`): the
    /// kernels' search of `map` on `s / absmax`, with the first moment's sign fix if `signed`.
    pub(crate) fn quantize<const D: usize>(
        &self,
        map: &Tensor<1>,
        s: Tensor<2>,
        signed: bool,
    ) -> (Codes<D>, Tensor<1>) {
        let absmax = block_absmax(s.clone());
        let codes = quantize_rows(map, s.clone().div(absmax.clone()), signed, &self.device);
        let codes = match signed {
            true => keep_sign(map, codes, s),
            false => codes,
        };
        let codes = Codes::from_flat(self.flat(codes), self.shape.clone());
        (codes, absmax.reshape([self.blocks]))
    }
}

/// The absmax of each row, as the kernel reduces it with `fmaxf` from −FLT_MAX: a NaN never
/// wins, and a row of NaN gives −FLT_MAX.
pub(crate) fn block_absmax(s: Tensor<2>) -> Tensor<2> {
    let nan = s.clone().is_nan();
    s.abs().mask_fill(nan, f32::MIN).max_dim(1)
}

/// [`quantize`] on every element of `x`: the same binary search, on tensors.
pub(crate) fn quantize_rows(
    map: &Tensor<1>,
    x: Tensor<2>,
    signed: bool,
    device: &Device,
) -> Tensor<2, Int> {
    let shape = x.shape();
    let float = x.dtype();
    let look_up = |pivot: &Tensor<2, Int>| {
        map.clone()
            .select(0, pivot.clone().flatten(0, 1))
            .reshape(shape.clone())
    };
    let mut pivot = Tensor::<2, Int>::full(shape.clone(), 127, device);
    let mut upper_pivot = Tensor::<2, Int>::full(shape.clone(), 255, device);
    let mut lower_pivot = Tensor::<2, Int>::zeros(shape.clone(), device);
    let mut lower = Tensor::<2>::full(
        shape.clone(),
        if signed { -1.0 } else { 0.0 },
        (device, float),
    );
    let mut upper = Tensor::<2>::full(shape.clone(), 1.0, (device, float));
    let mut val = look_up(&pivot);
    for i in [64, 32, 16, 8, 4, 2, 1] {
        let above: Tensor<2, Bool> = x.clone().greater(val.clone());
        lower_pivot = lower_pivot.mask_where(above.clone(), pivot.clone());
        lower = lower.mask_where(above.clone(), val.clone());
        upper_pivot = pivot.clone().mask_where(above.clone(), upper_pivot);
        upper = val.clone().mask_where(above.clone(), upper);
        // ±i: +i above, −i otherwise.
        pivot = pivot.add(above.int().mul_scalar(2 * i).sub_scalar(i));
        val = look_up(&pivot);
    }
    let above = x.clone().greater(val.clone());
    let towards_upper = x.clone().greater(upper.add(val.clone()).mul_scalar(0.5));
    let towards_lower = x.lower(lower.add(val).mul_scalar(0.5));
    let up = pivot.clone().mask_where(towards_upper, upper_pivot);
    let down = pivot.mask_where(towards_lower, lower_pivot);
    down.mask_where(above, up)
}

/// The first moment's sign fix ([`quantize_signed_keeping_sign`]) on tensors.
pub(crate) fn keep_sign(map: &Tensor<1>, codes: Tensor<2, Int>, m: Tensor<2>) -> Tensor<2, Int> {
    let shape = codes.shape();
    let value = map
        .clone()
        .select(0, codes.clone().flatten(0, 1))
        .reshape(shape);
    let flipped = sign_bits(value).not_equal(sign_bits(m.clone()));
    let step = m.greater_elem(0.0).int().mul_scalar(2).sub_scalar(1);
    // (c ± 1) mod 256, as the kernel's unsigned char wraps.
    let moved = codes
        .clone()
        .add(step)
        .add_scalar(256)
        .remainder_scalar(256);
    codes.mask_where(flipped, moved)
}

/// [`sign_bit`] on tensors: below 0, or −0 (whose reciprocal is −∞); NaN is positive.
fn sign_bits(x: Tensor<2>) -> Tensor<2, Bool> {
    let zero = x.clone().equal_elem(0.0);
    let negative_zero = zero.bool_and(x.clone().recip().lower_elem(0.0));
    x.lower_elem(0.0).bool_or(negative_zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The maps have the shape `create_dynamic_map` gives them: sorted, 0 and 1 present, and each
    /// decade's magnitudes the midpoints of a linear split of [0.1, 1] (within f32 rounding of
    /// bitsandbytes' float32 linspace).
    #[test]
    fn the_maps_are_bitsandbytes_dynamic_maps() {
        let (signed, unsigned) = (values(&DYNAMIC_SIGNED), values(&DYNAMIC_UNSIGNED));
        for map in [&signed, &unsigned] {
            assert!(map.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
            assert_eq!(map[255], 1.0);
        }
        assert_eq!((signed[127], unsigned[0]), (0.0, 0.0));
        // Signed: 2^k magnitudes in decade k (10^(k−6)·[0.1, 1]), k = 0…6.
        let mut expected: Vec<f64> = (0..7)
            .flat_map(|k| {
                let n = 1usize << k;
                (0..n).map(move |j| {
                    let a = 0.1 + 0.9 * j as f64 / n as f64;
                    let b = 0.1 + 0.9 * (j + 1) as f64 / n as f64;
                    10f64.powi(k - 6) * (a + b) / 2.0
                })
            })
            .collect();
        expected.sort_by(f64::total_cmp);
        for (code, want) in signed[128..255].iter().zip(&expected) {
            assert!(
                (f64::from(*code) - want).abs() <= want * 1e-6,
                "{code} vs {want}"
            );
        }
        assert_eq!(signed[0], -signed[254]);
    }

    /// Values on codes quantize to themselves; between two codes, to the nearer; the sign fix moves
    /// a small negative moment (−0 included) that rounds to code 127 (+0, the sign of a positive
    /// moment) to the smallest negative code, and leaves a small positive one at 0.
    #[test]
    fn quantize_finds_the_nearest_code() {
        let map = values(&DYNAMIC_SIGNED);
        for (code, &value) in map.iter().enumerate() {
            assert_eq!(quantize(&map, value, true) as usize, code, "{value}");
        }
        let (a, b) = (map[200], map[201]);
        assert_eq!(quantize(&map, a + (b - a) * 0.4, true), 200);
        assert_eq!(quantize(&map, a + (b - a) * 0.6, true), 201);
        assert_eq!(quantize(&map, 1e-9, true), 127);
        assert_eq!(quantize_signed_keeping_sign(&map, 1e-9, 1.0), 127);
        assert_eq!(quantize_signed_keeping_sign(&map, -1e-9, 1.0), 126);
        assert_eq!(quantize_signed_keeping_sign(&map, 0.0, 1.0), 127);
        assert_eq!(quantize_signed_keeping_sign(&map, -0.0, 1.0), 126);
    }

    /// The two tables and the searches they stand for, on f32 that are not NaN.
    fn tables() -> [(
        &'static str,
        &'static CodeTable,
        Box<dyn Fn(f32) -> u8 + Sync>,
    ); 2] {
        let (signed, unsigned) = (values(&DYNAMIC_SIGNED), values(&DYNAMIC_UNSIGNED));
        [
            (
                "signed, keeping the sign",
                signed_table(),
                Box::new(move |x| quantize_signed_keeping_sign(&signed, x, 1.0)),
            ),
            (
                "unsigned",
                unsigned_table(),
                Box::new(move |x| quantize(&unsigned, x, false)),
            ),
        ]
    }

    /// The f32 whose keys are within `radius` of `x`'s, NaN keys left out.
    fn around(x: f32, radius: u32) -> impl Iterator<Item = f32> {
        let key = order_key(x);
        (key.saturating_sub(radius)..=key.saturating_add(radius))
            .map(from_order_key)
            .filter(|x| !x.is_nan())
    }

    #[test]
    fn order_keys_sort_as_the_values_do() {
        let ordered = [
            f32::NEG_INFINITY,
            -1.0,
            -f32::MIN_POSITIVE,
            -1e-45,
            -0.0,
            0.0,
            1e-45,
            f32::MIN_POSITIVE,
            1.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for w in ordered.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{} {}", w[0], w[1]);
        }
        assert_eq!(order_key(-0.0) + 1, order_key(0.0));
        for x in [0.0, -0.0, 1.0, -3.5e-7, f32::INFINITY, f32::NAN, -f32::NAN] {
            assert_eq!(from_order_key(order_key(x)).to_bits(), x.to_bits());
        }
    }

    /// The tables give the searches' codes where the code changes and around it: 64 keys either
    /// side of every code's value, of every midpoint of two codes as the kernel computes it, and
    /// of the first key of every bucket; at the special values; and on a sweep of every 4099th
    /// f32 of all 2³². [`the_code_tables_equal_the_searches_on_every_f32`] checks the rest.
    #[test]
    fn the_code_tables_equal_the_searches_at_every_boundary_and_on_a_sweep() {
        for (name, table, search) in tables() {
            let check = |x: f32| {
                assert_eq!(
                    table.code(x),
                    search(x),
                    "{name}: x={x:e} ({:#010x})",
                    x.to_bits()
                );
            };
            for map in [values(&DYNAMIC_SIGNED), values(&DYNAMIC_UNSIGNED)] {
                let midpoints = map.windows(2).map(|w| (w[0] + w[1]) * 0.5);
                for x in map.iter().copied().chain(midpoints).chain([-1.0, 0.0]) {
                    around(x, 64).for_each(check);
                }
            }
            for bucket in 0..1u32 << 16 {
                around(from_order_key(bucket << 16), 2).for_each(check);
            }
            let specials = [f32::MIN, f32::MAX, f32::EPSILON, 1e-45, f32::MIN_POSITIVE];
            for x in specials.into_iter().flat_map(|x| [x, -x]) {
                check(x);
            }
            let sweep = (0..=u32::MAX).step_by(4099).map(from_order_key);
            sweep.filter(|x| !x.is_nan()).for_each(check);
        }
    }

    /// `codes` on blocks of quotients `s1 / absmax`, as the fused steps call it, equals the
    /// searches on `s1` and `absmax`, NaN quotients included (a block of zeros: 0/0; ∞/∞), with
    /// the searches themselves for the NaN.
    #[test]
    fn codes_of_a_block_equal_the_searches_on_its_quotients() {
        let (signed, unsigned) = (values(&DYNAMIC_SIGNED), values(&DYNAMIC_UNSIGNED));
        let moments: Vec<f32> = (0..=u32::MAX)
            .step_by(65_537)
            .map(from_order_key)
            .chain([
                0.0,
                -0.0,
                1e-9,
                -1e-9,
                1.0,
                -1.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
            ])
            .collect();
        for block in moments.chunks(BLOCK) {
            let mut s = [0f32; BLOCK];
            s[..block.len()].copy_from_slice(block);
            let magnitude = s.iter().fold(f32::MIN, |a, x| a.max(x.abs()));
            for absmax in [0.0, magnitude, 1e-30, 1e30, f32::INFINITY] {
                let (mut codes1, mut codes2) = ([0u8; BLOCK], [0u8; BLOCK]);
                let keep_sign = |i: usize| quantize_signed_keeping_sign(&signed, s[i], absmax);
                signed_table().codes(&s, absmax, &mut codes1, keep_sign);
                let unsigned_code = |i: usize| quantize(&unsigned, s[i] / absmax, false);
                unsigned_table().codes(&s, absmax, &mut codes2, unsigned_code);
                for i in 0..BLOCK {
                    let what = format!("{:e} / {absmax:e}", s[i]);
                    assert_eq!(codes1[i], keep_sign(i), "signed: {what}");
                    assert_eq!(codes2[i], unsigned_code(i), "unsigned: {what}");
                }
            }
        }
    }

    /// Every f32 but NaN, both tables: a minute of CPU, so run on request
    /// (`cargo test --release --workspace --features wgpu --lib -- --ignored every_f32`).
    #[test]
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    #[ignore = "a minute: all 2^32 f32 through the binary search, twice"]
    fn the_code_tables_equal_the_searches_on_every_f32() {
        use rayon::prelude::*;
        for (name, table, search) in tables() {
            let differing = (0..=u16::MAX)
                .into_par_iter()
                .map(|high| {
                    let high = u32::from(high) << 16;
                    (0..=0xffffu32)
                        .map(|low| f32::from_bits(high | low))
                        .filter(|&x| !x.is_nan() && table.code(x) != search(x))
                        .count()
                })
                .sum::<usize>();
            assert_eq!(differing, 0, "{name}");
        }
    }
}
