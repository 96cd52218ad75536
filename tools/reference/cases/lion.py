"""Replay cases of adamlab's `lion` against lion_pytorch.Lion 0.2.5."""

from importlib.metadata import version

from lion_pytorch import Lion

from generate import Case

REFERENCE = "lion_pytorch.Lion"
VERSION = "lion-pytorch " + version("lion-pytorch")


def lion(params, **kwargs):
    # use_triton=False (the default): the plain tensor-op update_fn.
    return Lion(params, **kwargs)


def case(name, kwargs, **options):
    return Case("lion", name, kwargs, lion, REFERENCE, reference_version=VERSION, **options)


# No `huge` case: Lion's update is a sign and its momentum holds no squares, so gradients ×1e6
# compute the default case's arithmetic at 1e6 times its scale. Measured when it was here: the
# parameters equal torch's bit for bit, and exp_avg differs by up to 3.1e-2 on values up to
# 1.8e5 where β₂·m and (1 − β₂)·g nearly cancel, because torch fuses that multiply-add into one
# FMA and burn rounds twice: a few ulps of the 1e4-sized terms, which the replay's absolute
# tolerance (1e-6, set for unit-scale values) cannot take. At unit scale the same rounding is
# below 3% of the tolerance in every case. The suite's `stays_finite_on_zero_and_huge_gradients`
# covers finiteness at 1e15.
CASES = [
    case("default", {"lr": 1e-4}),
    case("weight-decay", {"lr": 1e-3, "weight_decay": 1.0}),
    case("decoupled-weight-decay", {"lr": 3e-3, "weight_decay": 1e-3, "decoupled_weight_decay": True}),
    case("betas-0.95-0.98", {"lr": 1e-4, "betas": (0.95, 0.98)}),
    case("beta1-0-sign-sgd", {"lr": 1e-3, "betas": (0.0, 0.99)}),
    case("large-lr", {"lr": 0.1}),
    case("tiny-gradients", {"lr": 1e-4}, gradients="tiny"),
    # Gradients ×10 for 20 steps, then ×0.1: the momentum outvotes the small new gradients for a
    # while, so the sign follows m rather than g.
    case("decaying-gradients", {"lr": 1e-4}, gradients="decaying"),
    case("zeros-and-sign-flips", {"lr": 1e-4}, gradients="zeros-and-flips"),
]

# The article's MLP at lion-pytorch's defaults but lr 0.01.
MLP = ("lion", lion, {"lr": 0.01}, REFERENCE)
