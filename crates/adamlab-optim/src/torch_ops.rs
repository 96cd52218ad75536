//! torch's tensor operations that adamlab reproduces bit for bit, each named with its rounding:
//!
//! - `…_one_rounding`: `a·b + c` rounded once, as torch's CPU kernels compute `lerp`,
//!   `add(…, alpha)` and `addcmul` (a fused multiply-add per element), emulated through f64;
//! - `…_two_roundings`: the product rounded, then the sum, as two tensor ops compute it (torch's
//!   kernels where they do not fuse, and every GPU shader here);
//! - [`bf16`]: bfloat16 arithmetic, for Muon's Newton–Schulz iteration in torch's dtype.
//!
//! torch's `lerp(start, end, w)` takes one of two forms by the weight, in both policies:
//! `start + w·(end − start)` for |w| < 0.5, else `end − (1 − w)·(end − start)`, with w and
//! `1 − w` in f32.
//!
//! torch 2.15's CPU kernels for `lerp`, `add(…, alpha)` and `addcmul` round `a·b + c` once (a
//! fused multiply-add per element, in the vectorised loops and, compiled with contraction, in the
//! scalar tails too), where two burn tensor ops round `a·b` and then the sum. The two differ by
//! an ulp of `a·b`, which is harmless until `c` cancels most of it: with gradients near 1e6 a
//! first moment of a few hundred keeps only the leading digits, and the replays'
//! `huge-gradients` cases of Adamax, NAdam and RAdam drifted from torch's by up to 3.5e-2
//! (relative) with two roundings; with one they pass at the replay tolerance.

use burn::tensor::{DType, FloatDType, Tensor};

/// Weight decay λ as torch's NAdam and RAdam apply it, returning (θ, g): with `decoupled`,
/// `θ ← θ·(1 − lr·λ)` (the factor a Python float, rounded to f32 by the multiply); otherwise L2,
/// `g ← g + λθ` rounded once, as torch's `g.add(θ, alpha=λ)`. Nothing when λ = 0.
pub fn weight_decay<const D: usize>(
    theta: Tensor<D>,
    g: Tensor<D>,
    lr: f64,
    weight_decay: f64,
    decoupled: bool,
) -> (Tensor<D>, Tensor<D>) {
    match (weight_decay, decoupled) {
        (0.0, _) => (theta, g),
        (_, true) => (theta.mul_scalar(1.0 - lr * weight_decay), g),
        (_, false) => {
            let g = mul_add_scalar_one_rounding(theta.clone(), weight_decay as f32, g);
            (theta, g)
        }
    }
}

/// `a·b + c` rounded once, for a scalar `b`: torch's `c.add(a, alpha=b)`.
///
/// The product of two f32s is exact in f64, so the sum evaluated in f64 and rounded to f32
/// is the fused multiply-add, except where the f64 sum lies exactly halfway between two f32s
/// (double rounding; about one element in 2²⁹). On a device without f64 (wgpu on Metal or
/// WebGPU) it rounds twice, as plain tensor ops do, and agrees with torch to rounding only.
pub fn mul_add_scalar_one_rounding<const D: usize>(a: Tensor<D>, b: f32, c: Tensor<D>) -> Tensor<D> {
    if !in_f64(&c) {
        return a.mul_scalar(b).add(c);
    }
    a.cast(FloatDType::F64)
        .mul_scalar(f64::from(b))
        .add(c.cast(FloatDType::F64))
        .cast(FloatDType::F32)
}

/// `a·b + c` rounded once, for a tensor `b`: torch's `c.addcmul(a, b)` (after its scalar
/// factor, which torch rounds into `a` first).
pub fn mul_add_one_rounding<const D: usize>(a: Tensor<D>, b: Tensor<D>, c: Tensor<D>) -> Tensor<D> {
    if !in_f64(&c) {
        return a.mul(b).add(c);
    }
    a.cast(FloatDType::F64)
        .mul(b.cast(FloatDType::F64))
        .add(c.cast(FloatDType::F64))
        .cast(FloatDType::F32)
}

