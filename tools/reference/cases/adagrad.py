"""Replay cases of adamlab's `adagrad` against torch.optim.Adagrad (single-tensor path)."""

import torch

from generate import Case

REFERENCE = "torch.optim.Adagrad"


def adagrad(params, **kwargs):
    return torch.optim.Adagrad(params, foreach=False, **kwargs)


CASES = [
    Case("adagrad", "default", {"lr": 1e-2}, adagrad, REFERENCE),
    Case("adagrad", "lr-decay", {"lr": 1e-2, "lr_decay": 0.01}, adagrad, REFERENCE),
    Case("adagrad", "weight-decay", {"lr": 1e-2, "weight_decay": 0.1}, adagrad, REFERENCE),
    Case("adagrad", "initial-accumulator-value", {"lr": 1e-2, "initial_accumulator_value": 0.1}, adagrad, REFERENCE),
    Case("adagrad", "eps-1e-3", {"lr": 1e-2, "eps": 1e-3}, adagrad, REFERENCE, gradients="decaying"),
    Case("adagrad", "maximize", {"lr": 1e-2, "maximize": True}, adagrad, REFERENCE),
    Case("adagrad", "large-lr", {"lr": 1.0}, adagrad, REFERENCE),
    # |g| ~ 1e-9: √s ~ 1e-9·√t sits within a factor of 10 of eps = 1e-10.
    Case("adagrad", "tiny-gradients", {"lr": 1e-2}, adagrad, REFERENCE, gradients="tiny"),
    Case("adagrad", "huge-gradients", {"lr": 1e-2}, adagrad, REFERENCE, gradients="huge"),
    # Elements whose gradient is always 0 keep s = 0: their update is 0/(0 + eps).
    Case(
        "adagrad",
        "all-options-zeros-and-sign-flips",
        {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.01, "initial_accumulator_value": 0.5, "eps": 1e-6, "maximize": True},
        adagrad,
        REFERENCE,
        gradients="zeros-and-flips",
    ),
]

# The article's MLP at Adagrad's defaults, lr 0.01 (torch's default too).
MLP = ("adagrad", adagrad, {"lr": 0.01}, REFERENCE)
