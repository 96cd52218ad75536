"""Replay cases of adamlab's `rmsprop` against torch.optim.RMSprop (single-tensor path)."""

import torch

from generate import Case

REFERENCE = "torch.optim.RMSprop"


def rmsprop(params, **kwargs):
    return torch.optim.RMSprop(params, foreach=False, **kwargs)


CASES = [
    Case("rmsprop", "default", {"lr": 1e-2}, rmsprop, REFERENCE),
    Case("rmsprop", "alpha-0.9", {"lr": 1e-2, "alpha": 0.9}, rmsprop, REFERENCE),
    Case("rmsprop", "centered", {"lr": 1e-2, "centered": True}, rmsprop, REFERENCE),
    # lerp weight 1 − α = 0.7 ≥ 0.5: torch's lerp takes its `end − (1 − w)·(end − start)` form.
    Case("rmsprop", "centered-alpha-0.3", {"lr": 1e-3, "alpha": 0.3, "centered": True}, rmsprop, REFERENCE),
    Case("rmsprop", "momentum", {"lr": 1e-3, "momentum": 0.9}, rmsprop, REFERENCE),
    Case("rmsprop", "centered-momentum", {"lr": 1e-3, "momentum": 0.5, "centered": True}, rmsprop, REFERENCE, gradients="decaying"),
    Case("rmsprop", "weight-decay", {"lr": 1e-2, "weight_decay": 0.1}, rmsprop, REFERENCE),
    Case("rmsprop", "maximize", {"lr": 1e-2, "maximize": True}, rmsprop, REFERENCE),
    # |g| ~ 1e-9: √v ~ 1e-9·√(1 − αᵗ) sits below eps = 1e-8, which dominates the denominator.
    Case("rmsprop", "tiny-gradients", {"lr": 1e-2}, rmsprop, REFERENCE, gradients="tiny"),
    Case("rmsprop", "huge-gradients", {"lr": 1e-2, "momentum": 0.9}, rmsprop, REFERENCE, gradients="huge"),
]

# The article's MLP at RMSprop's defaults, lr 0.01 (torch's default too).
MLP = ("rmsprop", rmsprop, {"lr": 0.01}, REFERENCE)