/// One element of [`mul_add_scalar_one_rounding`] (and of [`mul_add_one_rounding`]), for the
/// fused steps: `a·b + c` rounded once through f64 if `single_rounding` (the tensors' device
/// computes in f64, [`in_f64`]), else twice in f32, as the tensor ops round it.
#[inline(always)]
pub(crate) fn mul_add(a: f32, b: f32, c: f32, single_rounding: bool) -> f32 {
    if single_rounding {
        (f64::from(a) * f64::from(b) + f64::from(c)) as f32
    } else {
        a * b + c
    }
}

#[cfg(cube_kernels)]
pub(crate) use cube::mul_add_vector;

#[cfg(cube_kernels)]
mod cube {
    use cubecl::prelude::*;

    /// [`mul_add`](super::mul_add) on vectors of a CubeCL kernel (a scalar as `Vector::new(b)`).
    #[cube]
    pub(crate) fn mul_add_vector<N: Size>(
        a: Vector<f32, N>,
        b: Vector<f32, N>,
        c: Vector<f32, N>,
        #[comptime] single_rounding: bool,
    ) -> Vector<f32, N> {
        if comptime![single_rounding] {
            let sum = Vector::<f64, N>::cast_from(a) * Vector::<f64, N>::cast_from(b)
                + Vector::<f64, N>::cast_from(c);
            Vector::<f32, N>::cast_from(sum)
        } else {
            a * b + c
        }
    }
}

/// `start.lerp(end, weight)` as torch's CPU kernel computes it: `start + w·(end − start)`
/// for |w| < 0.5, else `end − (end − start)·(1 − w)`, each one fused multiply-add, with w
/// and 1 − w rounded to f32 as the kernel holds them. Both equal `(1 − w)·start + w·end` in
/// exact arithmetic.
pub fn lerp_one_rounding<const D: usize>(start: Tensor<D>, end: Tensor<D>, weight: f64) -> Tensor<D> {
    let w = weight as f32;
    let diff = end.clone().sub(start.clone());
    if w.abs() < 0.5 {
        mul_add_scalar_one_rounding(diff, w, start)
    } else {
        mul_add_scalar_one_rounding(diff, -(1.0 - w), end)
    }
}

/// Whether `t` is f32 on a device that can compute in f64 (so one rounding is possible).
pub fn in_f64<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == DType::F32 && t.device().supports_dtype(FloatDType::F64)
}

/// `start.lerp(end, weight)` with two roundings, as two tensor ops (or torch's kernels that do
/// not fuse) compute it: the weight rounded to f32, then `start + w·(end − start)` if |w| < 0.5,
/// else `end − (end − start)·(1 − w)`.
pub fn lerp_two_roundings<const D: usize>(start: Tensor<D>, end: Tensor<D>, weight: f64) -> Tensor<D> {
    let w = weight as f32;
    let diff = end.clone().sub(start.clone());
    if w.abs() < 0.5 {
        start.add(diff.mul_scalar(w))
    } else {
        end.sub(diff.mul_scalar(1.0 - w))
    }
}

/// bfloat16 arithmetic emulated in f32 tensors, exactly, with operations every burn backend has.
pub mod bf16 {
    use burn::tensor::{Int, Tensor, TensorData};

