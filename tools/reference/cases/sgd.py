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
    Case(
        "sgd",
        "huge-gradients",
        {"lr": 1e-2, "momentum": 0.9, "nesterov": True},
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
