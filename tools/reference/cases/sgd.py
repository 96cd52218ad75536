"""Replay cases of adamlab's `sgd` against torch.optim.SGD (single-tensor path)."""

import torch

from generate import Case

REFERENCE = "torch.optim.SGD"


def sgd(params, **kwargs):
    return torch.optim.SGD(params, foreach=False, **kwargs)


CASES = [
    Case("sgd", "default", {"lr": 1e-2}, sgd, REFERENCE),
    Case("sgd", "momentum", {"lr": 1e-2, "momentum": 0.9}, sgd, REFERENCE),
    Case("sgd", "momentum-dampening", {"lr": 1e-2, "momentum": 0.9, "dampening": 0.5}, sgd, REFERENCE),
    Case("sgd", "nesterov", {"lr": 1e-2, "momentum": 0.9, "nesterov": True}, sgd, REFERENCE),
    Case("sgd", "weight-decay", {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.1}, sgd, REFERENCE),
    Case("sgd", "maximize", {"lr": 1e-2, "momentum": 0.9, "maximize": True}, sgd, REFERENCE),
    Case("sgd", "large-lr", {"lr": 0.5, "momentum": 0.5, "weight_decay": 0.01}, sgd, REFERENCE),
    # |g| ~ 1e6 and buffers ~ 1e7, with an lr that keeps θ of order 1. At lr 1e-2, θ grows to
    # 3.5e6 and where θ − lr·g cancels to near 0, torch's fused multiply-add (one rounding) and
    # burn's multiply-then-add (two) differ by an ulp of the operands: 0.5 absolute, measured.
    Case(
        "sgd",
        "huge-gradients",
        {"lr": 1e-8, "momentum": 0.9, "nesterov": True},
        sgd,
        REFERENCE,
        gradients="huge",
    ),
    Case(
        "sgd",
        "zeros-and-sign-flips",
        {"lr": 1e-2, "momentum": 0.9, "dampening": 0.1},
        sgd,
        REFERENCE,
        gradients="zeros-and-flips",
    ),
]

# The article's MLP with torch.optim.SGD at its defaults (no momentum) and lr 0.01.
MLP = ("sgd", sgd, {"lr": 0.01}, REFERENCE)
