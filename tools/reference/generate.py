#!/usr/bin/env python3
"""Writes adamlab's reference fixtures (fixtures/torch/) from PyTorch and the reference packages.

Run from the repository root, in an environment with tools/reference/requirements.txt:

    python3 -m venv .venv-ref && .venv-ref/bin/pip install -r tools/reference/requirements.txt
    .venv-ref/bin/python tools/reference/generate.py            # everything
    .venv-ref/bin/python tools/reference/generate.py sgd lion   # the cases of these optimizers

Three kinds of fixture:

* Replay cases (fixtures/torch/replay/<optimizer>/<case>.safetensors): a reference optimizer
  (torch.optim.SGD, lion_pytorch.Lion, …) on parameters of rank 1, 2 and 4, fed fixed synthetic
  gradients for 200 steps. The cases are declared one file per optimizer in
  tools/reference/cases/<optimizer>.py (a list CASES of Case). Each fixture is a safetensors file:

      initial.<i>          the initial value of parameter i
      grad.<i>             [steps, *shape]: the gradient fed at every step
      param.<i>            [steps, *shape]: the parameter after every step
      state.<key>.<i>      [steps, *shape of the state]: every tensor the reference keeps in
                           optimizer.state[param] under <key> (0-dim ones too: `step`, `eta`, …)

  and its metadata (strings) names the case, the adamlab spec that must reproduce it (torch's
  keyword names), the reference, its version, the gradient style and this script.
* The article's MLP for 100 epochs with each optimizer at its defaults but lr 0.01
  (fixtures/torch/mlp/<optimizer>.json; each cases file may set MLP = None to skip, or a dict of
  keyword arguments), and with Adam as the article has it (fixtures/torch/mlp_article.json).
* The article's CNN for 20 steps on one fixed batch of 16 Fashion-MNIST training images
  (fixtures/torch/cnn_batch.json, with cnn_init.safetensors and cnn_final.safetensors).

The workloads beyond the article (char-gpt, softmax regression, Rosenbrock, the quadratic) have
their own script, tools/reference/workloads.py, which writes fixtures/torch/workloads/.

Every value is stored as float32 (float64 for Python numbers a reference keeps in its state, uint8
for quantized states), so reading it back is exact.
"""

import dataclasses
import gzip
import importlib
import json
import pathlib
import sys
import zlib
from typing import Callable, Optional

import torch
from safetensors.torch import save_file

GENERATOR = "tools/reference/generate.py"
OUT = pathlib.Path("fixtures/torch")
CASES_DIR = pathlib.Path(__file__).resolve().parent / "cases"
REPLAY_STEPS = 200
# Shapes of the three parameters of every replay case unless a case says otherwise: rank 1, 2, 4.
SHAPES = [(5,), (3, 4), (2, 3, 2, 2)]
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)


def flat(t):
    """A tensor's values, row-major, as exact float64s of its float32s."""
    return t.detach().to(torch.float32).reshape(-1).tolist()


def header(kind):
    return {
        "kind": kind,
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
    }


# --- Replay cases ---------------------------------------------------------------------------


def gradient(step, shape, seed, style):
    """The synthetic gradient of one parameter at one step (1-based)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + step)
    g = torch.randn(shape, generator=gen, dtype=torch.float32)
    if style == "normal":
        return g
    if style == "tiny":
        # |g| ~ 1e-9: √v̂ ~ 1e-9 sits next to eps = 1e-8, so eps dominates the denominator.
        return g * 1e-9
    if style == "huge":
        # |g| ~ 1e6: squares near 1e12, still finite in f32.
        return g * 1e6
    if style == "zeros-and-flips":
        # Every third element is exactly 0 at every step, every other step flips the sign
        # of the rest, and every fifth step is entirely 0.
        if step % 5 == 0:
            return torch.zeros(shape)
        mask = (torch.arange(g.numel()) % 3 != 0).reshape(shape).to(torch.float32)
        sign = 1.0 if step % 2 else -1.0
        return g.abs() * mask * sign
    if style == "decaying":
        # Large early gradients, then small ones: AMSGrad's max(v) stays above v.
        return g * (10.0 if step <= 20 else 0.1)
    raise ValueError(style)


@dataclasses.dataclass
class Case:
    """One replay case.

    `kwargs` are the reference's keyword arguments, `lr` included, with torch's names; they are
    also the adamlab spec (`optimizer(k=v, …)`), so they must use the registry's keywords.
    `make(params, **kwargs)` builds the reference optimizer; `reference` names it.
    """

    optimizer: str
    name: str
    kwargs: dict
    make: Callable
    reference: str
    gradients: str = "normal"
    shapes: list = dataclasses.field(default_factory=lambda: list(SHAPES))
    reference_version: str = "torch " + torch.__version__.split("+")[0]
    # Called after the last step as final(opt, params); returns extra tensors to store by name, for
    # example `eval.<i>`, the evaluation weights of a schedule-free optimizer.
    final: Optional[Callable] = None
    # The parameters' dtype: "bfloat16" makes them (and their gradients) bfloat16 tensors, stored
    # as float32 (exact) with the metadata `param_dtype`.
    param_dtype: str = "float32"


def spec_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "None"
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(spec_value(x) for x in v) + ")"
    if isinstance(v, str):
        return v
    return repr(v)


def spec_of(optimizer, kwargs):
    if not kwargs:
        return optimizer
    return optimizer + "(" + ", ".join(f"{k}={spec_value(v)}" for k, v in kwargs.items()) + ")"


def state_tensors(state):
    """Every tensor (and number) of one parameter's optimizer state, by its key."""
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            if value.dtype == torch.uint8:
                # Quantized states (bitsandbytes' codes) keep their bytes.
                out[key] = value.detach().clone()
            else:
                out[key] = value.detach().clone().to(torch.float32 if value.is_floating_point() else torch.float64)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = torch.tensor(float(value), dtype=torch.float64)
    return out


