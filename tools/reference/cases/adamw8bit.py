"""Replay cases of adamlab's `adamw8bit` against bitsandbytes' AdamW8bit: Adam8bit's algorithm
with weight decay 1e-2 (see cases/adam8bit.py and tools/reference/bnb_blockwise.py)."""

from cases.adam8bit import BLOCKS, REFERENCE_ADAMW, adamw8bit, case

CASES = [
    case("adamw8bit", "float32-states", {"lr": 1e-3}, adamw8bit, REFERENCE_ADAMW),
    case(
        "adamw8bit",
        "blockwise-large-decay",
        {"lr": 1e-2, "weight_decay": 0.5, "min_8bit_size": 0},
        adamw8bit,
        REFERENCE_ADAMW,
        shapes=BLOCKS,
    ),
    # Tiny gradients (ε dominates the denominator) and min_8bit_size at the 24-element parameter:
    # it is 8-bit, the 5- and 12-element ones keep float32 states.
    case(
        "adamw8bit",
        "tiny-gradients-eps-1e-7-min-size-24",
        {"lr": 1e-3, "eps": 1e-7, "min_8bit_size": 24},
        adamw8bit,
        REFERENCE_ADAMW,
        gradients="tiny",
    ),
]

# The article's MLP (three parameters, all below min_8bit_size: float32 states).
MLP = ("adamw8bit", adamw8bit, {"lr": 0.01}, REFERENCE_ADAMW)
