"""Replay cases of adamlab's `radam` against torch.optim.RAdam."""

import torch

from generate import Case

REFERENCE = "torch.optim.RAdam"


def radam(params, **kwargs):
    return torch.optim.RAdam(params, foreach=False, **kwargs)


CASES = [
    # β₂ = 0.999: steps 1–5 are SGD with momentum (ρₜ ≤ 5), the rest rectified.
    Case("radam", "default", {"lr": 1e-3}, radam, REFERENCE),
    Case("radam", "l2-weight-decay", {"lr": 1e-3, "weight_decay": 0.1}, radam, REFERENCE),
    Case(
        "radam",
        "decoupled-weight-decay",
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
        radam,
        REFERENCE,
    ),
    Case("radam", "maximize", {"lr": 1e-3, "maximize": True}, radam, REFERENCE),
    # β₂ = 0.9: ρ∞ = 19, so the rectification term rₜ approaches 1 within the run.
    Case("radam", "betas-0.8-0.9-eps-1e-6", {"lr": 1e-3, "betas": (0.8, 0.9), "eps": 1e-6}, radam, REFERENCE),
    # β₂ = 0.6: ρ∞ = 4 ≤ 5, never rectified; β₁ < 0.5 takes the other form of torch's lerp.
    Case("radam", "betas-0.3-0.6-never-rectified", {"lr": 1e-3, "betas": (0.3, 0.6)}, radam, REFERENCE),
    Case("radam", "large-lr", {"lr": 0.1}, radam, REFERENCE),
    # eps is added to √v, not √v̂: with |g| ~ 1e-9 it dominates.
    Case("radam", "tiny-gradients", {"lr": 1e-3}, radam, REFERENCE, gradients="tiny"),
    Case("radam", "huge-gradients", {"lr": 1e-3}, radam, REFERENCE, gradients="huge"),
    Case("radam", "zeros-and-sign-flips", {"lr": 1e-3}, radam, REFERENCE, gradients="zeros-and-flips"),
]

MLP = ("radam", radam, {"lr": 0.01}, REFERENCE)
