"""bitsandbytes' 8-bit Adam as its CUDA kernels compute it, transcribed to NumPy float32.

bitsandbytes 0.50.2 (pinned in requirements.txt) steps CPU tensors, but its CPU path is not the
algorithm its CUDA kernels run: it requantizes through a 65 536-bin lookup table instead of the
kernels' binary search (values below ~1.5e-5 of a block's absmax lose the dynamic map's fine
codes), does not keep the first moment's sign through quantization, and orders the update
differently (bitsandbytes/backends/cpu/ops.py, csrc/cpu_ops.cpp). So the reference here is a
transcription of the CUDA kernels of csrc/kernels.cu (bitsandbytes tag 0.50.1; the file is
unchanged up to commit 95f9af3, from which 0.50.2 is built), with bitsandbytes' own quantization
maps (`bitsandbytes.functional.create_dynamic_map`, signed for the first moment, unsigned for the
second, as `Optimizer2State.init_state` takes them):

* `kOptimizer32bit2State<float, ADAM>` for a parameter of fewer than `min_8bit_size` elements,
  whose states stay float32;
* `kOptimizerStatic8bit2StateBlockwise<float, ADAM, 256, 1>` for the others: blocks of 256
  elements (BLOCKSIZE_2STATE in csrc/ops.cu), the last one padded as cub's BlockLoad pads it
  (gradient 0, first-moment code 128, second-moment code 0), each state dequantized
  (`code[c] * absmax[block]`), updated, its new absmax taken over the whole padded block, and
  requantized with `quantize_2D` (the kernel's binary search), the first moment's code then
  moved one step towards its value's sign if quantization flipped it.

Every operation is the kernel's, in its order, in float32, with two exceptions, because no CPU
computes CUDA's fast-math intrinsics: `__powf(beta, step)` is computed in float64 from the float32
beta and rounded once, and `__fdividef` is IEEE division. Both are within a few ulps of the GPU's.
Scalars reach the kernels as C floats (bitsandbytes passes `ct.c_float(...)`), so `1 - beta` is
computed in float32 from the float32 beta, as the kernels compute it.
"""

import numpy as np
import torch

F32 = np.float32
BLOCK = 256
PAD_CODE1 = 128
PAD_CODE2 = 0


def qmaps():
    """bitsandbytes' own dynamic maps: signed (first moment) and unsigned (second)."""
    import bitsandbytes.functional as F

    signed = F.create_dynamic_map(signed=True).numpy().astype(F32)
    unsigned = F.create_dynamic_map(signed=False).numpy().astype(F32)
    return signed, unsigned


def pow_f32(beta, step):
    """`__powf(beta, step)`: float64 from the float32 beta, rounded once."""
    return F32(np.float64(F32(beta)) ** step)


def scalars(lr, beta1, beta2, eps, weight_decay, step):
    """The kernels' scalars, each as the kernel computes it in float32."""
    lr, beta1, beta2, eps, wd = (F32(x) for x in (lr, beta1, beta2, eps, weight_decay))
    correction1 = F32(1.0) - pow_f32(beta1, step)
    correction2 = np.sqrt(F32(1.0) - pow_f32(beta2, step))
    step_size = (-lr * correction2) / correction1
    return {
        "beta1": beta1,
        "beta2": beta2,
        "one_minus_beta1": F32(1.0) - beta1,
        "one_minus_beta2": F32(1.0) - beta2,
        "step_size": F32(step_size),
        "eps_correction2": F32(eps * correction2),
        "decay": wd > 0,
        "decay_factor": F32(1.0) - lr * wd,
    }


def step_32bit(p, g, s1, s2, c):
    """kOptimizer32bit2State<float, ADAM>, update_scale 1 (no max_unorm), skip_zeros off."""
    s1[:] = s1 * c["beta1"] + c["one_minus_beta1"] * g
    s2[:] = s2 * c["beta2"] + c["one_minus_beta2"] * (g * g)
    # update_scale * step_size * (...) with update_scale = 1.0f: 1.0f * step_size is exact.
    p[:] = p + c["step_size"] * (s1 / (np.sqrt(s2) + c["eps_correction2"]))
    if c["decay"]:
        p[:] = p * c["decay_factor"]


