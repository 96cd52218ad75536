//! 8-bit Adam's fused CubeCL step (wgpu): one launch per parameter, one cube per block of 256
//! elements, dequantizing, updating and requantizing the block in place, as bitsandbytes'
//! `kOptimizerStatic8bit2StateBlockwise` does on CUDA. Also the pieces Lion8bit's kernel shares:
//! the code search, the sign fix, the block's absmax and the maps' buffers.
//!
//! The codes are packed four to a u32 word ([`layout`](super::layout)), and WGSL has no 8-bit
//! store, so a unit owns a whole word: a cube is [`UNITS`] = 64 units, and unit u steps elements
//! 4u to 4u + 3 of its block, reading and writing one word of each code buffer. The absmax of the
//! new moments is a tree of maxima over the units in shared memory (a NaN never wins, as in the
//! kernel's `fmaxf` reduction and the CPU step's; the greatest of a set does not depend on the
//! order it is taken in). Elements past the end of the last block are padding, as bitsandbytes
//! pads them: gradient 0, codes 128 and 0, counted in the absmax, never written; the bytes of the
//! last word past the end are written 0, as [`Codes`](super::Codes) packs them.
//!
//! Each element's arithmetic is [`Adam8bit::reference_step`](super::Adam8bit::reference_step)'s,
//! operation for operation and in its order, and the code search is the kernels' binary search
//! ([`quantize::quantize`]), not the CPU step's table. On llvmpipe the step equals the reference
//! bit for bit (tested); a hardware GPU's shader compiler may contract `a·b + c` and round division
//! and square root differently (see `adamlab_verify::fused`), and a code can then differ by one.
//!
//! A parameter with f32 moments (below `min_8bit_size`) takes the 32-bit kernel's update in an
//! elementwise kernel of its own, one unit per element. Tensors the kernels do not take
//! (autodiff, another dtype) take the reference step.

use burn::optim::LearningRate;
use burn::tensor::{DType, Device, Tensor, TensorData};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::Tried;
use super::quantize::{self, BLOCK, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED};
use super::{Adam8bit, Adam8bitState, Codes, Coefficients, Moments, State8bit};
use crate::fused::{Kernel, cube, kernel_for};

/// Units per cube: four elements each, one word of each code buffer.
pub(crate) const UNITS: usize = BLOCK / 4;

/// The fused step on wgpu, when θ, the gradient and the absmax (or the f32 moments) are f32
/// CubeCL tensors without autodiff on one device and the codes are packed u32 words there;
/// otherwise the inputs back.
pub(super) fn try_step<const D: usize>(
    optimizer: &Adam8bit,
    lr: LearningRate,
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: Adam8bitState<D>,
) -> Tried<Adam8bitState<D>, D> {
    let device = theta.device();
    let arg = |t: &CubeTensor| t.clone().into_buffer_arg();
    try_step_8bit(
        theta,
        grad,
        state,
        |t| Coefficients::new(&optimizer.config, lr, t),
        |c, theta, grad, [m, v]| {
            let (cube_count, cube_dim) = elementwise_geometry(theta);
            adam32bit_kernel::launch(
                &theta.client,
                cube_count,
                cube_dim,
                arg(theta),
                arg(grad),
                arg(m),
                arg(v),
                scalars(c),
                c.decay.is_some(),
            );
        },
        |c, theta, grad, [words1, words2], [absmax1, absmax2]| {
            let [signed, unsigned] = maps(&device);
            let (cube_count, cube_dim) = geometry(theta, absmax1.meta.num_elements());
            adam8bit_kernel::launch(
                &theta.client,
                cube_count,
                cube_dim,
                arg(theta),
                arg(grad),
                arg(words1),
                arg(words2),
                arg(absmax1),
                arg(absmax2),
                arg(&signed),
                arg(&unsigned),
                scalars(c),
                c.decay.is_some(),
            );
        },
    )
}

