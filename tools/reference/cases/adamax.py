"""Replay cases of adamlab's `adamax` against torch.optim.Adamax."""

import torch

from generate import Case

REFERENCE = "torch.optim.Adamax"


def adamax(params, **kwargs):
    return torch.optim.Adamax(params, foreach=False, **kwargs)


CASES = [
    Case("adamax", "default", {"lr": 2e-3}, adamax, REFERENCE),
    Case("adamax", "weight-decay", {"lr": 2e-3, "weight_decay": 0.1}, adamax, REFERENCE),
    Case("adamax", "maximize", {"lr": 2e-3, "maximize": True}, adamax, REFERENCE),
    # β₁ < 0.5 takes the other form of torch's lerp; a larger eps weighs in |g| + eps.
    Case("adamax", "betas-0.3-0.9-eps-1e-3", {"lr": 2e-3, "betas": (0.3, 0.9), "eps": 1e-3}, adamax, REFERENCE),
    Case("adamax", "large-lr", {"lr": 0.1}, adamax, REFERENCE),
    # |g| ~ 1e-9 next to eps = 1e-8: eps dominates u.
    Case("adamax", "tiny-gradients", {"lr": 2e-3}, adamax, REFERENCE, gradients="tiny"),
    Case("adamax", "huge-gradients", {"lr": 2e-3}, adamax, REFERENCE, gradients="huge"),
    # Zero gradients leave u = max(β₂·u, eps): u decays, and elements always 0 keep u = eps.
    Case("adamax", "zeros-and-sign-flips", {"lr": 2e-3}, adamax, REFERENCE, gradients="zeros-and-flips"),
    # Large then small gradients: u is the decayed maximum, not the current |g|.
    Case("adamax", "decaying-gradients", {"lr": 2e-3}, adamax, REFERENCE, gradients="decaying"),
]

MLP = ("adamax", adamax, {"lr": 0.01}, REFERENCE)
