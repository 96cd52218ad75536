"""Replay cases of adamlab's `adam(state_dtype=bf16)` and `adamw(state_dtype=bf16)`: torch.optim's
Adam/AdamW step on bfloat16 moments (tools/reference/bf16_states.py says exactly how)."""

from bf16_states import adam, adamw
from generate import Case

REFERENCE = "torch.optim.adam.adam on bfloat16 moments (tools/reference/bf16_states.py)"


def case(optimizer, name, kwargs, **options):
    make = adam if optimizer == "adam" else adamw
    return Case(optimizer, name, {**kwargs, "state_dtype": "bf16"}, make, REFERENCE, **options)


CASES = [
    case("adam", "bf16-states", {"lr": 1e-3}),
    case("adam", "bf16-states-amsgrad", {"lr": 1e-3, "amsgrad": True}, gradients="decaying"),
    case("adam", "bf16-states-l2-weight-decay-maximize", {"lr": 1e-2, "weight_decay": 0.1, "maximize": True}),
    case("adam", "bf16-states-tiny-gradients", {"lr": 1e-3}, gradients="tiny"),
    case("adam", "bf16-states-zeros-and-sign-flips", {"lr": 1e-3}, gradients="zeros-and-flips"),
    case("adamw", "bf16-states", {"lr": 1e-3}),
    case("adamw", "bf16-states-large-decay-amsgrad", {"lr": 1e-2, "weight_decay": 0.5, "amsgrad": True},
         gradients="decaying"),
    case("adamw", "bf16-states-huge-gradients", {"lr": 1e-3}, gradients="huge"),
]

# The MLP cases of adam and adamw are in cases/adam.py.
MLP = None
