"""Replay cases of adamlab's `adam8bit` and `adamw8bit` against bitsandbytes' Adam8bit / AdamW8bit,
as its CUDA kernels compute them: a NumPy transcription (tools/reference/bnb_blockwise.py says why
not bitsandbytes' own CPU path, and what was transcribed)."""

import bnb_blockwise
from generate import Case

REFERENCE_ADAM = "bitsandbytes.optim.Adam8bit (NumPy transcription of csrc/kernels.cu)"
REFERENCE_ADAMW = "bitsandbytes.optim.AdamW8bit (NumPy transcription of csrc/kernels.cu)"
VERSION = "bitsandbytes 0.50.2 (kernels.cu of tag 0.50.1)"


def adam8bit(params, **kwargs):
    return bnb_blockwise.Adam8bit(params, **kwargs)


def adamw8bit(params, **kwargs):
    kwargs.setdefault("weight_decay", 1e-2)
    return bnb_blockwise.Adam8bit(params, **kwargs)


def qmaps(opt, params):
    """bitsandbytes' quantization maps, recorded once per fixture."""
    import torch

    return {"qmap.signed": torch.from_numpy(opt.code1), "qmap.unsigned": torch.from_numpy(opt.code2)}


def case(optimizer, name, kwargs, make, reference, **extra):
    return Case(optimizer, name, kwargs, make, reference, reference_version=VERSION, final=qmaps, **extra)


# Three blocks of 256, the last one partial: blocks, padding and the per-block absmax.
BLOCKS = [(5,), (3, 4), (2, 300)]

CASES = [
    # Below min_8bit_size (4096) every state is float32: kOptimizer32bit2State.
    case("adam8bit", "float32-states", {"lr": 1e-3}, adam8bit, REFERENCE_ADAM),
    # min_8bit_size = 12: the 5-element parameter keeps float32 states, the 12-element one (at the
    # threshold) and the 600-element one are 8-bit.
    case("adam8bit", "blockwise", {"lr": 1e-3, "min_8bit_size": 12}, adam8bit, REFERENCE_ADAM, shapes=BLOCKS),
    case(
        "adam8bit",
        "blockwise-betas-eps-weight-decay",
        {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "min_8bit_size": 0},
        adam8bit,
        REFERENCE_ADAM,
    ),
    case("adam8bit", "blockwise-tiny-gradients", {"lr": 1e-3, "min_8bit_size": 0}, adam8bit, REFERENCE_ADAM, gradients="tiny"),
    case("adam8bit", "blockwise-huge-gradients", {"lr": 1e-3, "min_8bit_size": 0}, adam8bit, REFERENCE_ADAM, gradients="huge"),
    case(
        "adam8bit",
        "blockwise-zeros-and-sign-flips",
        {"lr": 1e-3, "min_8bit_size": 0},
        adam8bit,
        REFERENCE_ADAM,
        gradients="zeros-and-flips",
    ),
]

# The article's MLP (three parameters, all below min_8bit_size: float32 states).
MLP = ("adam8bit", adam8bit, {"lr": 0.01}, REFERENCE_ADAM)
