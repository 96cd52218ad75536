"""Replay cases of adamlab's `muon`: torch.optim.Muon on the 2-D parameters, torch.optim.AdamW on
the others, as one optimizer (`MuonWithAdamW`).

adamlab's `muon` reads a 2-D parameter as burn stores a Linear weight, [fan_in, fan_out], the
transpose of torch's [fan_out, fan_in] (so that on the same model it scales the learning rate as
torch does). The replay parameters are therefore burn's tensors: torch's Muon runs on their
transposes, and the fixture records the transposes of torch's weights and momentum buffers. The
article's MLP is a torch model, whose weight torch's Muon takes as it is.
"""

import torch

from generate import Case

REFERENCE = "torch.optim.Muon + torch.optim.AdamW"
# The usual mix: a bias-like vector, a wide and a tall matrix, a convolution kernel (to AdamW).
MIXED = [(5,), (3, 4), (4, 3), (2, 3, 2, 2)]
MATRICES = [(3, 4), (4, 3), (4, 4)]


class MuonWithAdamW:
    """torch.optim.Muon on the 2-D parameters, torch.optim.AdamW on the others.

    Takes adamlab's keywords: Muon's own, `lr` for both, and `adamw_betas`, `adamw_eps`,
    `adamw_weight_decay` for AdamW. With `burn_layout`, each 2-D parameter is the transpose of the
    weight torch's Muon optimizes (see the module's docstring).
    """

    def __init__(self, params, burn_layout, lr=1e-3, adamw_betas=(0.9, 0.999), adamw_eps=1e-8,
                 adamw_weight_decay=0.01, **muon_kwargs):
        self.params = list(params)
        self.burn_layout = burn_layout
        matrices = [p for p in self.params if p.ndim == 2]
        self.others = [p for p in self.params if p.ndim != 2]
        self.weights = {
            p: p.detach().T.contiguous().requires_grad_(True) if burn_layout else p for p in matrices
        }
        self.muon = torch.optim.Muon(list(self.weights.values()), lr=lr, **muon_kwargs) if matrices else None
        self.adamw = torch.optim.AdamW(
            self.others, lr=lr, betas=adamw_betas, eps=adamw_eps, weight_decay=adamw_weight_decay, foreach=False
        ) if self.others else None

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        if self.burn_layout:
            for p, w in self.weights.items():
                w.grad = p.grad.T.contiguous()
        for opt in (self.muon, self.adamw):
            if opt is not None:
                opt.step()
        if self.burn_layout:
            for p, w in self.weights.items():
                p.copy_(w.T)

    @property
    def state(self):
        states = {p: self.adamw.state[p] for p in self.others}
        for p, w in self.weights.items():
            states[p] = {
                key: value.T if self.burn_layout and value.ndim == 2 else value
                for key, value in self.muon.state[w].items()
            }
        return states


def muon(params, **kwargs):
    return MuonWithAdamW(params, burn_layout=True, **kwargs)


def muon_on_torch_model(params, **kwargs):
    return MuonWithAdamW(params, burn_layout=False, **kwargs)


def case(name, kwargs, shapes=MIXED, **options):
    return Case("muon", name, kwargs, muon, REFERENCE, shapes=list(shapes), **options)


CASES = [
    case("default", {"lr": 1e-3}),
    case("matrices-only", {"lr": 1e-2}, shapes=MATRICES),
    case("no-nesterov", {"lr": 1e-3, "nesterov": False}),
    case("momentum-0.9-no-weight-decay", {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}),
    case("match-rms-adamw", {"lr": 1e-3, "adjust_lr_fn": "match_rms_adamw"}, shapes=MATRICES + [(5,)]),
    case("spectral-unclamped", {"lr": 1e-3, "adjust_lr_fn": "spectral_unclamped"}, shapes=MATRICES + [(5,)]),
    # The cubic Newton-Schulz iteration, X <- 1.5 X - 0.5 X X^T X, run longer.
    case("cubic-ns-10-steps", {"lr": 1e-3, "ns_coefficients": (1.5, -0.5, 0.0), "ns_steps": 10}, shapes=MATRICES),
    case(
        "adamw-options",
        {"lr": 1e-3, "adamw_betas": (0.8, 0.95), "adamw_eps": 1e-6, "adamw_weight_decay": 0.1},
    ),
    # ||U|| ~ 1e-9 < eps = 1e-7: the update is divided by eps, not normalised.
    case("tiny-gradients", {"lr": 1e-3}, gradients="tiny"),
    # lr 0.02 (Keller Jordan's): one bfloat16 step of the update, 2^-9 relative, is 4e-5 here.
    case("large-lr", {"lr": 0.02}, shapes=MATRICES + [(5,)]),
]

MLP = ("muon", muon_on_torch_model, {"lr": 0.01}, REFERENCE)
