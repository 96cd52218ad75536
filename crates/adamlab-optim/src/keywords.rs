//! The keywords several optimizers share, each declared once: torch's name, the kind and range
//! of its value, and its help. An optimizer gives each its default in its
//! [`hyper_config!`](crate::hyper_config) declaration, and may word its help for itself
//! ([`Keyword::help`]).

use crate::hyper::{Interval, Keyword, Kind};

/// `lr`: the learning rate, ≥ 0 as torch.optim requires.
pub const LR: Keyword = Keyword {
    name: "lr",
    kind: Kind::Float(Interval::NON_NEGATIVE),
    help: "learning rate (burn passes it to every step, so schedules can change it)",
};

/// `betas`: (β₁, β₂), each in [0, 1) as torch.optim's Adam family checks.
pub const BETAS: Keyword = Keyword {
    name: "betas",
    kind: Kind::Tuple(&[
        Kind::Float(Interval::UNIT_OPEN_RIGHT),
        Kind::Float(Interval::UNIT_OPEN_RIGHT),
    ]),
    help: "decay rates of the first and second moment estimates",
};

/// `eps` added to a denominator, positive and a normal f32 ([`Interval::EPS`]).
pub const EPS: Keyword = Keyword {
    name: "eps",
    kind: Kind::Float(Interval::EPS),
    help: "added to the denominator √v̂ for numerical stability",
};

/// `eps` where the reference accepts 0 (Adagrad, Adadelta, RMSprop).
pub const EPS_OR_ZERO: Keyword = Keyword {
    name: "eps",
    kind: Kind::Float(Interval::NON_NEGATIVE),
    help: "added to the denominator for numerical stability",
};

/// `weight_decay`: L2, added to the gradient, ≥ 0.
pub const WEIGHT_DECAY: Keyword = Keyword {
    name: "weight_decay",
    kind: Kind::Float(Interval::NON_NEGATIVE),
    help: "L2 weight decay λ: g ← g + λθ",
};

/// `weight_decay` beside [`DECOUPLED_WEIGHT_DECAY`]: L2 unless decoupled.
pub const WEIGHT_DECAY_L2_OR_DECOUPLED: Keyword =
    WEIGHT_DECAY.help("weight decay λ (L2, g ← g + λθ, unless decoupled_weight_decay)");

/// `decoupled_weight_decay`: AdamW's decay instead of L2.
pub const DECOUPLED_WEIGHT_DECAY: Keyword = Keyword {
    name: "decoupled_weight_decay",
    kind: Kind::Bool,
    help: "decay the weights directly (AdamW) instead of adding λθ to the gradient",
};

/// `weight_decouple` (the name of `adabelief-pytorch` and `pytorch-optimizer`): decoupled weight
/// decay instead of L2.
pub const WEIGHT_DECOUPLE: Keyword = Keyword {
    name: "weight_decouple",
    kind: Kind::Bool,
    help: "decay θ directly, θ ← θ·(1 − lr·λ), instead of adding λθ to g",
};

/// `fixed_decay`, beside [`WEIGHT_DECOUPLE`]: a decay that does not scale with lr.
pub const FIXED_DECAY: Keyword = Keyword {
    name: "fixed_decay",
    kind: Kind::Bool,
    help: "with weight_decouple, θ ← θ·(1 − λ), independent of lr",
};

/// `momentum`: μ ≥ 0, as torch checks (SGD, RMSprop).
pub const MOMENTUM: Keyword = Keyword {
    name: "momentum",
    kind: Kind::Float(Interval::NON_NEGATIVE),
    help: "momentum factor μ (0: no momentum buffer)",
};

/// `maximize`.
pub const MAXIMIZE: Keyword = Keyword {
    name: "maximize",
    kind: Kind::Bool,
    help: "maximise the objective instead of minimising it",
};

/// `fused`: step with the fused kernel where there is one. torch's keyword (torch's Adam, AdamW
/// and SGD have it); torch defaults it to False, adamlab to true, and the numbers are the same.
pub const FUSED: Keyword = Keyword {
    name: "fused",
    kind: Kind::Bool,
    help: "one in-place pass per tensor on flex, ndarray and wgpu (same numbers as false, the \
           tensor-op reference step; torch's default is False)",
};

/// `fused` for an optimizer whose reference has no such keyword.
pub const FUSED_ADAMLAB: Keyword = FUSED.help(
    "one in-place pass per tensor on flex, ndarray and wgpu (same numbers as false, the tensor-op \
     reference step; adamlab's keyword, the reference has none)",
);