def case_seed(case):
    """A seed fixed by the case's identity, so adding cases never changes another's data."""
    return zlib.crc32(f"{case.optimizer}/{case.name}".encode()) % 1_000_003


def replay_case(case):
    index = case_seed(case)
    gen = torch.Generator().manual_seed(1_000 + index)
    dtype = getattr(torch, case.param_dtype)
    params = [torch.randn(s, generator=gen).to(dtype).requires_grad_(True) for s in case.shapes]
    initial = [p.detach().clone() for p in params]
    opt = case.make(params, **case.kwargs)
    grads_seen = [[] for _ in params]
    params_seen = [[] for _ in params]
    states_seen = [dict() for _ in params]
    for step in range(1, REPLAY_STEPS + 1):
        grads = [gradient(step, s, 7 * index + k, case.gradients).to(dtype) for k, s in enumerate(case.shapes)]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        for i, (p, g) in enumerate(zip(params, grads)):
            grads_seen[i].append(g)
            params_seen[i].append(p.detach().clone())
            for key, value in state_tensors(opt.state[p]).items():
                states_seen[i].setdefault(key, []).append(value)
    tensors = {}
    for i in range(len(params)):
        tensors[f"initial.{i}"] = initial[i].float().contiguous()
        tensors[f"grad.{i}"] = torch.stack(grads_seen[i]).float().contiguous()
        tensors[f"param.{i}"] = torch.stack(params_seen[i]).float().contiguous()
        for key, values in states_seen[i].items():
            if len(values) != REPLAY_STEPS:
                raise ValueError(f"{case.optimizer}/{case.name}: state {key} missing at some steps")
            tensors[f"state.{key}.{i}"] = torch.stack(values).contiguous()
    if case.final is not None:
        for name, value in case.final(opt, params).items():
            tensors[name] = value.detach().to(torch.float32).contiguous()
    metadata = {
        "case": f"{case.optimizer}/{case.name}",
        "optimizer": case.optimizer,
        "spec": spec_of(case.optimizer, case.kwargs),
        "reference": case.reference,
        "reference_version": case.reference_version,
        "torch_version": torch.__version__,
        "gradients": case.gradients,
        "steps": str(REPLAY_STEPS),
        "params": str(len(params)),
        "generator": GENERATOR,
    }
    if case.param_dtype != "float32":
        metadata["param_dtype"] = case.param_dtype
    return tensors, metadata


def load_cases(only):
    """Every cases module under tools/reference/cases (or those named in `only`)."""
    sys.path.insert(0, str(CASES_DIR.parent))
    modules = []
    for path in sorted(CASES_DIR.glob("*.py")):
        if path.stem.startswith("_") or (only and path.stem.replace("_", "-") not in only):
            continue
        modules.append(importlib.import_module(f"cases.{path.stem}"))
    return modules


# --- End-to-end cases -----------------------------------------------------------------------


class SimpleModel(torch.nn.Module):
    """The article's MLP."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 1)

    def forward(self, x):
        return self.fc(x)


class CNN(torch.nn.Module):
    """The article's CNN."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = torch.nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool = torch.nn.MaxPool2d(2, 2)
        self.fc1 = torch.nn.Linear(64 * 7 * 7, 128)
        self.fc2 = torch.nn.Linear(128, 10)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


