"""Replay cases of adamlab's `adam(bf16_stochastic_round=true)` and `adamw(bf16_stochastic_round=true)`:
bfloat16 parameters stepped by torch.optim's Adam/AdamW in float32 and rounded back with torchao's
stochastic rounding (tools/reference/bf16_params.py says exactly how, and where the random bits
come from)."""

from bf16_params import adam, adamw
from generate import Case

REFERENCE = "torch.optim.adam.adam in float32, torchao's _fp32_to_bf16_sr (tools/reference/bf16_params.py)"


def case(optimizer, name, kwargs, **options):
    make = adam if optimizer == "adam" else adamw
    return Case(optimizer, name, {**kwargs, "bf16_stochastic_round": True}, make, REFERENCE,
                param_dtype="bfloat16", **options)


CASES = [
    # Updates of ~1e-3 against bfloat16 gaps of ~4e-3–8e-3: most steps round θ back where it was,
    # some move it by a whole gap.
    case("adam", "bf16-params", {"lr": 1e-3}),
    case("adam", "bf16-params-amsgrad-seed", {"lr": 1e-2, "amsgrad": True, "seed": 12345}, gradients="decaying"),
    case("adam", "bf16-params-bf16-states", {"lr": 1e-3, "state_dtype": "bf16"}),
    case("adamw", "bf16-params", {"lr": 1e-3}),
    case("adamw", "bf16-params-large-decay-maximize", {"lr": 1e-2, "weight_decay": 0.5, "maximize": True}),
]

# The MLP cases of adam and adamw are in cases/adam.py.
MLP = None
