"""Replay cases of adamlab's `asgd` against torch.optim.ASGD (single-tensor path)."""

import torch

from generate import Case

REFERENCE = "torch.optim.ASGD"


def asgd(params, **kwargs):
    return torch.optim.ASGD(params, foreach=False, **kwargs)


CASES = [
    # t0 = 1e6: μ stays 1, ax copies θ.
    Case("asgd", "default", {"lr": 1e-2}, asgd, REFERENCE),
    # Averaging from step 51 on: μ = 1/(t − 50).
    Case("asgd", "averaging-after-t0", {"lr": 1e-2, "t0": 50}, asgd, REFERENCE),
    Case("asgd", "lambd-alpha", {"lr": 1e-2, "lambd": 0.01, "alpha": 0.5, "t0": 10}, asgd, REFERENCE),
    Case("asgd", "weight-decay", {"lr": 1e-2, "weight_decay": 0.1, "t0": 100}, asgd, REFERENCE),
    Case("asgd", "maximize", {"lr": 1e-2, "maximize": True, "t0": 100}, asgd, REFERENCE),
    # η = 0.5/(1 + 0.05·t)^0.75 and θ shrinks by 1 − 0.1·η each step.
    Case("asgd", "large-lr", {"lr": 0.5, "lambd": 0.1, "t0": 20}, asgd, REFERENCE),
    # |g| ~ 1e6 with an lr that keeps θ of order 1 (at lr 1e-2, θ ~ 1e5 and cancellations near
    # 0 differ from torch's fused multiply-add by an ulp of the operands, as for SGD).
    Case("asgd", "huge-gradients", {"lr": 1e-8, "t0": 0}, asgd, REFERENCE, gradients="huge"),
    Case("asgd", "zeros-and-sign-flips", {"lr": 1e-2, "t0": 0}, asgd, REFERENCE, gradients="zeros-and-flips"),
]

# The article's MLP with torch.optim.ASGD at its defaults and lr 0.01 (its default too).
MLP = ("asgd", asgd, {"lr": 0.01}, REFERENCE)