/// An 8-bit optimizer's fused step on wgpu (Adam8bit's, Lion8bit's), when θ, the gradient and the
/// absmax (or the f32 moments) are f32 CubeCL tensors without autodiff on one device and the codes
/// are packed u32 words there; otherwise the inputs back. The tensors are taken out, writable,
/// `prepare(t)` makes what the step needs at step t (its scalars), and one launch steps them in
/// place: `full` launches the step of f32 moments (θ, g, the moments), `blockwise` that of 8-bit
/// ones (θ, g, each moment's packed codes, each moment's absmax).
pub(crate) fn try_step_8bit<const S: usize, const D: usize, P>(
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: State8bit<S, D>,
    prepare: impl FnOnce(usize) -> P,
    full: impl FnOnce(&P, &CubeTensor, &CubeTensor, &[CubeTensor; S]),
    blockwise: impl FnOnce(&P, &CubeTensor, &CubeTensor, &[CubeTensor; S], &[CubeTensor; S]),
) -> Tried<State8bit<S, D>, D> {
    let device = theta.device();
    let takes = match &state.moments {
        Moments::Blockwise { codes, absmax } => {
            kernel_for([&theta, &grad]) == Some(Kernel::Cube)
                && kernel_for(absmax) == Some(Kernel::Cube)
                && absmax[0].device() == device
                && codes.iter().all(|codes| packed_on(codes, &device))
        }
        Moments::Full(moments) => {
            kernel_for([&theta, &grad].into_iter().chain(moments)) == Some(Kernel::Cube)
        }
    };
    if !takes {
        return Err((theta, grad, state));
    }
    let step = state.step + 1;
    let prepared = prepare(step);
    let theta = cube::take_mut(theta);
    let grad = cube::take(grad);
    crate::fused::cube::LAUNCHES.with(|n| n.set(n.get() + 1));
    let moments = match state.moments {
        Moments::Full(moments) => {
            let moments = moments.map(cube::take_mut);
            full(&prepared, &theta, &grad, &moments);
            Moments::Full(moments.map(cube::into_tensor))
        }
        Moments::Blockwise { codes, absmax } => {
            let mut shapes = codes.map(|codes| match codes {
                Codes::Packed { words, shape } => (Some(take_words(words)), shape),
                Codes::Bytes(_) => unreachable!("checked above"),
            });
            let words = shapes.each_mut().map(|(words, _)| words.take().expect("taken once"));
            let absmax = absmax.map(cube::take_mut);
            blockwise(&prepared, &theta, &grad, &words, &absmax);
            let mut shapes = shapes.into_iter().map(|(_, shape)| shape);
            Moments::Blockwise {
                codes: words.map(|words| Codes::Packed {
                    words: cube::into_int_tensor(words),
                    shape: shapes.next().expect("one per moment"),
                }),
                absmax: absmax.map(cube::into_tensor),
            }
        }
    };
    Ok((cube::into_tensor(theta), Some(State8bit { step, moments })))
}

/// One unit per element of `theta`, as the elementwise fused kernels launch.
pub(crate) fn elementwise_geometry(theta: &CubeTensor) -> (CubeCount, CubeDim) {
    let units = theta.meta.num_elements();
    let cube_dim = CubeDim::new(&theta.client, units);
    let cube_count = cubecl::calculate_cube_count_elemwise(&theta.client, units, cube_dim);
    (cube_count, cube_dim)
}

/// [`Coefficients`] as the kernels take them.
fn scalars(c: &Coefficients) -> Adam8bitScalarsLaunch {
    Adam8bitScalarsLaunch::new(
        c.beta1,
        c.beta2,
        c.one_minus_beta1,
        c.one_minus_beta2,
        c.step_size,
        c.eps_correction2,
        c.decay.unwrap_or(1.0),
    )
}

/// Whether `codes` are packed u32 words on `device`.
pub(crate) fn packed_on<const D: usize>(codes: &Codes<D>, device: &Device) -> bool {
    matches!(codes, Codes::Packed { words, .. } if words.dtype() == DType::U32 && &words.device() == device)
}

