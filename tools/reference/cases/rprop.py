"""Replay cases of adamlab's `rprop` against torch.optim.Rprop (single-tensor path)."""

import torch

from generate import Case

REFERENCE = "torch.optim.Rprop"


def rprop(params, **kwargs):
    return torch.optim.Rprop(params, foreach=False, **kwargs)


CASES = [
    Case("rprop", "default", {"lr": 1e-2}, rprop, REFERENCE),
    Case("rprop", "etas-0.3-1.5", {"lr": 1e-2, "etas": (0.3, 1.5)}, rprop, REFERENCE),
    # Bounds next to lr, so that both clamps act within a few steps of random signs.
    Case("rprop", "step-sizes-clamped", {"lr": 1e-2, "step_sizes": (0.008, 0.012)}, rprop, REFERENCE),
    Case("rprop", "maximize", {"lr": 1e-2, "maximize": True}, rprop, REFERENCE),
    Case("rprop", "large-lr", {"lr": 0.5}, rprop, REFERENCE),
    # g·p ~ 1e-18: the sign test is on the f32 product, still a normal number.
    Case("rprop", "tiny-gradients", {"lr": 1e-2}, rprop, REFERENCE, gradients="tiny"),
    Case("rprop", "huge-gradients", {"lr": 1e-2}, rprop, REFERENCE, gradients="huge"),
    # Zero gradients: no step, step size unchanged; flips every other step: no step, p = 0.
    Case("rprop", "zeros-and-sign-flips", {"lr": 1e-2}, rprop, REFERENCE, gradients="zeros-and-flips"),
]

# The article's MLP with torch.optim.Rprop at its defaults (lr 0.01 is its default too).
MLP = ("rprop", rprop, {"lr": 0.01}, REFERENCE)
