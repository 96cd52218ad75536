"""Replay cases of adamlab's `adadelta` against torch.optim.Adadelta (single-tensor path)."""

import torch

from generate import Case

REFERENCE = "torch.optim.Adadelta"


def adadelta(params, **kwargs):
    return torch.optim.Adadelta(params, foreach=False, **kwargs)


CASES = [
    Case("adadelta", "default", {"lr": 1.0}, adadelta, REFERENCE),
    Case("adadelta", "rho-0.5", {"lr": 1.0, "rho": 0.5}, adadelta, REFERENCE),
    Case("adadelta", "eps-1e-3", {"lr": 1.0, "eps": 1e-3}, adadelta, REFERENCE),
    Case("adadelta", "weight-decay", {"lr": 1.0, "weight_decay": 0.1}, adadelta, REFERENCE),
    Case("adadelta", "maximize", {"lr": 1.0, "maximize": True}, adadelta, REFERENCE),
    # lr 1 makes θ − lr·Δ exact; 0.3 exercises the rounding of the last product.
    Case("adadelta", "lr-0.3", {"lr": 0.3}, adadelta, REFERENCE),
    # Δ grows with the running RMS of past updates: lr 10 lets it feed on itself.
    Case("adadelta", "large-lr", {"lr": 10.0}, adadelta, REFERENCE),
    Case("adadelta", "huge-gradients", {"lr": 1.0}, adadelta, REFERENCE, gradients="huge"),
    Case("adadelta", "zeros-and-sign-flips", {"lr": 1.0}, adadelta, REFERENCE, gradients="zeros-and-flips"),
    Case(
        "adadelta",
        "all-options-decaying",
        {"lr": 0.5, "rho": 0.95, "eps": 1e-5, "weight_decay": 0.01, "maximize": True},
        adadelta,
        REFERENCE,
        gradients="decaying",
    ),
]

# The article's MLP at Adadelta's defaults but lr 0.01 (torch's default lr is 1.0).
MLP = ("adadelta", adadelta, {"lr": 0.01}, REFERENCE)
