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
    # rho = min(lr, 1/sqrt(t)) is lr up to step 100, then 1/sqrt(t). (lr 0.5, where 1/sqrt(t)
    # rules from step 4, makes steps of RMS(theta)/sqrt(t) that amplify rounding: torch against
    # itself, from initial weights one ulp apart, ends 0.44 of the replay tolerance apart.)
    case("large-lr", {"lr": 0.1}),
    # eps2 = 10 floors RMS(theta) (about 1 here) in the step size.
    case("eps2-10", {"lr": 1e-2, "eps": (None, 10.0)}),
    # g^2 ~ 1e-18 lies below eps1^2 = 2^-46: the variance floor sets U = g/eps1.
    case("tiny-gradients", {"lr": 1e-2}, gradients="tiny"),
    # An explicit eps1 = 1e-10: on the factored parameters its floors (1e-10 on mean(R), 1e-20 on
    # V-hat) give U = g/1e-10 ~ 10, clipped to RMS 1, where the default eps1 gives U ~ 0.008; the
    # vector's V ~ 1e-18 stays above 1e-20. (eps1 = 1e-30 would leave R*C ~ g^4 to subnormal f32,
    # which GPUs flush to zero: such a case ran 0.26 from torch on wgpu over Vulkan on an H200,
    # within tolerance on the CPU backends.)
    case("tiny-gradients-eps1-1e-10", {"lr": 1e-2, "eps": (1e-10, 1e-3)}, gradients="tiny"),
    case("huge-gradients", {"lr": 1e-2}, gradients="huge"),
    # Whole zero steps and zero elements: V decays, rows and columns of zeros in the factors.
    case("zeros-and-sign-flips", {"lr": 1e-2}, gradients="zeros-and-flips"),
]

MLP = ("adafactor", adafactor, {"lr": 0.01}, REFERENCE)
