"""Reference fixtures of the training controls (fixtures/torch/controls/), written by generate.py.

* schedules.json: for each schedule spec, torch.optim.lr_scheduler's learning rate (and OneCycleLR's
  cycled β₁) at each of 300 optimizer steps, from a base lr of 0.1 (an SGD with momentum 0.9 and an
  Adam, so that both `momentum` and `betas` cycling are seen).
* plateau.json: torch.optim.lr_scheduler.ReduceLROnPlateau fed 80 epoch metrics (a noisy curve
  with plateaus, a NaN and a rise), for every mode and threshold mode, with patience, cooldown,
  min_lr and eps: the learning rate after each epoch.
* clipping.json: torch.nn.utils.clip_grad_norm_ / clip_grad_value_ on fixed gradients of three
  parameters (rank 1, 2, 4): the total norm returned and every clipped gradient.
* mlp-<case>.json: the article's MLP for 100 epochs from torch.manual_seed(0)'s weights with
  schedules, clipping and param groups, every loss and parameter.
* mlp-ema-adam.json: the same with a weight EMA (`AveragedModel` with `get_ema_multi_avg_fn(0.9)`,
  updated after every step): every averaged parameter too.
* mlp-swa-sgd.json: the same with SWA: `AveragedModel` and `SWALR(swa_lr=0.01, anneal_epochs=5)`
  after 60 epochs of a cosine schedule, torch's recipe (`if epoch > swa_start`).
* mlp-lookahead-adam.json: the same with pytorch-optimizer's Lookahead(Adam, k=5, alpha=0.5).
* mlp-accumulate-sgd.json: the same with gradient accumulation: each step takes the two points as
  two batches of one, `(loss / 2).backward()` each, then one `optimizer.step()`.

The spec strings are adamlab's (`--lr-schedule`), with torch's keyword names lower-cased.
"""

import torch

STEPS = 300

# adamlab spec, torch constructor (optimizer -> scheduler)
SCHEDULES = [
    ("constant(factor=0.5, total_iters=7)", lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=7)),
    ("step(step_size=30, gamma=0.5)", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=30, gamma=0.5)),
    ("multistep(milestones=[50, 120, 120, 200], gamma=0.3)", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[50, 120, 120, 200], gamma=0.3)),
    ("exponential(gamma=0.99)", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.99)),
    ("linear(start_factor=0.1, total_iters=40)", lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=40)),
    ("linear(start_factor=1.0, end_factor=0.05, total_iters=250)", lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=250)),
    ("cosine(t_max=100)", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100)),
    ("cosine(t_max=70, eta_min=0.001)", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=70, eta_min=0.001)),
    ("cosine-warm-restarts(t_0=25)", lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=25)),
    ("cosine-warm-restarts(t_0=10, t_mult=2, eta_min=0.002)", lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.002)),
    ("onecycle(max_lr=0.01, total_steps=300)", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.01, total_steps=300)),
    ("onecycle(max_lr=0.05, total_steps=320, pct_start=0.25, anneal_strategy=linear, three_phase=true, div_factor=10.0, final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9)",
     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=320, pct_start=0.25, anneal_strategy="linear", three_phase=True, div_factor=10.0, final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9)),
    ("onecycle(max_lr=0.02, epochs=3, steps_per_epoch=100, cycle_momentum=false)", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.02, epochs=3, steps_per_epoch=100, cycle_momentum=False)),
    ("sequential(linear(start_factor=0.1, total_iters=10), cosine(t_max=90))",
     lambda o: torch.optim.lr_scheduler.SequentialLR(o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10), torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=90)], milestones=[10])),
    ("sequential(constant(factor=0.2, total_iters=5), exponential(gamma=0.98), step(step_size=20, gamma=0.5), milestones=[5, 100])",
     lambda o: torch.optim.lr_scheduler.SequentialLR(o, [torch.optim.lr_scheduler.ConstantLR(o, factor=0.2, total_iters=5), torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.98), torch.optim.lr_scheduler.StepLR(o, step_size=20, gamma=0.5)], milestones=[5, 100])),
    ("sequential(linear(start_factor=0.01, total_iters=30), cosine-warm-restarts(t_0=50))",
     lambda o: torch.optim.lr_scheduler.SequentialLR(o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.01, total_iters=30), torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=50)], milestones=[30])),
]