    /// `x` rounded to the nearest bfloat16, ties to even, as an f32, to the bit as `half`'s
    /// conversion (which burn's cast to bfloat16 calls) and torch's `.to(torch.bfloat16)` round:
    /// overflow goes to infinity, a NaN stays a NaN with its quiet bit set. Written without
    /// branches, so that a loop calling it can be vectorised: adding `0x7FFF` plus the last kept
    /// bit to the f32's bits carries into the kept half exactly when the dropped half is above
    /// one half, or one half with an odd kept half.
    #[inline(always)]
    pub fn round_f32(x: f32) -> f32 {
        let bits = x.to_bits();
        let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) & 0xFFFF_0000;
        let nan = (bits | 0x0040_0000) & 0xFFFF_0000;
        f32::from_bits(if x.is_nan() { nan } else { rounded })
    }

    /// Smallest exponent of a normal f32 (and bfloat16): 2⁻¹²⁶.
    const MIN_EXP: i32 = -126;
    /// Significand bits of bfloat16 after the leading one.
    const MANTISSA_BITS: i32 = 7;

    /// 2ᵏ for k from −126 to 128 (the last one infinite), exact in f32.
    fn powers_of_two(device: &burn::tensor::Device) -> Tensor<1> {
        let powers: Vec<f32> = (MIN_EXP..=128).map(|k| 2f32.powi(k)).collect();
        let count = powers.len();
        Tensor::from_data(TensorData::new(powers, [count]), device)
    }

    /// 2ᵉ for each exponent e in `exponents` (within −126..=128).
    fn pow2(table: &Tensor<1>, exponents: Tensor<1, Int>) -> Tensor<1> {
        table.clone().select(0, exponents.sub_scalar(MIN_EXP))
    }

    /// `x` rounded to the nearest bfloat16, ties to even, as torch's `.to(torch.bfloat16)`.
    ///
    /// With e the exponent of |x| (2ᵉ ≤ |x| < 2ᵉ⁺¹, e ≥ −126), bfloat16 keeps multiples of 2ᵉ⁻⁷:
    /// `round(x·2⁷⁻ᵉ)·2ᵉ⁻⁷`, where both scalings are exact ([`Scaled`]) and `round` is
    /// half-to-even. Overflow goes to infinity, as in torch; a NaN stays a NaN.
    pub fn round<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        let scaled = Scaled::new(x);
        let rounded = scaled.value.clone().round();
        scaled.back(rounded)
    }

    /// `x` rounded to one of its two bfloat16 neighbours at random, as torchao's
    /// `_fp32_to_bf16_sr` rounds: away from zero when `random`, a whole number in [0, 2¹⁶) per
    /// element, is below the 16 bits that bfloat16 drops from x's f32 bits, else towards zero.
    /// Away from zero thus comes with probability (dropped bits)/2¹⁶, the distance to the lower
    /// neighbour in units of the gap: the rounding is unbiased. [`round_stochastic_f32`] does the
    /// same on the bits.
    ///
    /// Scaled by 2⁷⁻ᵉ ([`Scaled`]), x's integer part is the bits bfloat16 keeps and its fraction
    /// times 2¹⁶ the bits it drops (exactly: the scaling and the subtraction are exact). A NaN
    /// stays a NaN; ±∞ stay; the largest f32s round away to ∞ as the bits overflow into the
    /// exponent; −0 stays −0.
    pub fn round_stochastic<const D: usize>(x: Tensor<D>, random: Tensor<D>) -> Tensor<D> {
        let random: Tensor<1> = random.reshape([x.dims().iter().product::<usize>()]);
        let scaled = Scaled::new(x);
        let value = scaled.value.clone();
        let positive = value.clone().greater_equal_elem(0.0);
        let towards_zero = value.clone().floor().mask_where(positive.clone().bool_not(), value.clone().ceil());
        let away = towards_zero
            .clone()
            .add_scalar(1.0)
            .mask_where(positive.bool_not(), towards_zero.clone().sub_scalar(1.0));
        let dropped = value.sub(towards_zero.clone()).abs().mul_scalar(65536.0);
        let rounded = towards_zero.mask_where(random.lower(dropped), away);
        scaled.back(rounded)
    }

    /// `x` rounded stochastically to bfloat16 as [`round_stochastic`], on its bits: `random` is
    /// the whole number in [0, 2¹⁶) drawn for it.
    #[inline(always)]
    pub fn round_stochastic_f32(x: f32, random: u32) -> f32 {
        let bits = x.to_bits();
        let towards_zero = bits & 0xFFFF_0000;
        let rounded = if random < (bits & 0xFFFF) { towards_zero + 0x1_0000 } else { towards_zero };
        let nan = (bits | 0x0040_0000) & 0xFFFF_0000;
        f32::from_bits(if x.is_nan() { nan } else { rounded })
    }

    /// A flattened f32 tensor scaled by 2⁷⁻ᵉ, e the exponent of each element (at least −126,
    /// bfloat16's and f32's smallest normal one): its integer part is what bfloat16 keeps of
    /// it. [`back`](Self::back) undoes the scaling.
    ///
    /// The exponent comes from log₂|x|, corrected by one either way against exact powers of
    /// two, so the approximate logarithm of any backend is enough. 2⁷⁻ᵉ reaches 2¹³³, beyond
    /// f32, so it is applied as two powers of two, each a normal f32 (the second is 1 unless
    /// |x| < 2⁻¹¹⁹); on the way back the result, a multiple of 2⁻¹³³, is exact too, down to
    /// bfloat16's subnormals, on a device that keeps f32 subnormals (a GPU may flush them to
    /// zero). A NaN takes the exponent of 1.
    struct Scaled<const D: usize> {
        /// x·2⁷⁻ᵉ, flattened.
        value: Tensor<1>,
        /// The two parts of 7 − e, each within f32's normal powers of two.
        high: Tensor<1, Int>,
        low: Tensor<1, Int>,
        /// [`powers_of_two`] on x's device.
        table: Tensor<1>,
        /// x's shape.
        dims: [usize; D],
    }

    impl<const D: usize> Scaled<D> {
        fn new(x: Tensor<D>) -> Self {
            let dims = x.dims();
            let device = x.device();
            let table = powers_of_two(&device);
            let x: Tensor<1> = x.reshape([dims.iter().product::<usize>()]);
            // A NaN takes the exponent of 1 (its integer conversion would fail) and stays a NaN.
            let magnitude = x
                .clone()
                .abs()
                .clamp_min(f32::MIN_POSITIVE)
                .mask_fill(x.clone().is_nan(), 1.0);
            let estimate = magnitude
                .clone()
                .log()
                .div_scalar(core::f64::consts::LN_2)
                .floor()
                .clamp(f64::from(MIN_EXP), 127.0)
                .int();
            let below = magnitude
                .clone()
                .lower(pow2(&table, estimate.clone()))
                .int();
            let above = magnitude
                .greater_equal(pow2(&table, estimate.clone().add_scalar(1)))
                .int();
            let exponent = estimate.add(above).sub(below).clamp(MIN_EXP, 127);
            // 7 − e, from −120 to 133, as a sum of a part up to 126 and the rest (0 to 7).
            let shift = exponent.neg().add_scalar(MANTISSA_BITS);
            let high = shift.clone().clamp_max(-MIN_EXP);
            let low = shift.sub(high.clone());
            let value = x
                .mul(pow2(&table, high.clone()))
                .mul(pow2(&table, low.clone()));
            Self { value, high, low, table, dims }
        }

        /// `kept`, whole multiples of the scaled gap, scaled back by 2ᵉ⁻⁷ to x's shape.
        fn back(self, kept: Tensor<1>) -> Tensor<D> {
            kept.mul(pow2(&self.table, self.low.neg()))
                .mul(pow2(&self.table, self.high.neg()))
                .reshape(self.dims)
        }
    }

    /// `beta·c + t` rounded once to f32, as an FMA computes it, for `c` holding bfloat16 values:
    /// torch's CPU `addmm(C, A, B, beta, alpha)` adds `beta·C` to `alpha·(A·B)` this way.
    ///
    /// β (as f32) splits exactly into a 16-bit and an 8-bit part, whose products with c's 8-bit
    /// significands are exact in f32; two error-free sums then give the total with a single
    /// rounding, up to a term 2⁻⁴⁸ smaller than the result.
    pub fn fma<const D: usize>(beta: f64, c: Tensor<D>, t: Tensor<D>) -> Tensor<D> {
        let beta = beta as f32;
        let beta_hi = f32::from_bits(beta.to_bits() & 0xFFFF_FF00);
        let beta_lo = beta - beta_hi;
        let (s, e) = two_sum(c.clone().mul_scalar(beta_hi), c.mul_scalar(beta_lo));
        let (u, f) = two_sum(s, t);
        u.add(f.add(e))
    }

    /// Knuth's error-free sum: `a + b = s + e` exactly, with `s` the rounded sum.
    fn two_sum<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
        let s = a.clone().add(b.clone());
        let b_virtual = s.clone().sub(a.clone());
        let a_virtual = s.clone().sub(b_virtual.clone());
        let e = a.sub(a_virtual).add(b.sub(b_virtual));
        (s, e)
    }
}