def mlp_article():
    torch.manual_seed(0)
    model = SimpleModel()
    initial = {k: flat(v) for k, v in model.state_dict().items()}
    criterion = torch.nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, foreach=False)
    inputs = torch.tensor([[1.0, 2.0], [2.0, 3.0]])
    targets = torch.tensor([[0.0], [1.0]])
    losses, params = [], []
    for _epoch in range(100):
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        params.append({k: flat(v) for k, v in model.state_dict().items()})
    fixture = header("mlp-article")
    fixture.update(
        {
            "lr": 0.01,
            "epochs": 100,
            "inputs": flat(inputs),
            "targets": flat(targets),
            "initial": initial,
            "losses": losses,
            "params": params,
        }
    )
    return fixture


def read_idx(path, count):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    size = 1
    for d in dims[1:]:
        size *= d
    start = 4 + 4 * ndim
    return list(data[start : start + count * size])


def cnn_batch(batch=16, steps=20):
    pixels = read_idx(FASHION_MNIST / "train-images-idx3-ubyte.gz", batch)
    labels = read_idx(FASHION_MNIST / "train-labels-idx1-ubyte.gz", batch)
    images = torch.tensor(pixels, dtype=torch.float32).reshape(batch, 1, 28, 28) / 255.0
    target = torch.tensor(labels, dtype=torch.int64)

    torch.manual_seed(0)
    model = CNN()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, OUT / "cnn_init.safetensors")
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    losses = []
    for _step in range(steps):
        optimizer.zero_grad()
        loss = criterion(model(images), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, OUT / "cnn_final.safetensors")
    with torch.no_grad():
        final_loss = criterion(model(images), target).item()
    fixture = header("cnn-batch")
    fixture.update(
        {
            "lr": 1e-3,
            "steps": steps,
            "source": "first 16 images of Fashion-MNIST's train-images-idx3-ubyte, pixels / 255",
            "pixels": pixels,
            "labels": labels,
            "initial_weights": "cnn_init.safetensors",
            "final_weights": "cnn_final.safetensors",
            "losses": losses,
            "final_loss": final_loss,
        }
    )
    return fixture



def mlp_for(optimizer, make, kwargs, reference):
    """The article's MLP for 100 epochs from torch.manual_seed(0)'s weights, with `make`."""
    torch.manual_seed(0)
    model = SimpleModel()
    initial = {k: flat(v) for k, v in model.state_dict().items()}
    criterion = torch.nn.MSELoss()
    opt = make(model.parameters(), **kwargs)
    inputs = torch.tensor([[1.0, 2.0], [2.0, 3.0]])
    targets = torch.tensor([[0.0], [1.0]])
    losses, params = [], []
    for _epoch in range(100):
        opt.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        params.append({k: flat(v) for k, v in model.state_dict().items()})
    fixture = header("mlp")
    fixture.update(
        {
            "optimizer": optimizer,
            "spec": spec_of(optimizer, kwargs),
            "reference": reference,
            "lr": kwargs.get("lr"),
            "epochs": 100,
            "inputs": flat(inputs),
            "targets": flat(targets),
            "initial": initial,
            "losses": losses,
            "params": params,
        }
    )
    return fixture

def write(path, fixture):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {path}")


def main():
    only = set(sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    for module in load_cases(only):
        for case in module.CASES:
            tensors, metadata = replay_case(case)
            path = OUT / "replay" / case.optimizer / f"{case.name}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(tensors, path, metadata=metadata)
            print(f"wrote {path}")
        mlp = getattr(module, "MLP", None)
        if mlp is not None:
            optimizer, make, kwargs, reference = mlp
            write(OUT / "mlp" / f"{optimizer}.json", mlp_for(optimizer, make, kwargs, reference))
    if not only or "controls" in only:
        import controls

        fixture = header("schedules")
        fixture["cases"] = controls.schedule_cases()
        write(OUT / "controls" / "schedules.json", fixture)
        fixture = header("plateau")
        fixture["cases"] = controls.plateau_cases()
        write(OUT / "controls" / "plateau.json", fixture)
        fixture = header("clipping")
        fixture["cases"] = controls.clipping_cases(flat)
        write(OUT / "controls" / "clipping.json", fixture)
        for name, case in controls.mlp_cases(SimpleModel, flat) + controls.mlp_loop_cases(SimpleModel, flat):
            fixture = header("mlp-controls")
            fixture.update(case)
            write(OUT / "controls" / f"mlp-{name}.json", fixture)
    if not only:
        write(OUT / "mlp_article.json", mlp_article())
        write(OUT / "cnn_batch.json", cnn_batch())


if __name__ == "__main__":
    main()
