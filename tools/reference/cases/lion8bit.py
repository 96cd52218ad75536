"""Replay cases of adamlab's `lion8bit` against bitsandbytes' Lion8bit, as its CUDA kernels compute
it: a NumPy transcription (tools/reference/bnb_blockwise.py)."""

import bnb_blockwise
from cases.adam8bit import BLOCKS, VERSION
from generate import Case

REFERENCE = "bitsandbytes.optim.Lion8bit (NumPy transcription of csrc/kernels.cu)"


def lion8bit(params, **kwargs):
    return bnb_blockwise.Lion8bit(params, **kwargs)


def qmap(opt, params):
    """bitsandbytes' signed map, recorded once per fixture."""
    import torch

    return {"qmap.signed": torch.from_numpy(opt.code1)}


def case(name, kwargs, **extra):
    return Case("lion8bit", name, kwargs, lion8bit, REFERENCE, reference_version=VERSION, final=qmap, **extra)


CASES = [
    # Below min_8bit_size (4096): float32 state, kOptimizer32bit1State.
    case("float32-state", {"lr": 1e-4}),
    # min_8bit_size = 12: float32 for the 5-element parameter, 8-bit for the 12 (at the threshold)
    # and 600-element ones (three blocks, the last partial).
    case("blockwise", {"lr": 1e-3, "min_8bit_size": 12}, shapes=BLOCKS),
    case("blockwise-betas-weight-decay", {"lr": 1e-3, "betas": (0.8, 0.95), "weight_decay": 0.5, "min_8bit_size": 0}),
    case("blockwise-zeros-and-sign-flips", {"lr": 1e-3, "min_8bit_size": 0}, gradients="zeros-and-flips"),
    case("blockwise-huge-gradients", {"lr": 1e-3, "min_8bit_size": 0}, gradients="huge"),
]

MLP = ("lion8bit", lion8bit, {"lr": 0.01}, REFERENCE)