def quantize_2d(code, x, signed):
    """`quantize_2D<SIGNED>`: the kernel's binary search for the nearest code, vectorised.

    Its first comparison reads `quadrants[1]` = code[127] and its second `quadrants[0 or 2]` =
    code[63] or code[191], the same values `code[pivot]` holds, so the search reads `code` alone.
    """
    x = x.astype(F32)
    pivot = np.full(x.shape, 127, dtype=np.int64)
    upper_pivot = np.full(x.shape, 255, dtype=np.int64)
    lower_pivot = np.zeros(x.shape, dtype=np.int64)
    lower = np.full(x.shape, F32(-1.0) if signed else F32(0.0), dtype=F32)
    upper = np.full(x.shape, F32(1.0), dtype=F32)
    val = code[pivot]
    for i in (64, 32, 16, 8, 4, 2, 1):
        above = x > val
        lower_pivot = np.where(above, pivot, lower_pivot)
        lower = np.where(above, val, lower)
        upper_pivot = np.where(above, upper_pivot, pivot)
        upper = np.where(above, upper, val)
        pivot = pivot + np.where(above, i, -i)
        val = code[pivot]
    above = x > val
    mid_up = (upper + val) * F32(0.5)
    mid_low = (lower + val) * F32(0.5)
    return np.where(
        above,
        np.where(x > mid_up, upper_pivot, pivot),
        np.where(x < mid_low, lower_pivot, pivot),
    )


def sign_bit(x):
    """The kernel's `signbit`, a NaN counting as positive as CUDA's canonical NaN does (on x86 the
    NaN of `0 * inf` has its sign bit set)."""
    return (x < 0) | ((x == 0) & np.signbit(x))


def step_blockwise(p, g, c1, c2, absmax1, absmax2, code1, code2, c):
    """kOptimizerStatic8bit2StateBlockwise<float, ADAM, 256, 1> on flat arrays (updated in place)."""
    n = p.size
    blocks = absmax1.size
    padded = blocks * BLOCK
    g_pad = np.zeros(padded, dtype=F32)
    g_pad[:n] = g
    c1_pad = np.full(padded, PAD_CODE1, dtype=np.int64)
    c1_pad[:n] = c1
    c2_pad = np.full(padded, PAD_CODE2, dtype=np.int64)
    c2_pad[:n] = c2
    g_pad = g_pad.reshape(blocks, BLOCK)
    c1_pad = c1_pad.reshape(blocks, BLOCK)
    c2_pad = c2_pad.reshape(blocks, BLOCK)

    finite = np.isfinite(g_pad)
    with np.errstate(all="ignore"):
        s2 = code2[c2_pad] * absmax2[:, None]
        s2 = s2 * c["beta2"] + (c["one_minus_beta2"] * g_pad) * g_pad
        s1 = code1[c1_pad] * absmax1[:, None]
        s1 = s1 * c["beta1"] + c["one_minus_beta1"] * g_pad
        s1 = np.where(finite, s1, F32(0.0))
        s2 = np.where(finite, s2, F32(0.0))
        # fmaxf over the block from -FLT_MAX: NaN never wins.
        new_absmax1 = np.fmax.reduce(np.abs(s1), axis=1, initial=-np.finfo(F32).max).astype(F32)
        new_absmax2 = np.fmax.reduce(np.abs(s2), axis=1, initial=-np.finfo(F32).max).astype(F32)

        flat_s1 = s1.reshape(-1)[:n]
        flat_s2 = s2.reshape(-1)[:n]
        ok = finite.reshape(-1)[:n]
        updated = p + c["step_size"] * (flat_s1 / (np.sqrt(flat_s2) + c["eps_correction2"]))
        if c["decay"]:
            updated = updated * c["decay_factor"]
        p[:] = np.where(ok, updated, p)

        q1 = quantize_2d(code1, s1 / new_absmax1[:, None], signed=True)
        q2 = quantize_2d(code2, s2 / new_absmax2[:, None], signed=False)
    # Keep the first moment's sign: a code whose value's sign bit differs from s1's moves one
    # step towards s1 (in unsigned char arithmetic, as the kernel's `c1s[j] += 1`).
    flipped = sign_bit(code1[q1]) != sign_bit(s1)
    q1 = np.where(flipped, np.where(s1 > 0, q1 + 1, q1 - 1), q1) % 256
    absmax1[:] = new_absmax1
    absmax2[:] = new_absmax2
    c1[:] = q1.reshape(-1)[:n]
    c2[:] = q2.reshape(-1)[:n]


