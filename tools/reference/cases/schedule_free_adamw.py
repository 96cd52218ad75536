"""Replay cases of adamlab's `schedule-free-adamw` against schedulefree.AdamWScheduleFree 1.4.1.

The reference starts in eval mode and refuses to step there, so `make` switches it to train
mode, where the parameters hold y. After the last step, `final` records the evaluation weights x
(`eval.<i>`): eval(), copy, train() again.
"""

from importlib.metadata import version

import schedulefree

from generate import Case

REFERENCE = "schedulefree.AdamWScheduleFree"
VERSION = "schedulefree " + version("schedulefree")


def schedule_free_adamw(params, **kwargs):
    # foreach=False: the single-tensor loop, the path adamlab follows.
    opt = schedulefree.AdamWScheduleFree(params, foreach=False, **kwargs)
    opt.train()
    return opt


def eval_weights(opt, params):
    opt.eval()
    x = {f"eval.{i}": p.detach().clone() for i, p in enumerate(params)}
    opt.train()
    return x


def case(name, kwargs, **options):
    return Case(
        "schedule-free-adamw",
        name,
        kwargs,
        schedule_free_adamw,
        REFERENCE,
        reference_version=VERSION,
        final=eval_weights,
        **options,
    )


CASES = [
    case("default", {"lr": 0.0025}),
    case("warmup", {"lr": 0.0025, "warmup_steps": 50}),
    case("warmup-weight-lr-power-0", {"lr": 0.0025, "warmup_steps": 50, "weight_lr_power": 0.0}),
    case("r-1", {"lr": 0.0025, "r": 1.0}),
    case("weight-decay", {"lr": 0.0025, "weight_decay": 0.1}),
    # β₁ = 0.5 puts the evaluation lerp's weight 1 − 1/β₁ = −1 in torch's second lerp form.
    case("betas-0.5-0.9-eps-1e-6", {"lr": 0.0025, "betas": (0.5, 0.9), "eps": 1e-6}),
    case("large-lr", {"lr": 0.1}),
    case("tiny-gradients", {"lr": 0.0025}, gradients="tiny"),
    case("huge-gradients", {"lr": 0.0025}, gradients="huge"),
    case("zeros-and-sign-flips", {"lr": 0.0025, "warmup_steps": 10}, gradients="zeros-and-flips"),
]

# The article's MLP at schedulefree's defaults but lr 0.01 (losses and parameters in train mode, y).
MLP = ("schedule-free-adamw", schedule_free_adamw, {"lr": 0.01}, REFERENCE)
