"""torch.optim.Adam and AdamW with their moments kept in bfloat16: the reference of adamlab's
`adam(state_dtype=bf16)` and `adamw(state_dtype=bf16)`.

Neither torch.optim nor torchao has this mode for float32 parameters: torch.optim keeps the state
in the parameter's dtype, and torchao's `_AdamW` (torchao/optim/adam.py) keeps `zeros_like(p)`,
bfloat16 only for bfloat16 parameters. So this module states it, on top of torch's own function:

* `exp_avg`, `exp_avg_sq` (and AMSGrad's `max_exp_avg_sq`) are bfloat16 tensors;
* each step reads them to float32 (exact), runs torch.optim.adam.adam's single-tensor step on the
  float32 copies exactly as torch.optim.Adam/AdamW would on float32 state, and writes the copies
  back with `Tensor.copy_` into the bfloat16 tensors: round to nearest, ties to even (torch's
  `.to(torch.bfloat16)`);
* the parameter's update uses the float32 moments of this step, before they are rounded (as
  torchao's `single_param_adam` does with its `exp_avg_f32`); the rounding shows in the next step.
"""

import torch
from torch.optim.adam import adam as adam_functional


class AdamBf16States(torch.optim.Optimizer):
    """torch.optim.Adam's keywords (`decoupled_weight_decay=True` is AdamW) with bfloat16 moments."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.bfloat16)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.bfloat16)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p, dtype=torch.bfloat16)
                stored = [state["exp_avg"], state["exp_avg_sq"]]
                if group["amsgrad"]:
                    stored.append(state["max_exp_avg_sq"])
                m, v, *v_max = [s.float() for s in stored]
                adam_functional(
                    [p], [p.grad], [m], [v], v_max, [state["step"]],
                    foreach=False, decoupled_weight_decay=group["decoupled_weight_decay"],
                    amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                    weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                )
                for target, value in zip(stored, [m, v, *v_max]):
                    target.copy_(value)


def adam(params, state_dtype, **kwargs):
    assert state_dtype == "bf16", state_dtype
    return AdamBf16States(params, **kwargs)


def adamw(params, state_dtype, weight_decay=1e-2, **kwargs):
    assert state_dtype == "bf16", state_dtype
    return AdamBf16States(params, weight_decay=weight_decay, decoupled_weight_decay=True, **kwargs)
