"""Replay cases of adamlab's `adam` and `adamw` against torch.optim.Adam / AdamW."""

import torch

from generate import Case

REFERENCE_ADAM = "torch.optim.Adam"
REFERENCE_ADAMW = "torch.optim.AdamW"


def adam(params, **kwargs):
    return torch.optim.Adam(params, foreach=False, **kwargs)


def adamw(params, **kwargs):
    return torch.optim.AdamW(params, foreach=False, **kwargs)


CASES = [
    Case("adam", "default", {"lr": 1e-3}, adam, REFERENCE_ADAM),
    Case("adam", "amsgrad", {"lr": 1e-3, "amsgrad": True}, adam, REFERENCE_ADAM, gradients="decaying"),
    Case("adam", "l2-weight-decay", {"lr": 1e-3, "weight_decay": 0.1}, adam, REFERENCE_ADAM),
    Case("adam", "decoupled-weight-decay", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}, adam, REFERENCE_ADAM),
    Case("adam", "maximize", {"lr": 1e-3, "maximize": True}, adam, REFERENCE_ADAM),
    Case("adam", "betas-0.8-0.9-eps-1e-6", {"lr": 1e-3, "betas": (0.8, 0.9), "eps": 1e-6}, adam, REFERENCE_ADAM),
    Case("adam", "large-lr", {"lr": 0.1}, adam, REFERENCE_ADAM),
    Case("adam", "tiny-gradients", {"lr": 1e-3}, adam, REFERENCE_ADAM, gradients="tiny"),
    Case("adam", "huge-gradients", {"lr": 1e-3}, adam, REFERENCE_ADAM, gradients="huge"),
    Case("adam", "zeros-and-sign-flips", {"lr": 1e-3}, adam, REFERENCE_ADAM, gradients="zeros-and-flips"),
    Case("adamw", "default", {"lr": 1e-3}, adamw, REFERENCE_ADAMW),
    Case("adamw", "large-decay", {"lr": 1e-2, "weight_decay": 0.5}, adamw, REFERENCE_ADAMW),
    Case("adamw", "tiny-gradients-eps-1e-7", {"lr": 1e-3, "eps": 1e-7}, adamw, REFERENCE_ADAMW, gradients="tiny"),
    Case(
        "adamw",
        "amsgrad-maximize",
        {"lr": 1e-2, "weight_decay": 0.05, "amsgrad": True, "maximize": True},
        adamw,
        REFERENCE_ADAMW,
        gradients="decaying",
    ),
]

# The article's MLP is Adam at lr 0.01 (fixtures/torch/mlp_article.json); AdamW at its defaults.
MLP = ("adamw", adamw, {"lr": 0.01}, REFERENCE_ADAMW)