class Adam8bit(torch.optim.Optimizer):
    """bitsandbytes' Adam8bit / AdamW8bit (one algorithm; only weight_decay's default differs),
    stepping through the transcription above. Its per-parameter state is bitsandbytes': `step`,
    `state1` and `state2` (float32 below `min_8bit_size` elements, else uint8 codes), `absmax1`
    and `absmax2` (one float32 per block of 256)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, min_8bit_size=4096):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.min_8bit_size = min_8bit_size
        self.code1, self.code2 = qmaps()

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                n = p.numel()
                if not state:
                    state["step"] = 0
                    if n < self.min_8bit_size:
                        state["state1"] = torch.zeros(n, dtype=torch.float32)
                        state["state2"] = torch.zeros(n, dtype=torch.float32)
                    else:
                        blocks = -(-n // BLOCK)
                        state["state1"] = torch.zeros(n, dtype=torch.uint8)
                        state["state2"] = torch.zeros(n, dtype=torch.uint8)
                        state["absmax1"] = torch.zeros(blocks, dtype=torch.float32)
                        state["absmax2"] = torch.zeros(blocks, dtype=torch.float32)
                state["step"] += 1
                c = scalars(group["lr"], beta1, beta2, group["eps"], group["weight_decay"], state["step"])
                theta = p.detach().reshape(-1).numpy().astype(F32).copy()
                g = p.grad.detach().reshape(-1).numpy().astype(F32)
                if state["state1"].dtype == torch.float32:
                    s1 = state["state1"].numpy().copy()
                    s2 = state["state2"].numpy().copy()
                    with np.errstate(all="ignore"):
                        step_32bit(theta, g, s1, s2, c)
                    state["state1"] = torch.from_numpy(s1)
                    state["state2"] = torch.from_numpy(s2)
                else:
                    c1 = state["state1"].numpy().astype(np.int64)
                    c2 = state["state2"].numpy().astype(np.int64)
                    absmax1 = state["absmax1"].numpy().copy()
                    absmax2 = state["absmax2"].numpy().copy()
                    step_blockwise(theta, g, c1, c2, absmax1, absmax2, self.code1, self.code2, c)
                    state["state1"] = torch.from_numpy(c1.astype(np.uint8))
                    state["state2"] = torch.from_numpy(c2.astype(np.uint8))
                    state["absmax1"] = torch.from_numpy(absmax1)
                    state["absmax2"] = torch.from_numpy(absmax2)
                p.copy_(torch.from_numpy(theta).reshape(p.shape))


# --- Lion8bit: Optimizer1State("lion") -------------------------------------------------------


def sgn(x):
    """The kernels' `sgn`: (0 < x) - (x < 0), so 0 for 0 and NaN."""
    return ((F32(0.0) < x).astype(np.int32) - (x < F32(0.0)).astype(np.int32)).astype(F32)


def lion_scalars(lr, beta1, beta2, weight_decay):
    lr, beta1, beta2, wd = (F32(x) for x in (lr, beta1, beta2, weight_decay))
    return {
        "lr": lr,
        "beta1": beta1,
        "beta2": beta2,
        "one_minus_beta1": F32(1.0) - beta1,
        "one_minus_beta2": F32(1.0) - beta2,
        "decay": wd > 0,
        "decay_factor": F32(1.0) - lr * wd,
    }