def schedule_cases():
    cases = []
    for spec, make in SCHEDULES:
        for optimizer in ("sgd", "adam"):
            p = torch.nn.Parameter(torch.zeros(1))
            if optimizer == "sgd":
                opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
            else:
                opt = torch.optim.Adam([p], lr=0.1)
            sched = make(opt)
            lrs, momenta = [], []
            for _ in range(STEPS):
                group = opt.param_groups[0]
                lrs.append(float(group["lr"]))
                momenta.append(float(group["momentum"] if optimizer == "sgd" else group["betas"][0]))
                p.grad = torch.ones(1)
                opt.step()
                sched.step()
            cases.append({"spec": spec, "optimizer": optimizer, "base_lr": 0.1, "torch": type(sched).__name__, "lrs": lrs, "momenta": momenta})
    return cases


def clipping_cases(flat):
    shapes = [(5,), (3, 4), (2, 3, 2, 2)]
    gen = torch.Generator().manual_seed(7)
    grads = [torch.randn(s, generator=gen) * 3.0 for s in shapes]
    cases = []
    for kind, kwargs in [
        ("norm", {"max_norm": 1.0, "norm_type": 2.0}),
        ("norm", {"max_norm": 0.5, "norm_type": 1.0}),
        ("norm", {"max_norm": 2.0, "norm_type": float("inf")}),
        ("norm", {"max_norm": 3.0, "norm_type": 3.5}),
        ("norm", {"max_norm": 1000.0, "norm_type": 2.0}),
        ("value", {"clip_value": 0.75}),
    ]:
        params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        if kind == "norm":
            total = torch.nn.utils.clip_grad_norm_(params, **kwargs)
            total = float(total)
        else:
            torch.nn.utils.clip_grad_value_(params, **kwargs)
            total = None
        cases.append({
            "kind": kind,
            "max_norm": kwargs.get("max_norm"),
            "norm_type": "inf" if kwargs.get("norm_type") == float("inf") else kwargs.get("norm_type"),
            "clip_value": kwargs.get("clip_value"),
            "shapes": [list(s) for s in shapes],
            "grads": [flat(g) for g in grads],
            "total_norm": total,
            "clipped": [flat(p.grad) for p in params],
        })
    return cases


