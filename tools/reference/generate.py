#!/usr/bin/env python3
"""Writes adamlab's PyTorch reference fixtures (fixtures/torch/).

Run from the repository root, in an environment with tools/reference/requirements.txt:

    python3 -m venv .venv-ref && .venv-ref/bin/pip install -r tools/reference/requirements.txt
    .venv-ref/bin/python tools/reference/generate.py

Two kinds of fixture:

* Replay cases (fixtures/torch/replay/<case>.json): torch.optim.Adam / AdamW on three parameters
  of rank 1, 2 and 4, fed fixed synthetic gradients for 200 steps. Each fixture stores the
  initial parameters, the gradient of every step, and after every step the parameters and the
  optimizer state (exp_avg, exp_avg_sq, max_exp_avg_sq). Replaying the gradients through another
  implementation must reproduce every number to f32 rounding.
* End-to-end cases: the article's MLP for 100 epochs (fixtures/torch/mlp_article.json) and the
  article's CNN for 20 steps on one fixed batch of 16 Fashion-MNIST training images
  (fixtures/torch/cnn_batch.json, with cnn_init.safetensors and cnn_final.safetensors in
  PyTorch's names and layouts). They record every loss and the final weights.

Every value is written as the exact float64 of its float32, so parsing it back is exact. Each
JSON fixture records the torch version and this script's path.
"""

import gzip
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

GENERATOR = "tools/reference/generate.py"
OUT = pathlib.Path("fixtures/torch")
REPLAY_STEPS = 200
# Shapes of the three parameters of every replay case: rank 1, 2 and 4.
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


REPLAY_CASES = [
    # name, optimizer class, its keyword arguments, gradient style
    ("default", "Adam", {"lr": 1e-3}, "normal"),
    ("amsgrad", "Adam", {"lr": 1e-3, "amsgrad": True}, "decaying"),
    ("l2-weight-decay", "Adam", {"lr": 1e-3, "weight_decay": 0.1}, "normal"),
    ("adamw-default-decay", "AdamW", {"lr": 1e-3}, "normal"),
    ("adamw-large-decay", "AdamW", {"lr": 1e-2, "weight_decay": 0.5}, "normal"),
    ("maximize", "Adam", {"lr": 1e-3, "maximize": True}, "normal"),
    ("betas-0.8-0.9-eps-1e-6", "Adam", {"lr": 1e-3, "betas": (0.8, 0.9), "eps": 1e-6}, "normal"),
    ("large-lr", "Adam", {"lr": 0.1}, "normal"),
    ("tiny-gradients", "Adam", {"lr": 1e-3}, "tiny"),
    ("zeros-and-sign-flips", "Adam", {"lr": 1e-3}, "zeros-and-flips"),
    (
        "amsgrad-adamw-maximize",
        "AdamW",
        {"lr": 1e-2, "weight_decay": 0.05, "amsgrad": True, "maximize": True},
        "decaying",
    ),
]


def replay_case(index, name, optimizer, kwargs, style):
    gen = torch.Generator().manual_seed(1_000 + index)
    params = [torch.randn(s, generator=gen).requires_grad_(True) for s in SHAPES]
    # Resolve every hyper-parameter to torch's value, defaults included.
    opt = getattr(torch.optim, optimizer)(params, foreach=False, **kwargs)
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    fixture = header("replay")
    fixture.update(
        {
            "case": name,
            "optimizer": f"torch.optim.{optimizer}",
            "hyper_parameters": {
                "lr": group["lr"],
                "beta1": group["betas"][0],
                "beta2": group["betas"][1],
                "eps": group["eps"],
                "weight_decay": group["weight_decay"],
                "decoupled_weight_decay": optimizer == "AdamW"
                or bool(group.get("decoupled_weight_decay", False)),
                "amsgrad": group["amsgrad"],
                "maximize": group["maximize"],
            },
            "gradients": style,
            "shapes": [list(s) for s in SHAPES],
            "initial": [flat(p) for p in params],
            "steps": [],
        }
    )
    for step in range(1, REPLAY_STEPS + 1):
        grads = [gradient(step, s, 7 * index + k, style) for k, s in enumerate(SHAPES)]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        record = {"grad": [flat(g) for g in grads], "param": [flat(p) for p in params]}
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if key in opt.state[params[0]]:
                record[key] = [flat(opt.state[p][key]) for p in params]
        fixture["steps"].append(record)
    return fixture


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


def write(path, fixture):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {path}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(REPLAY_CASES):
        write(OUT / "replay" / f"{case[0]}.json", replay_case(index, *case))
    write(OUT / "mlp_article.json", mlp_article())
    write(OUT / "cnn_batch.json", cnn_batch())


if __name__ == "__main__":
    main()
