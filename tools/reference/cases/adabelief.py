"""Replay cases of adamlab's `adabelief` against adabelief_pytorch.AdaBelief 0.2.1 (the authors')."""

import contextlib
import io
from importlib.metadata import version

from adabelief_pytorch import AdaBelief

from generate import Case

REFERENCE = "adabelief_pytorch.AdaBelief"
VERSION = "adabelief-pytorch " + version("adabelief-pytorch")


def adabelief(params, **kwargs):
    # print_change_log=False, and the lines it prints regardless, only print.
    with contextlib.redirect_stdout(io.StringIO()):
        return AdaBelief(params, print_change_log=False, **kwargs)


def case(name, kwargs, **options):
    return Case("adabelief", name, kwargs, adabelief, REFERENCE, reference_version=VERSION, **options)


# The defaults of 0.2.1: eps 1e-16, weight_decouple, rectify and degenerated_to_sgd on. With
# β₂ = 0.999, ρₜ < 5 for steps 1–5 (plain momentum steps), then the rectified steps.
CASES = [
    case("default", {"lr": 1e-3}),
    case("decoupled-weight-decay", {"lr": 1e-2, "weight_decay": 0.1}),
    case("fixed-decay", {"lr": 1e-3, "weight_decay": 1e-3, "fixed_decay": True}),
    case("l2-weight-decay", {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": False}),
    # Adam's update with s in place of v, ε inside and outside the square root.
    case("not-rectified", {"lr": 1e-3, "rectify": False}),
    # Large then small gradients: the running maximum of s stays above s and is the denominator.
    case("amsgrad-not-rectified", {"lr": 1e-3, "amsgrad": True, "rectify": False}, gradients="decaying"),
    # Rectified, the maximum is kept but no step reads it.
    case("amsgrad", {"lr": 1e-3, "amsgrad": True}, gradients="decaying"),
    # Steps 1–5 leave θ alone (ρₜ < 5, no momentum step).
    case("no-sgd-start", {"lr": 1e-3, "degenerated_to_sgd": False}),
    # ρ∞ = 19: rectified from step 7, the rectification term near 1 within the run.
    case("betas-0.8-0.9-eps-1e-8", {"lr": 1e-3, "betas": (0.8, 0.9), "eps": 1e-8}),
    # ρ∞ = 4 < 5: never rectified, momentum steps throughout.
    case("betas-0.3-0.6-never-rectified", {"lr": 1e-3, "betas": (0.3, 0.6)}),
    case("large-lr", {"lr": 0.1}),
    # |g − m| ~ 1e-9: s is mostly the ε added at every step.
    case("tiny-gradients", {"lr": 1e-3}, gradients="tiny"),
    case("huge-gradients", {"lr": 1e-3}, gradients="huge"),
    # Elements always 0 keep m = 0 and s = Σ β₂ᵏ·ε.
    case("zeros-and-sign-flips", {"lr": 1e-3}, gradients="zeros-and-flips"),
]

# The article's MLP at adabelief-pytorch's defaults but lr 0.01.
MLP = ("adabelief", adabelief, {"lr": 0.01}, REFERENCE)