#[cfg(test)]
mod tests {
    use super::bf16::{round_f32, round_stochastic, round_stochastic_f32};
    use burn::tensor::{Device, Tensor, TensorData};

    /// The tensor-op stochastic rounding equals the one on the bits, to the bit, on the CPU
    /// backends: on every 65 537th f32 bit pattern (65 536 values, both signs, subnormals,
    /// infinities and NaNs among them) and the edges (±0, the largest f32, the smallest
    /// subnormal, a bfloat16 value, which has nothing to round), each with a draw that moves it
    /// up, one that keeps it, and one from the stream.
    #[test]
    fn round_stochastic_on_tensors_is_round_stochastic_on_bits() {
        let edges = [0x0000_0000u32, 0x8000_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x0000_0001, 0x3F80_0000, 0x7F80_0000];
        let bits: Vec<u32> = (0..=u32::MAX).step_by(65_537).chain(edges).collect();
        let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let draws = [
            bits.iter().map(|_| 0).collect::<Vec<u32>>(),
            bits.iter().map(|_| 0xFFFF).collect(),
            (0..bits.len() as u64).map(|i| crate::stochastic::bits16(42, i)).collect(),
        ];
        #[allow(unused_mut)] // no push without a CPU backend
        let mut devices = Vec::<Device>::new();
        #[cfg(feature = "flex")]
        devices.push(Device::flex());
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // burn deprecates ndarray; adamlab ships it on purpose
        devices.push(Device::ndarray());
        for device in &devices {
            for draw in &draws {
                let tensor = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [bits.len()]), device);
                let random = tensor(draw.iter().map(|&r| r as f32).collect());
                let rounded = round_stochastic(tensor(values.clone()), random).into_data().try_to_vec::<f32>().unwrap();
                for ((x, r), y) in values.iter().zip(draw).zip(&rounded) {
                    let expected = round_stochastic_f32(*x, *r);
                    let same = expected.to_bits() == y.to_bits() || (expected.is_nan() && y.is_nan());
                    assert!(same, "{device:?}: {:#010x} with draw {r}: {:#010x}, not {:#010x}", x.to_bits(), y.to_bits(), expected.to_bits());
                }
            }
        }
        // A value with dropped bits d rounds away from zero exactly when the draw is below d.
        let x = f32::from_bits(0x3F80_1234);
        assert_eq!(round_stochastic_f32(x, 0x1233).to_bits(), 0x3F81_0000);
        assert_eq!(round_stochastic_f32(x, 0x1234).to_bits(), 0x3F80_0000);
        assert_eq!(round_stochastic_f32(-x, 0).to_bits(), 0xBF81_0000);
    }

    /// `round_f32` equals `half`'s conversion (burn's cast) to the bit: on every 997th f32 bit
    /// pattern (4.3 million, both signs, subnormals, infinities and NaNs among them) and on the
    /// ties, where the dropped half is exactly 0x8000: 1 + 2⁻⁸ stays 1 (even), 1 + 3·2⁻⁸ goes
    /// up to 1 + 2⁻⁶; f32's largest value overflows to infinity.
    #[test]
    fn round_f32_is_halfs_round_to_nearest_even_to_the_bit() {
        let half = |x: f32| burn::tensor::bf16::from_f32(x).to_f32();
        let edges = [0x3F80_8000u32, 0x3F81_8000, 0x7F7F_FFFF, 0x8000_0000, 0x0000_8000, 0x7FC0_0001];
        for bits in (0..=u32::MAX).step_by(997).chain(edges) {
            let x = f32::from_bits(bits);
            assert_eq!(round_f32(x).to_bits(), half(x).to_bits(), "{bits:#010x}");
        }
        assert_eq!(round_f32(f32::from_bits(0x3F80_8000)), 1.0);
        assert_eq!(round_f32(f32::from_bits(0x3F81_8000)).to_bits(), 0x3F82_0000);
        assert_eq!(round_f32(f32::MAX), f32::INFINITY);
    }
}
