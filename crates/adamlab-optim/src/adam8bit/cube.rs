//! 8-bit Adam's fused CubeCL step (wgpu): one launch per parameter, one cube per block of 256
//! elements, dequantizing, updating and requantizing the block in place, as bitsandbytes'
//! `kOptimizerStatic8bit2StateBlockwise` does on CUDA. Also what Lion8bit's step shares: the
//! take-apart and launch ([`try_step_8bit`], [`launch!`]), a unit's place in its block ([`Unit`])
//! and an 8-bit moment's load, dequantization, absmax and requantization ([`Moment`]).
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

use burn::tensor::{DType, Device, Tensor, TensorData};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::quantize::{self, BLOCK};
use super::{Codes, Coefficients, Moments, State8bit, Tried};
use crate::fused::{Kernel, cube, kernel_for};

/// Units per cube: four elements each, one word of each code buffer.
const UNITS: usize = BLOCK / 4;

/// An 8-bit optimizer's fused step on wgpu ([`Fused8bit`](super::Fused8bit)'s launches), when θ, the gradient and the
/// absmax (or the f32 moments) are f32 CubeCL tensors without autodiff on one device and the codes
/// are packed u32 words there; otherwise the inputs back. The tensors are taken out, writable,
/// `prepare(t)` makes what the step needs at step t (its scalars), and one launch steps them in
/// place: `full` launches the step of f32 moments (one unit per element; the moments' buffers),
/// `blockwise` that of 8-bit ones (one cube per block; each moment's packed codes, each moment's
/// absmax, then the signed and the unsigned map). Both launch through [`launch!`], which passes
/// the [`Launch`]'s θ and gradient first.
pub(crate) fn try_step_8bit<const S: usize, const D: usize, P>(
    theta: Tensor<D>,
    grad: Tensor<D>,
    state: State8bit<S, D>,
    prepare: impl FnOnce(usize) -> P,
    full: impl FnOnce(&P, Launch, [BufferArg; S]),
    blockwise: impl FnOnce(&P, Launch, [BufferArg; S], [BufferArg; S], [BufferArg; 2]),
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
    let arg = |t: &CubeTensor| t.clone().into_buffer_arg();
    let on = |(cube_count, cube_dim)| Launch {
        client: theta.client.clone(),
        cube_count,
        cube_dim,
        theta: arg(&theta),
        grad: arg(&grad),
    };
    crate::fused::cube::LAUNCHES.with(|n| n.set(n.get() + 1));
    let moments = match state.moments {
        Moments::Full(moments) => {
            let moments = moments.map(cube::take_mut);
            full(&prepared, on(elementwise_geometry(&theta)), moments.each_ref().map(arg));
            Moments::Full(moments.map(cube::into_tensor))
        }
        Moments::Blockwise { codes, absmax } => {
            let mut shapes = codes.map(|codes| match codes {
                Codes::Packed { words, shape } => (Some(take_words(words)), shape),
                Codes::Bytes(_) => unreachable!("checked above"),
            });
            let words = shapes.each_mut().map(|(words, _)| words.take().expect("taken once"));
            let absmax = absmax.map(cube::take_mut);
            blockwise(
                &prepared,
                on(geometry(&theta, absmax[0].meta.num_elements())),
                words.each_ref().map(arg),
                absmax.each_ref().map(arg),
                maps(&device).each_ref().map(arg),
            );
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

/// Where an 8-bit kernel launches (the client, the cubes) and the buffers every such kernel
/// takes first, θ's and the gradient's: what [`launch!`] passes before the kernel's own arguments.
pub(crate) struct Launch {
    pub(crate) client: cubecl::client::Client,
    pub(crate) cube_count: CubeCount,
    pub(crate) cube_dim: CubeDim,
    pub(crate) theta: BufferArg,
    pub(crate) grad: BufferArg,
}

/// Launches `$kernel`, a `#[cube(launch)]` function whose first buffers are θ and the gradient,
/// where [`Launch`] `$on` says, with the kernel's own arguments `$arg` after those two.
macro_rules! launch {
    ($kernel:ident, $on:expr, $($arg:expr),+ $(,)?) => {{
        let on: $crate::adam8bit::cube::Launch = $on;
        $kernel::launch(&on.client, on.cube_count, on.cube_dim, on.theta, on.grad, $($arg),+)
    }};
}
pub(crate) use launch;

/// One unit per element of `theta`, as the elementwise fused kernels launch.
fn elementwise_geometry(theta: &CubeTensor) -> (CubeCount, CubeDim) {
    let units = theta.meta.num_elements();
    let cube_dim = CubeDim::new(&theta.client, units);
    let cube_count = cubecl::calculate_cube_count_elemwise(&theta.client, units, cube_dim);
    (cube_count, cube_dim)
}

/// [`Coefficients`] as the kernels take them.
pub(super) fn scalars(c: &Coefficients) -> Adam8bitScalarsLaunch {
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
        let buffer = |values: &[f32; 256]| {
            let values = TensorData::new(values.to_vec(), [256]);
            cube::take(Tensor::<1>::from_data(values, (device, DType::F32)))
        };
        let buffers = [buffer(&quantize::SIGNED), buffer(&quantize::UNSIGNED)];
        maps.push((device.clone(), buffers.clone()));
        buffers
    })
}

/// [`Coefficients`] as the kernel takes them.
#[derive(CubeType, CubeLaunch)]
pub(super) struct Adam8bitScalars {
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
fn is_finite(g: f32) -> bool {
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
fn quantize_code(map: &[f32], x: f32, #[comptime] signed: bool) -> u32 {
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
fn quantize_keeping_sign(map: &[f32], s1: f32, absmax: f32) -> u32 {
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
fn cube_max(shared: &mut [f32], local: f32) -> f32 {
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

/// Where a unit of a block kernel is: its cube's block (if the cube has one), its word of packed
/// codes, θ's length.
#[derive(CubeType)]
pub(crate) struct Unit {
    /// Whether the cube has a block: a cube past the last one loads nothing and stores nothing,
    /// but joins the barriers.
    in_range: bool,
    /// The packed word of codes this unit steps: word u of block b is b·[`UNITS`] + u, its
    /// elements 4·word to 4·word + 3.
    word: usize,
    /// θ's elements.
    len: usize,
}

#[cube]
impl Unit {
    /// This unit of a kernel launched over the blocks whose absmax is `absmax`, for a θ of `len`
    /// elements.
    pub(crate) fn new(absmax: &mut [f32], len: usize) -> Unit {
        Unit {
            in_range: CUBE_POS < absmax.len(),
            word: CUBE_POS * 64usize + UNIT_POS as usize,
            len,
        }
    }

    /// The index of this unit's element `j` (0 to 3).
    pub(crate) fn element(&self, #[comptime] j: usize) -> usize {
        self.word * 4usize + j
    }

    /// Whether element `e` is one of θ's, not padding.
    pub(crate) fn holds(&self, e: usize) -> bool {
        self.in_range && e < self.len
    }
}

/// One 8-bit moment of a block as a unit steps it: the block's absmax and the unit's packed
/// codes before the step, then the unit's four new values, which [`Moment::store`] quantizes
/// with the block's new absmax. Padding elements take the padding's code (128 on the signed map,
/// 0 on the unsigned one, as bitsandbytes pads), and their new values count in the absmax.
#[derive(CubeType)]
pub(crate) struct Moment {
    /// The block's absmax before the step (0 in a cube without a block).
    absmax: f32,
    /// This unit's packed word of codes before the step (0 past the last word).
    word: u32,
    /// The unit's four new values, as [`Moment::set`] leaves them.
    values: Array<f32>,
    /// Whether the moment's codes are on the signed map (a first moment) or the unsigned one.
    #[cube(comptime)]
    signed: bool,
}

#[cube]
impl Moment {
    /// The moment of `unit`'s block whose codes are `codes` and absmax `absmax`, before the step.
    pub(crate) fn load(
        codes: &mut [u32],
        absmax: &mut [f32],
        unit: &Unit,
        #[comptime] signed: bool,
    ) -> Moment {
        let mut old = 0.0f32;
        let mut word = 0u32;
        if unit.in_range {
            old = absmax[CUBE_POS];
            if unit.word < codes.len() {
                word = codes[unit.word];
            }
        }
        Moment {
            absmax: old,
            word,
            values: Array::new(4usize),
            signed,
        }
    }

    /// Element `j`'s value before the step: its code's value in `map` times the block's absmax,
    /// the padding code's where the element is not θ's (`valid` false).
    pub(crate) fn value(&self, map: &[f32], #[comptime] j: usize, valid: bool) -> f32 {
        let mut code = 0u32;
        if comptime![self.signed] {
            code = 128u32;
        }
        if valid {
            code = (self.word >> comptime![8u32 * j as u32]) & 0xFFu32;
        }
        map[code as usize] * self.absmax
    }

    /// Element `j`'s new value.
    pub(crate) fn set(&mut self, #[comptime] j: usize, x: f32) {
        self.values[j] = x;
    }

    /// Quantizes the new values with the block's new absmax (the greatest |value| over the
    /// cube's units; every unit of the cube must call it) and stores θ's elements' codes and,
    /// from unit 0, the absmax, if the cube has a block. A first moment's codes keep their
    /// value's sign; the last block's cube has fewer words than units.
    pub(crate) fn store(&self, codes: &mut [u32], absmax: &mut [f32], map: &[f32], unit: &Unit) {
        let mut local = lowest();
        #[unroll]
        for j in 0..4usize {
            local = greater(local, f32::abs(self.values[j]));
        }
        let new = block_max(local);
        let mut word = 0u32;
        #[unroll]
        for j in 0..4usize {
            if unit.holds(unit.element(j)) {
                let x = self.values[j];
                let code = if comptime![self.signed] {
                    quantize_keeping_sign(map, x, new)
                } else {
                    quantize_code(map, x / new, false)
                };
                word |= code << comptime![8u32 * j as u32];
            }
        }
        if unit.in_range {
            if unit.word < codes.len() {
                codes[unit.word] = word;
            }
            if UNIT_POS == 0 {
                absmax[CUBE_POS] = new;
            }
        }
    }
}

/// −FLT_MAX, where the kernel's `fmaxf` reduction of a block's absmax starts.
#[cube]
fn lowest() -> f32 {
    let max = 3.402_823_5e38f32;
    -max
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

/// `x` if it is greater than `max`, else `max`: the kernel's `fmaxf` step of a block's absmax, in
/// which a NaN never wins (WGSL's `max` leaves NaN to the implementation).
#[cube]
fn greater(max: f32, x: f32) -> f32 {
    let mut greatest = max;
    if x > max {
        greatest = x;
    }
    greatest
}

/// The greatest of every unit's `local` in the cube ([`cube_max`] through shared memory of its
/// own).
#[cube]
fn block_max(local: f32) -> f32 {
    let mut shared = Shared::<[f32]>::new_slice(64usize);
    cube_max(&mut shared, local)
}

/// The 32-bit kernel's step on f32 moments, one unit per element:
/// [`Adam8bit::reference_step`](super::Adam8bit::reference_step)'s `Full` arm.
#[cube(launch)]
pub(super) fn adam32bit_kernel(
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
pub(super) fn adam8bit_kernel(
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
    let unit = Unit::new(absmax1, theta.len());
    let mut m = Moment::load(codes1, absmax1, &unit, true);
    let mut v = Moment::load(codes2, absmax2, &unit, false);
    #[unroll]
    for j in 0..4usize {
        let e = unit.element(j);
        let valid = unit.holds(e);
        let g = grad_at(grad, e, valid);
        let vj = v.value(map2, j, valid) * s.beta2 + s.one_minus_beta2 * g * g;
        let mj = m.value(map1, j, valid) * s.beta1 + s.one_minus_beta1 * g;
        // A non-finite gradient leaves θ and zeroes the element's moments, as the kernel does.
        let mut mk = 0.0f32;
        let mut vk = 0.0f32;
        if is_finite(g) {
            mk = mj;
            vk = vj;
            if valid {
                let mut t = theta[e] + (mk / (f32::sqrt(vk) + s.eps_correction2)) * s.step_size;
                if comptime![decay] {
                    t = t * s.decay;
                }
                theta[e] = t;
            }
        }
        m.set(j, mk);
        v.set(j, vk);
    }
    m.store(codes1, absmax1, map1, &unit);
    v.store(codes2, absmax2, map2, &unit);
}