def mlp_cases(SimpleModel, flat):
    """The article's MLP with the controls; each case: (name, optimizer spec, schedule spec,
    clip, groups, builder)."""

    def weights_and_biases(model):
        return [model.fc.weight], [model.fc.bias]

    cases = [
        ("warmup-cosine", "adamw(lr=0.01)", "sequential(linear(start_factor=0.1, total_iters=10), cosine(t_max=90))", None, [],
         lambda m: torch.optim.AdamW(m.parameters(), lr=0.01, foreach=False),
         lambda o: torch.optim.lr_scheduler.SequentialLR(o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10), torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=90)], milestones=[10])),
        ("clip-norm", "adam(lr=0.05)", None, {"max_norm": 0.5, "norm_type": 2.0}, [],
         lambda m: torch.optim.Adam(m.parameters(), lr=0.05, foreach=False), None),
        ("clip-value-sgd", "sgd(lr=0.05, momentum=0.9)", None, {"clip_value": 0.3}, [],
         lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, foreach=False), None),
        ("onecycle-sgd", "sgd(lr=0.01, momentum=0.9)", "onecycle(max_lr=0.05, total_steps=100)", {"max_norm": 1.0, "norm_type": 2.0}, [],
         lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, foreach=False),
         lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=100)),
        ("two-groups-adamw", "adamw(lr=0.01, weight_decay=0.1)", "cosine(t_max=100, eta_min=0.0001)", None,
         [{"paths": ["fc.bias"], "overrides": {"weight_decay": 0.0, "lr": 0.03}}],
         lambda m: torch.optim.AdamW([{"params": [m.fc.weight]}, {"params": [m.fc.bias], "weight_decay": 0.0, "lr": 0.03}], lr=0.01, weight_decay=0.1, foreach=False),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100, eta_min=0.0001)),
    ]
    out = []
    for name, opt_spec, sched_spec, clip, groups, make_opt, make_sched in cases:
        torch.manual_seed(0)
        model = SimpleModel()
        initial = {k: flat(v) for k, v in model.state_dict().items()}
        opt = make_opt(model)
        sched = make_sched(opt) if make_sched else None
        criterion = torch.nn.MSELoss()
        inputs = torch.tensor([[1.0, 2.0], [2.0, 3.0]])
        targets = torch.tensor([[0.0], [1.0]])
        losses, params, lrs = [], [], []
        for _ in range(100):
            opt.zero_grad()
            loss = criterion(model(inputs), targets)
            loss.backward()
            if clip and "max_norm" in clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), **clip)
            elif clip:
                torch.nn.utils.clip_grad_value_(model.parameters(), **clip)
            lrs.append([float(g["lr"]) for g in opt.param_groups])
            opt.step()
            if sched:
                sched.step()
            losses.append(loss.item())
            params.append({k: flat(v) for k, v in model.state_dict().items()})
        out.append((name, {
            "optimizer": opt_spec, "schedule": sched_spec, "clip": clip, "groups": groups,
            "inputs": flat(inputs), "targets": flat(targets), "initial": initial,
            "losses": losses, "params": params, "lrs": lrs,
        }))
    return out


def mlp_loop_cases(SimpleModel, flat):
    """The article's MLP with the loop's extras: a weight EMA, and gradient accumulation."""
    out = []
    inputs = torch.tensor([[1.0, 2.0], [2.0, 3.0]])
    targets = torch.tensor([[0.0], [1.0]])
    criterion = torch.nn.MSELoss()

    torch.manual_seed(0)
    model = SimpleModel()
    initial = {k: flat(v) for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=0.05, foreach=False)
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    losses, params, ema_params, lrs = [], [], [], []
    for _ in range(100):
        opt.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        ema.update_parameters(model)
        losses.append(loss.item())
        params.append({k: flat(v) for k, v in model.state_dict().items()})
        ema_params.append({k: flat(v) for k, v in ema.module.state_dict().items()})
    out.append(("ema-adam", {
        "optimizer": "adam(lr=0.05)", "schedule": None, "clip": None, "groups": [], "ema": 0.9,
        "inputs": flat(inputs), "targets": flat(targets), "initial": initial,
        "losses": losses, "params": params, "ema_params": ema_params, "lrs": lrs,
    }))

    torch.manual_seed(0)
    model = SimpleModel()
    initial = {k: flat(v) for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, foreach=False)
    losses, params, lrs = [], [], []
    for _ in range(100):
        opt.zero_grad()
        total = 0.0
        for i in range(2):
            loss = criterion(model(inputs[i:i + 1]), targets[i:i + 1]) / 2
            loss.backward()
            total += loss.item()
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        losses.append(total)
        params.append({k: flat(v) for k, v in model.state_dict().items()})
    out.append(("accumulate-sgd", {
        "optimizer": "sgd(lr=0.05, momentum=0.9)", "schedule": None, "clip": None, "groups": [],
        "batch_size": 1, "accumulate": 2,
        "inputs": flat(inputs), "targets": flat(targets), "initial": initial,
        "losses": losses, "params": params, "lrs": lrs,
    }))
    from pytorch_optimizer import Lookahead

    torch.manual_seed(0)
    model = SimpleModel()
    initial = {k: flat(v) for k, v in model.state_dict().items()}
    opt = Lookahead(torch.optim.Adam(model.parameters(), lr=0.05, foreach=False), k=5, alpha=0.5)
    losses, params, lrs = [], [], []
    for _ in range(100):
        opt.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        losses.append(loss.item())
        params.append({k: flat(v) for k, v in model.state_dict().items()})
    out.append(("lookahead-adam", {
        "optimizer": "adam(lr=0.05)", "schedule": None, "clip": None, "groups": [],
        "lookahead": {"k": 5, "alpha": 0.5}, "reference": "pytorch_optimizer.Lookahead 4.1.0",
        "inputs": flat(inputs), "targets": flat(targets), "initial": initial,
        "losses": losses, "params": params, "lrs": lrs,
    }))
    torch.manual_seed(0)
    model = SimpleModel()
    initial = {k: flat(v) for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, foreach=False)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    swa_model = torch.optim.swa_utils.AveragedModel(model)
    swa_sched = torch.optim.swa_utils.SWALR(opt, swa_lr=0.01, anneal_epochs=5, anneal_strategy="cos")
    swa_start = 59  # torch's recipe: `if epoch > swa_start`, 0-based epochs; adamlab's after = 60
    losses, params, swa_params, lrs = [], [], [], []
    for epoch in range(100):
        opt.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        if epoch > swa_start:
            swa_model.update_parameters(model)
            swa_sched.step()
        else:
            sched.step()
        losses.append(loss.item())
        params.append({k: flat(v) for k, v in model.state_dict().items()})
        swa_params.append({k: flat(v) for k, v in swa_model.module.state_dict().items()})
    out.append(("swa-sgd", {
        "optimizer": "sgd(lr=0.05, momentum=0.9)", "schedule": "cosine(t_max=100)", "clip": None, "groups": [],
        "swa": {"after": swa_start + 1, "swa_lr": 0.01, "anneal_epochs": 5, "anneal_strategy": "cos"},
        "inputs": flat(inputs), "targets": flat(targets), "initial": initial,
        "losses": losses, "params": params, "swa_params": swa_params, "lrs": lrs,
    }))
    return out