/// The buffer of packed words, writable: a CubeCL u32 tensor (checked by [`packed_on`]).
pub(crate) fn take_words(words: Tensor<1, burn::tensor::Int>) -> CubeTensor {
    cube::take_int_mut(words).unwrap_or_else(|_| {
        panic!("packed codes that are not a CubeCL int tensor: checked by try_step")
    })
}

/// One cube of [`UNITS`] units per block, the cubes spread over the grid's dimensions as the
/// runtime allows (a cube past the last block does nothing).
pub(crate) fn geometry(theta: &CubeTensor, blocks: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new_1d(UNITS as u32);
    let cube_count = cubecl::calculate_cube_count_elemwise(&theta.client, blocks * UNITS, cube_dim);
    (cube_count, cube_dim)
}

thread_local! {
    /// The two maps' buffers by device, uploaded at a device's first 8-bit step: a step
    /// allocates nothing but what its launch needs.
    static MAPS: std::cell::RefCell<Vec<(Device, [CubeTensor; 2])>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The signed and the unsigned map as f32 buffers on `device`.
pub(crate) fn maps(device: &Device) -> [CubeTensor; 2] {
    MAPS.with(|maps| {
        let mut maps = maps.borrow_mut();
        if let Some((_, buffers)) = maps.iter().find(|(d, _)| d == device) {
            return buffers.clone();
        }
        let buffer = |bits: &[u32; 256]| {
            let values = TensorData::new(quantize::values(bits).to_vec(), [256]);
            cube::take(Tensor::<1>::from_data(values, (device, DType::F32)))
        };
        let buffers = [buffer(&DYNAMIC_SIGNED), buffer(&DYNAMIC_UNSIGNED)];
        maps.push((device.clone(), buffers.clone()));
        buffers
    })
}

/// [`Coefficients`] as the kernel takes them.
#[derive(CubeType, CubeLaunch)]
struct Adam8bitScalars {
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    step_size: f32,
    eps_correction2: f32,
    /// `1 − lr·λ`; unused without weight decay.
    decay: f32,
}

/// Whether `g` is finite: its exponent bits are not all ones (read from the bits, which no
/// shader compiler's assumptions about NaN can change).
#[cube]
pub(crate) fn is_finite(g: f32) -> bool {
    (u32::reinterpret(g) & 0x7FFF_FFFF) < 0x7F80_0000
}

/// [`quantize::sign_bit`]: below 0, or −0; a NaN counts as positive.
#[cube]
fn sign_bit(x: f32) -> bool {
    let bits = u32::reinterpret(x);
    (bits >> 31) == 1 && (bits & 0x7FFF_FFFF) <= 0x7F80_0000
}

/// [`quantize::quantize`]: the code of `map` nearest to `x` by the kernels' binary search.
#[cube]
pub(crate) fn quantize_code(map: &[f32], x: f32, #[comptime] signed: bool) -> u32 {
    let mut pivot = 127u32;
    let mut upper_pivot = 255u32;
    let mut lower_pivot = 0u32;
    let mut lower = 0.0f32;
    if comptime![signed] {
        lower = -1.0f32;
    }
    let mut upper = 1.0f32;
    let mut val = map[pivot as usize];
    let mut i = 64u32;
    #[unroll]
    for _ in 0..7 {
        if x > val {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = map[pivot as usize];
        i = i >> 1u32;
    }
    let mut code = pivot;
    if x > val {
        if x > (upper + val) * 0.5f32 {
            code = upper_pivot;
        }
    } else if x < (lower + val) * 0.5f32 {
        code = lower_pivot;
    }
    code
}

/// [`quantize::quantize_signed_keeping_sign`]: the first moment's code of `s1 / absmax` on the
/// signed map, moved one code towards `s1`'s sign (modulo 256) if its value has the other sign.
#[cube]
pub(crate) fn quantize_keeping_sign(map: &[f32], s1: f32, absmax: f32) -> u32 {
    let code = quantize_code(map, s1 / absmax, true);
    let mut kept = code;
    if sign_bit(map[code as usize]) != sign_bit(s1) {
        if s1 > 0.0f32 {
            kept = (code + 1u32) & 0xFFu32;
        } else {
            kept = (code + 255u32) & 0xFFu32;
        }
    }
    kept
}

/// The greatest of every unit's `local` in the cube, through `shared` ([`UNITS`] entries): a
/// tree of comparisons, halving the units at each level. Every unit of the cube must call it (it
/// synchronizes them). `local` is never NaN (the units' maxima start from −FLT_MAX and a NaN
/// never wins a comparison).
#[cube]
pub(crate) fn cube_max(shared: &mut [f32], local: f32) -> f32 {
    let unit = UNIT_POS as usize;
    shared[unit] = local;
    sync_cube();
    #[unroll]
    for level in 0..6 {
        let stride = comptime![32usize >> level];
        if unit < stride {
            let other = shared[unit + stride];
            if other > shared[unit] {
                shared[unit] = other;
            }
        }
        sync_cube();
    }
    shared[0]
}

/// The packed word of codes this unit steps: word u of block b is b·[`UNITS`] + u (elements
/// 4·word to 4·word + 3).
#[cube]
pub(crate) fn unit_word() -> usize {
    CUBE_POS * 64usize + UNIT_POS as usize
}

/// −FLT_MAX, where the kernel's `fmaxf` reduction of a block's absmax starts.
#[cube]
pub(crate) fn lowest() -> f32 {
    let max = 3.402_823_5e38f32;
    -max
}

/// Whether this cube has a block: a cube past the last one loads nothing and stores nothing,
/// but joins the barriers.
#[cube]
pub(crate) fn has_block(absmax: &mut [f32]) -> bool {
    CUBE_POS < absmax.len()
}

/// The block's absmax before the step (0 in a cube without a block).
#[cube]
pub(crate) fn old_absmax(absmax: &mut [f32], in_range: bool) -> f32 {
    let mut old = 0.0f32;
    if in_range {
        old = absmax[CUBE_POS];
    }
    old
}

/// This unit's packed word of codes before the step (0 past the last word).
#[cube]
pub(crate) fn old_word(codes: &mut [u32], in_range: bool) -> u32 {
    let index = unit_word();
    let mut word = 0u32;
    if in_range && index < codes.len() {
        word = codes[index];
    }
    word
}

/// The gradient of element `e` if it is one of θ's (`valid`), else the padding's 0.
#[cube]
pub(crate) fn grad_at(grad: &[f32], e: usize, valid: bool) -> f32 {
    let mut g = 0.0f32;
    if valid {
        g = grad[e];
    }
    g
}

/// The code of element `j` of a packed word if it is one of θ's (`valid`), else the padding's
/// code `pad` (128 for a first moment, 0 for a second).
#[cube]
pub(crate) fn code_at(word: u32, #[comptime] j: u32, valid: bool, pad: u32) -> u32 {
    let mut code = pad;
    if valid {
        code = (word >> comptime![8u32 * j]) & 0xFFu32;
    }
    code
}

/// `x` if it is greater than `max`, else `max`: the kernel's `fmaxf` step of a block's absmax, in
/// which a NaN never wins (WGSL's `max` leaves NaN to the implementation).
#[cube]
pub(crate) fn greater(max: f32, x: f32) -> f32 {
    let mut greatest = max;
    if x > max {
        greatest = x;
    }
    greatest
}

/// The greatest of every unit's `local` in the cube ([`cube_max`] through shared memory of its
/// own).
#[cube]
pub(crate) fn block_max(local: f32) -> f32 {
    let mut shared = Shared::<[f32]>::new_slice(64usize);
    cube_max(&mut shared, local)
}

/// Stores a block's new codes (this unit's `word` of them) and its new absmax (unit 0), if the
/// cube has a block (`in_range`); the last block's cube has fewer words than units.
#[cube]
pub(crate) fn store_block(
    codes: &mut [u32],
    absmax: &mut [f32],
    word: u32,
    new: f32,
    in_range: bool,
) {
    let index = unit_word();
    if in_range {
        if index < codes.len() {
            codes[index] = word;
        }
        if UNIT_POS == 0 {
            absmax[CUBE_POS] = new;
        }
    }
}

/// The 32-bit kernel's step on f32 moments, one unit per element:
/// [`Adam8bit::reference_step`](super::Adam8bit::reference_step)'s `Full` arm.
#[cube(launch)]
fn adam32bit_kernel(
    theta: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: &Adam8bitScalars,
    #[comptime] decay: bool,
) {
    let i = ABSOLUTE_POS;
    if i < theta.len() {
        let g = grad[i];
        let mi = m[i] * s.beta1 + g * s.one_minus_beta1;
        let vi = v[i] * s.beta2 + (g * g) * s.one_minus_beta2;
        let mut t = theta[i] + (mi / (f32::sqrt(vi) + s.eps_correction2)) * s.step_size;
        if comptime![decay] {
            t = t * s.decay;
        }
        theta[i] = t;
        m[i] = mi;
        v[i] = vi;
    }
}

/// The 8-bit Adam step of one block per cube; see the module's documentation.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn adam8bit_kernel(
    theta: &mut [f32],
    grad: &[f32],
    codes1: &mut [u32],
    codes2: &mut [u32],
    absmax1: &mut [f32],
    absmax2: &mut [f32],
    map1: &[f32],
    map2: &[f32],
    s: &Adam8bitScalars,
    #[comptime] decay: bool,
) {
    let in_range = has_block(absmax1);
    let n = theta.len();
    let word = unit_word();
    let old1 = old_absmax(absmax1, in_range);
    let old2 = old_absmax(absmax2, in_range);
    let word1 = old_word(codes1, in_range);
    let word2 = old_word(codes2, in_range);
    let mut g = Array::<f32>::new(4usize);
    let mut m = Array::<f32>::new(4usize);
    let mut v = Array::<f32>::new(4usize);
    let mut local1 = lowest();
    let mut local2 = lowest();
    #[unroll]
    for j in 0..4 {
        let e = word * 4usize + j;
        let valid = in_range && e < n;
        // Padding: gradient 0, codes 128 and 0.
        let gj = grad_at(grad, e, valid);
        let vj = map2[code_at(word2, comptime![j as u32], valid, 0u32) as usize] * old2;
        let vj = vj * s.beta2 + s.one_minus_beta2 * gj * gj;
        let mj = map1[code_at(word1, comptime![j as u32], valid, 128u32) as usize] * old1;
        let mj = mj * s.beta1 + s.one_minus_beta1 * gj;
        let mut mk = 0.0f32;
        let mut vk = 0.0f32;
        if is_finite(gj) {
            mk = mj;
            vk = vj;
        }
        g[j] = gj;
        m[j] = mk;
        v[j] = vk;
        local1 = greater(local1, f32::abs(mk));
        local2 = greater(local2, f32::abs(vk));
    }
    let new1 = block_max(local1);
    let new2 = block_max(local2);
    let mut out1 = 0u32;
    let mut out2 = 0u32;
    #[unroll]
    for j in 0..4 {
        let e = word * 4usize + j;
        if in_range && e < n {
            let mut t = theta[e] + (m[j] / (f32::sqrt(v[j]) + s.eps_correction2)) * s.step_size;
            if comptime![decay] {
                t = t * s.decay;
            }
            if is_finite(g[j]) {
                theta[e] = t;
            }
            let shift = comptime![8u32 * j as u32];
            out1 |= quantize_keeping_sign(map1, m[j], new1) << shift;
            out2 |= quantize_code(map2, v[j] / new2, false) << shift;
        }
    }
    store_block(codes1, absmax1, out1, new1, in_range);
    store_block(codes2, absmax2, out2, new2, in_range);
}
