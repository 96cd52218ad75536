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


CASES = [
    case("default", {"lr": 1e-4}),
    case("weight-decay", {"lr": 1e-3, "weight_decay": 1.0}),
    case("decoupled-weight-decay", {"lr": 3e-3, "weight_decay": 1e-3, "decoupled_weight_decay": True}),
    case("betas-0.95-0.98", {"lr": 1e-4, "betas": (0.95, 0.98)}),
    case("beta1-0-sign-sgd", {"lr": 1e-3, "betas": (0.0, 0.99)}),
    case("large-lr", {"lr": 0.1}),
    case("tiny-gradients", {"lr": 1e-4}, gradients="tiny"),
    case("huge-gradients", {"lr": 1e-4}, gradients="huge"),
    case("zeros-and-sign-flips", {"lr": 1e-4}, gradients="zeros-and-flips"),
]

# The article's MLP at lion-pytorch's defaults but lr 0.01.
MLP = ("lion", lion, {"lr": 0.01}, REFERENCE)