def lion_step_32bit(p, g, s1, c):
    """kOptimizer32bit1State<float, LION>: decoupled decay, then the sign step, then the moment."""
    if c["decay"]:
        p[:] = p * c["decay_factor"]
    p[:] = p - c["lr"] * sgn(s1 * c["beta1"] + c["one_minus_beta1"] * g)
    s1[:] = s1 * c["beta2"] + c["one_minus_beta2"] * g


def lion_step_blockwise(p, g, c1, absmax1, code1, c):
    """kOptimizerStatic8bit1StateBlockwise<float, LION, 256, 1> on flat arrays (in place). No
    special case for non-finite gradients in this kernel."""
    n = p.size
    blocks = absmax1.size
    padded = blocks * BLOCK
    g_pad = np.zeros(padded, dtype=F32)
    g_pad[:n] = g
    c1_pad = np.full(padded, PAD_CODE1, dtype=np.int64)
    c1_pad[:n] = c1
    g_pad = g_pad.reshape(blocks, BLOCK)
    c1_pad = c1_pad.reshape(blocks, BLOCK)
    with np.errstate(all="ignore"):
        s1 = code1[c1_pad] * absmax1[:, None]
        update = c["lr"] * sgn(s1 * c["beta1"] + c["one_minus_beta1"] * g_pad)
        s1 = s1 * c["beta2"] + c["one_minus_beta2"] * g_pad
        new_absmax1 = np.fmax.reduce(np.abs(s1), axis=1, initial=-np.finfo(F32).max).astype(F32)
        theta = p * c["decay_factor"] if c["decay"] else p
        p[:] = theta - update.reshape(-1)[:n]
        q1 = quantize_2d(code1, s1 / new_absmax1[:, None], signed=True)
    flipped = sign_bit(code1[q1]) != sign_bit(s1)
    q1 = np.where(flipped, np.where(s1 > 0, q1 + 1, q1 - 1), q1) % 256
    absmax1[:] = new_absmax1
    c1[:] = q1.reshape(-1)[:n]


class Lion8bit(torch.optim.Optimizer):
    """bitsandbytes' Lion8bit through the transcription above. Its per-parameter state is
    bitsandbytes': `step`, `state1` (float32 below `min_8bit_size` elements, else uint8 codes of
    the signed map) and `absmax1`."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, min_8bit_size=4096):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))
        self.min_8bit_size = min_8bit_size
        self.code1, _ = qmaps()

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            c = lion_scalars(group["lr"], beta1, beta2, group["weight_decay"])
            for p in group["params"]:
                state = self.state[p]
                n = p.numel()
                if not state:
                    state["step"] = 0
                    if n < self.min_8bit_size:
                        state["state1"] = torch.zeros(n, dtype=torch.float32)
                    else:
                        state["state1"] = torch.zeros(n, dtype=torch.uint8)
                        state["absmax1"] = torch.zeros(-(-n // BLOCK), dtype=torch.float32)
                state["step"] += 1
                theta = p.detach().reshape(-1).numpy().astype(F32).copy()
                g = p.grad.detach().reshape(-1).numpy().astype(F32)
                if state["state1"].dtype == torch.float32:
                    s1 = state["state1"].numpy().copy()
                    with np.errstate(all="ignore"):
                        lion_step_32bit(theta, g, s1, c)
                    state["state1"] = torch.from_numpy(s1)
                else:
                    c1 = state["state1"].numpy().astype(np.int64)
                    absmax1 = state["absmax1"].numpy().copy()
                    lion_step_blockwise(theta, g, c1, absmax1, self.code1, c)
                    state["state1"] = torch.from_numpy(c1.astype(np.uint8))
                    state["absmax1"] = torch.from_numpy(absmax1)
                p.copy_(torch.from_numpy(theta).reshape(p.shape))
