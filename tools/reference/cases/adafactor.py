"""Replay cases of adamlab's `adafactor` against torch.optim.Adafactor (torch >= 2.5).

Every case has a parameter of rank 1, which takes the unfactored path (state `variance`), and
parameters of rank 2 and 4, which take the factored one (`row_var`, `col_var` over the last two
dimensions).
"""

import torch

from generate import Case

REFERENCE = "torch.optim.Adafactor"


def adafactor(params, **kwargs):
    return torch.optim.Adafactor(params, foreach=False, **kwargs)


def case(name, kwargs, **options):
    return Case("adafactor", name, kwargs, adafactor, REFERENCE, **options)


CASES = [
    # Update clipping (d = 1) is active whenever RMS(U) > 1, which normal gradients often give.
    case("default", {"lr": 1e-2}),
    case("weight-decay", {"lr": 1e-2, "weight_decay": 0.5}),
    case("maximize", {"lr": 1e-2, "maximize": True}),
    case("beta2-decay-0.5-d-2", {"lr": 1e-2, "beta2_decay": -0.5, "d": 2.0}),
    # rho = min(lr, 1/sqrt(t)) is 1/sqrt(t) for the first 4 steps.
    case("large-lr", {"lr": 0.5}),
    # eps2 = 10 floors RMS(theta) (about 1 here) in the step size.
    case("eps2-10", {"lr": 1e-2, "eps": (None, 10.0)}),
    # g^2 ~ 1e-18 lies below eps1^2 = 2^-46: the variance floor sets U = g/eps1.
    case("tiny-gradients", {"lr": 1e-2}, gradients="tiny"),
    # eps1^2 = 1e-60 is 0 in f32: no floor, U = g/sqrt(V) even for tiny gradients.
    case("tiny-gradients-eps1-1e-30", {"lr": 1e-2, "eps": (1e-30, 1e-3)}, gradients="tiny"),
    case("huge-gradients", {"lr": 1e-2}, gradients="huge"),
    # Whole zero steps and zero elements: V decays, rows and columns of zeros in the factors.
    case("zeros-and-sign-flips", {"lr": 1e-2}, gradients="zeros-and-flips"),
]

MLP = ("adafactor", adafactor, {"lr": 0.01}, REFERENCE)
