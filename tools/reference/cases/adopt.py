"""Replay cases of adamlab's `adopt` against pytorch_optimizer.ADOPT 4.1.0."""

from importlib.metadata import version

from pytorch_optimizer import ADOPT

from generate import Case

REFERENCE = "pytorch_optimizer.ADOPT"
VERSION = "pytorch-optimizer " + version("pytorch-optimizer")


def adopt(params, **kwargs):
    # foreach=False: the per-parameter path. clip_lambda keeps its default, t ↦ t^0.25.
    return ADOPT(params, foreach=False, **kwargs)


def case(name, kwargs, **options):
    return Case("adopt", name, kwargs, adopt, REFERENCE, reference_version=VERSION, **options)


# Step 1 only sets v = g² (and decays θ); from step 2, g/max(√v, ε) is clipped to ±t^0.25, so
# the ratio of two normal gradients is clipped often in every case.
CASES = [
    case("default", {"lr": 1e-3}),
    case("maximize", {"lr": 1e-3, "maximize": True}),
    case("l2-weight-decay", {"lr": 1e-3, "weight_decay": 0.1}),
    case("decoupled-weight-decay", {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True}),
    case("fixed-decay", {"lr": 1e-3, "weight_decay": 1e-3, "weight_decouple": True, "fixed_decay": True}),
    # 1 − β₁ ≥ 0.5: torch's lerp takes its other form.
    case("betas-0.3-0.99", {"lr": 1e-3, "betas": (0.3, 0.99)}),
    case("large-lr", {"lr": 0.1}),
    # √v ~ 1e-9 below ε = 1e-6: ε is the denominator.
    case("tiny-gradients", {"lr": 1e-3}, gradients="tiny"),
    case("huge-gradients", {"lr": 1e-3}, gradients="huge"),
    case("zeros-and-sign-flips", {"lr": 1e-3}, gradients="zeros-and-flips"),
    case("decaying-gradients", {"lr": 1e-3}, gradients="decaying"),
]

# The article's MLP at pytorch-optimizer's defaults but lr 0.01.
MLP = ("adopt", adopt, {"lr": 0.01}, REFERENCE)
