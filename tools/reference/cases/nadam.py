"""Replay cases of adamlab's `nadam` against torch.optim.NAdam."""

import torch

from generate import Case

REFERENCE = "torch.optim.NAdam"


def nadam(params, **kwargs):
    return torch.optim.NAdam(params, foreach=False, **kwargs)


CASES = [
    Case("nadam", "default", {"lr": 2e-3}, nadam, REFERENCE),
    Case("nadam", "l2-weight-decay", {"lr": 2e-3, "weight_decay": 0.1}, nadam, REFERENCE),
    Case(
        "nadam",
        "decoupled-weight-decay",
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
        nadam,
        REFERENCE,
    ),
    Case("nadam", "maximize", {"lr": 2e-3, "maximize": True}, nadam, REFERENCE),
    # A faster momentum schedule: μₜ climbs from β₁/2 towards β₁ within the 200 steps.
    Case("nadam", "momentum-decay-0.05", {"lr": 2e-3, "momentum_decay": 0.05}, nadam, REFERENCE),
    # β₁ < 0.5 takes the other form of torch's lerp.
    Case("nadam", "betas-0.3-0.9-eps-1e-6", {"lr": 2e-3, "betas": (0.3, 0.9), "eps": 1e-6}, nadam, REFERENCE),
    Case("nadam", "large-lr", {"lr": 0.1}, nadam, REFERENCE),
    Case("nadam", "tiny-gradients", {"lr": 2e-3}, nadam, REFERENCE, gradients="tiny"),
    Case("nadam", "huge-gradients", {"lr": 2e-3}, nadam, REFERENCE, gradients="huge"),
    Case("nadam", "zeros-and-sign-flips", {"lr": 2e-3}, nadam, REFERENCE, gradients="zeros-and-flips"),
]

MLP = ("nadam", nadam, {"lr": 0.01}, REFERENCE)
