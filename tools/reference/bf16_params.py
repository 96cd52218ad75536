"""torch.optim.Adam and AdamW on bfloat16 parameters with stochastic rounding: the reference of
adamlab's `adam(bf16_stochastic_round=true)` and `adamw(bf16_stochastic_round=true)`.

torchao's low-bit optimizers (torchao/optim/adam.py, `single_param_adam`) step a bfloat16
parameter in float32 and write it back with `_fp32_to_bf16_sr` (torchao/optim/quant_utils.py)
when `bf16_stochastic_round=True`. This module does the same on top of torch's own Adam:

* the parameter and its gradient are widened to float32 (exact);
* torch.optim.adam.adam's single-tensor step runs on the float32 copy, with float32 moments
  (`state_dtype="f32"`) or float32 copies of bfloat16 moments written back rounded to nearest
  even (`state_dtype="bf16"`, as tools/reference/bf16_states.py);
* the float32 result goes back to bfloat16 by `fp32_to_bf16_sr` below: torchao's function, line
  for line, except that its random 16 bits are passed in instead of drawn with `torch.randint`.

The random bits are adamlab's counter-based stream (crates/adamlab-optim/src/stochastic.rs),
transcribed here in NumPy: element i of the parameter whose stream is s draws, at step t, the top
16 bits of SplitMix64's output at position i + 1 of the stream seeded with
key(seed, s, t) = mix(mix(mix(seed + golden) ^ s) ^ t). A parameter's stream is the order in
which the optimizer first stepped it (0, 1, …), recorded in its state as `rounding_stream`.
"""

import numpy as np
import torch
from torch.optim.adam import adam as adam_functional

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MASK = (1 << 64) - 1


def mix(z):
    """SplitMix64's output function, on a NumPy uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def key(seed, stream, step):
    k = mix(np.uint64((seed + 0x9E3779B97F4A7C15) & MASK))
    k = mix(k ^ np.uint64(stream))
    return mix(k ^ np.uint64(step))


def bits16(k, count):
    """The draws of elements 0 … count−1 under key k, as int32 in [0, 2^16)."""
    index = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(k) + index * GOLDEN
    return (mix(z) >> np.uint64(48)).astype(np.int32)


def fp32_to_bf16_sr(x_f32, rand_16bit):
    """torchao's `_fp32_to_bf16_sr` with its random bits given (int32, the shape of x_f32)."""
    x_f32_bits = x_f32.view(torch.int32)
    x_fraction = x_f32_bits & 0xFFFF  # lower 16 bits
    x_bf16_towards_zero = x_f32_bits & -65536  # upper 16 bits (0xFFFF0000 as an int32)
    x_f32_bits = torch.where(
        rand_16bit < x_fraction,
        x_bf16_towards_zero + 0x10000,
        x_bf16_towards_zero,
    )
    return x_f32_bits.view(torch.float32).bfloat16()


class AdamBf16Params(torch.optim.Optimizer):
    """torch.optim.Adam's keywords (`decoupled_weight_decay=True` is AdamW) on bfloat16 parameters,
    rounded back stochastically."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False, decoupled_weight_decay=False, seed=0, state_dtype="f32"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)
        self.seed = seed
        self.state_dtype = state_dtype
        self.streams = 0

    @torch.no_grad()
    def step(self):
        moment_dtype = torch.bfloat16 if self.state_dtype == "bf16" else torch.float32
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                assert p.dtype == torch.bfloat16, p.dtype
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, dtype=moment_dtype)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=moment_dtype)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p, dtype=moment_dtype)
                    state["rounding_stream"] = self.streams
                    self.streams += 1
                stored = [state["exp_avg"], state["exp_avg_sq"]]
                if group["amsgrad"]:
                    stored.append(state["max_exp_avg_sq"])
                # float32 moments are stepped in place; bfloat16 ones through float32 copies.
                m, v, *v_max = [s if s.dtype == torch.float32 else s.float() for s in stored]
                p_f32 = p.float()
                adam_functional(
                    [p_f32], [p.grad.float()], [m], [v], v_max, [state["step"]],
                    foreach=False, decoupled_weight_decay=group["decoupled_weight_decay"],
                    amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                    weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                )
                for target, value in zip(stored, [m, v, *v_max]):
                    if target is not value:
                        target.copy_(value)
                k = key(self.seed, state["rounding_stream"], int(state["step"].item()))
                rand = torch.from_numpy(bits16(k, p.numel())).reshape(p.shape)
                p.copy_(fp32_to_bf16_sr(p_f32, rand))


def adam(params, bf16_stochastic_round, **kwargs):
    assert bf16_stochastic_round is True, bf16_stochastic_round
    return AdamBf16Params(params, **kwargs)


def adamw(params, bf16_stochastic_round, weight_decay=1e-2, **kwargs):
    assert bf16_stochastic_round is True, bf16_stochastic_round
    return AdamBf16Params(params, weight_decay=weight_decay, decoupled_weight_decay=True, **kwargs)