PLATEAUS = [
    ("reduce-on-plateau", {}),
    ("reduce-on-plateau(patience=2)", {"patience": 2}),
    ("reduce-on-plateau(factor=0.5, patience=3, cooldown=2)", {"factor": 0.5, "patience": 3, "cooldown": 2}),
    ("reduce-on-plateau(patience=1, threshold=0.05, threshold_mode=abs)", {"patience": 1, "threshold": 0.05, "threshold_mode": "abs"}),
    ("reduce-on-plateau(mode=max, patience=2, threshold=0.01)", {"mode": "max", "patience": 2, "threshold": 0.01}),
    ("reduce-on-plateau(mode=max, patience=0, threshold=0.02, threshold_mode=abs, factor=0.3)", {"mode": "max", "patience": 0, "threshold": 0.02, "threshold_mode": "abs", "factor": 0.3}),
    ("reduce-on-plateau(patience=0, min_lr=0.004, factor=0.5)", {"patience": 0, "min_lr": 0.004, "factor": 0.5}),
    ("reduce-on-plateau(patience=0, factor=0.9, eps=0.01)", {"patience": 0, "factor": 0.9, "eps": 0.01}),
]


def plateau_metrics():
    """80 epoch metrics: a falling curve with noise, flat stretches, a NaN, then a rise."""
    import math
    gen = torch.Generator().manual_seed(3)
    noise = (torch.rand(80, generator=gen, dtype=torch.float64) - 0.5).tolist()
    metrics = []
    for i in range(80):
        base = 2.0 * math.exp(-i / 12.0) if i < 30 else (0.16 if i < 55 else 0.16 + 0.01 * (i - 55))
        metrics.append(base + 0.02 * noise[i])
    metrics[40] = float("nan")
    return metrics


def plateau_cases():
    metrics = plateau_metrics()
    cases = []
    for spec, kwargs in PLATEAUS:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        lrs = []
        for m in metrics:
            sched.step(m)
            lrs.append(float(opt.param_groups[0]["lr"]))
        cases.append({"spec": spec, "base_lr": 0.1, "metrics": [None if math_isnan(m) else m for m in metrics], "lrs": lrs})
    return cases


def math_isnan(x):
    return x != x
