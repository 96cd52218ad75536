#!/usr/bin/env python3
"""adamlab's workloads in PyTorch, and their parity fixtures (fixtures/torch/workloads/).

Run from the repository root, in an environment with tools/reference/requirements.txt:

    .venv-ref/bin/python tools/reference/workloads.py             # every fixture
    .venv-ref/bin/python tools/reference/workloads.py char-gpt    # one workload's

The models have adamlab's parameter names and PyTorch's layouts (adamlab-models reads and writes
them through `--init` and `--save`):

* CharGPT: `token.weight`, `position.weight`, `blocks.<i>.{norm1,norm2}.{weight,bias}`,
  `blocks.<i>.attn.{query,key,value,out}.{weight,bias}`, `blocks.<i>.mlp.{fc,proj}.{weight,bias}`,
  `norm.{weight,bias}`, `head.{weight,bias}`.
* SoftmaxRegression: `fc.weight` [10, 784], `fc.bias`.
* Rosenbrock, Quadratic: `point`.

The corpus is computed as adamlab_data::fortunes computes it (files in a fixed order, cookies cut
at `%` lines, one in ten to validation, bytes mapped to 96 tokens). Batches are the `--no-shuffle`
order, which both sides compute: batch s holds windows s·B … s·B + B − 1 of the training split
(window i is tokens i·T … i·T + T), and for softmax regression the training images s·B … in file
order.

Each fixture is one safetensors file holding the initial weights (by their model names), the
batches, and `loss.<optimizer>` [steps] for each optimizer run from those weights; its metadata
names the spec adamlab must reproduce for each optimizer (`spec.<optimizer>`), the reference and
the versions. char-gpt's also holds `logits` (torch's float32 forward pass of the first batch from
the initial weights) and `logits_f64` (the same in float64), and the inputs and outputs of block
0's LayerNorm, attention softmax, attention and GELU on the first two windows (`probe.*`, with
`_f64` twins), to measure how far f32 arithmetic moves each operation.
"""

import json
import math
import pathlib
import sys
import zlib
from importlib.metadata import version

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from models import VOCAB, CharGPT, Quadratic, Rosenbrock, SoftmaxRegression  # noqa: E402

GENERATOR = "tools/reference/workloads.py"
OUT = pathlib.Path("fixtures/torch/workloads")
FORTUNES = pathlib.Path("/usr/share/games/fortunes")
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")
STEPS = 20

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

# --- The corpus (adamlab_data::fortunes) ------------------------------------------------------

FILES = [
    "art", "ascii-art", "computers", "cookie", "debian", "definitions", "disclaimer", "drugs",
    "education", "ethnic", "food", "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law",
    "linux", "linuxcookie", "literature", "love", "magic", "medicine", "men-women",
    "miscellaneous", "news", "paradoxum", "people", "perl", "pets", "platitudes", "politics",
    "pratchett", "riddles", "science", "songs-poems", "sports", "startrek", "tao", "translate-me",
    "wisdom", "work", "zippy",
]
VALIDATION_EVERY = 10


def token(byte):
    if byte == 10:
        return 0
    if byte == 9:
        return 1
    if 32 <= byte <= 126:
        return byte - 31
    return None


def encode(data):
    return [t for t in (token(b) for b in data) if t is not None]


def cookies(data):
    out, start, line_start = [], 0, 0
    while line_start < len(data):
        newline = data.find(b"\n", line_start)
        line_end = len(data) if newline < 0 else newline + 1
        if data[line_start:line_end] in (b"%\n", b"%"):
            if line_start > start:
                out.append(data[start:line_start])
            start = line_end
        line_start = line_end
    if len(data) > start:
        out.append(data[start:])
    return out


def corpus(directory=FORTUNES):
    """(train tokens, validation tokens), as lists of ints."""
    train, validation, k = [], [], 0
    for name in FILES:
        for text in cookies((directory / name).read_bytes()):
            split = validation if k % VALIDATION_EVERY == VALIDATION_EVERY - 1 else train
            split.extend(encode(text))
            split.extend(encode(b"%\n"))
            k += 1
    return train, validation


def windows(tokens, context, first, count):
    """Windows first … first + count − 1, each context + 1 tokens at a multiple of context."""
    return [tokens[i * context : i * context + context + 1] for i in range(first, first + count)]


# --- Optimizers, by adamlab spec --------------------------------------------------------------


def muon_with_adamw(model, lr, **kwargs):
    """adamlab's `muon` on a torch model: torch.optim.Muon on every 2-D parameter, AdamW on the
    rest. adamlab reads a 2-D parameter in burn's Linear layout, [fan_in, fan_out]: a torch Linear
    weight ([out, in]) is that layout's transpose, so torch's Muon takes it as it is; an embedding
    table is stored alike by burn and torch ([count, d]), so adamlab reads it as a Linear from
    count to d, and torch's Muon runs on its transpose here."""
    from cases.muon import MuonWithAdamW

    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}

    class Mixed:
        def __init__(self):
            params = list(model.parameters())
            self.linear = MuonWithAdamW(
                [p for p in params if id(p) not in embeddings], burn_layout=False, lr=lr, **kwargs
            )
            table = [p for p in params if id(p) in embeddings]
            self.tables = MuonWithAdamW(table, burn_layout=True, lr=lr, **kwargs) if table else None

        def zero_grad(self):
            model.zero_grad(set_to_none=True)

        def step(self):
            self.linear.step()
            if self.tables is not None:
                self.tables.step()

    return Mixed()


def optimizer(spec_name, kwargs, model):
    params = model.parameters()
    if spec_name == "adam":
        return torch.optim.Adam(params, foreach=False, **kwargs), "torch.optim.Adam"
    if spec_name == "adamw":
        return torch.optim.AdamW(params, foreach=False, **kwargs), "torch.optim.AdamW"
    if spec_name == "sgd":
        return torch.optim.SGD(params, foreach=False, **kwargs), "torch.optim.SGD"
    if spec_name == "adafactor":
        return torch.optim.Adafactor(params, foreach=False, **kwargs), "torch.optim.Adafactor"
    if spec_name == "muon":
        return muon_with_adamw(model, **kwargs), "torch.optim.Muon + torch.optim.AdamW"
    if spec_name == "lion":
        from lion_pytorch import Lion

        return Lion(params, **kwargs), "lion_pytorch.Lion " + version("lion-pytorch")
    raise ValueError(spec_name)


def spec_of(name, kwargs):
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (tuple, list)):
            return "(" + ", ".join(value(x) for x in v) + ")"
        return repr(v)

    return name + "(" + ", ".join(f"{k}={value(v)}" for k, v in kwargs.items()) + ")"


def run(make_model, init, batches, name, kwargs):
    """Losses of the first len(batches) steps of `name` from the weights `init`."""
    model = make_model()
    model.load_state_dict(init)
    opt, reference = optimizer(name, kwargs, model)
    losses = []
    for batch in batches:
        opt.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.float32), reference


def fixture(path, make_model, batches, batch_tensors, optimizers, metadata, extra=None):
    torch.manual_seed(0)
    model = make_model()
    init = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    tensors = dict(init)
    tensors.update(batch_tensors)
    meta = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "steps": str(len(batches)),
        "optimizers": ",".join(name for name, _ in optimizers),
    }
    meta.update(metadata)
    for name, kwargs in optimizers:
        losses, reference = run(make_model, init, batches, name, kwargs)
        tensors[f"loss.{name}"] = losses
        meta[f"spec.{name}"] = spec_of(name, kwargs)
        meta[f"reference.{name}"] = reference
        print(f"  {name}: {losses[0]:.6f} → {losses[-1]:.6f}")
    if extra is not None:
        tensors.update(extra(init))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path, metadata=meta)
    print(f"wrote {path}")


# The fixture's char-gpt: small enough to replay in seconds on every backend.
CHAR_GPT = {"vocab": VOCAB, "context": 32, "d_model": 64, "heads": 4, "layers": 2}
CHAR_GPT_BATCH = 8
CHAR_GPT_OPTIMIZERS = [
    ("adam", {"lr": 1e-3}),
    ("adamw", {"lr": 1e-3, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("adafactor", {"lr": 1e-2}),
    ("muon", {"lr": 0.02}),
    ("lion", {"lr": 1e-4}),
]


def char_gpt():
    train, _ = corpus()
    context = CHAR_GPT["context"]
    tokens = windows(train, context, 0, STEPS * CHAR_GPT_BATCH)
    batches = torch.tensor(tokens, dtype=torch.int64).reshape(STEPS, CHAR_GPT_BATCH, context + 1)

    def make():
        return CharGPT(**CHAR_GPT)

    def logits(init):
        """The first batch's logits, and the inputs and outputs of block 0's operations on the
        first two windows (`probe.*`), in float32 and float64: the Rust side applies each operation
        to torch's float32 input and compares outputs, operation by operation."""
        out = {}
        for dtype, suffix in ((torch.float32, ""), (torch.float64, "_f64")):
            model = make().to(dtype)
            model.load_state_dict({k: v.to(dtype) for k, v in init.items()})
            with torch.no_grad():
                inputs = batches[0, :, :-1]
                out["logits" + suffix] = model(inputs).contiguous()
                x = inputs[:2]
                b, t = x.shape
                block = model.blocks[0]
                embed = model.token(x) + model.position(torch.arange(t).expand(b, t))
                norm1 = block.norm1(embed)
                h, d = block.attn.heads, norm1.shape[-1]
                q = block.attn.query(norm1).reshape(b, t, h, d // h).transpose(1, 2)
                k = block.attn.key(norm1).reshape(b, t, h, d // h).transpose(1, 2)
                scores = (q @ k.transpose(2, 3)) * (1.0 / math.sqrt(d // h))
                future = torch.ones(t, t, dtype=torch.bool).triu(1)
                weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=3)
                attn = block.attn(norm1)
                fc = block.mlp.fc(block.norm2(embed + attn))
                gelu = torch.nn.functional.gelu(fc)
            probes = {"embed": embed, "norm1": norm1, "scores": scores, "softmax": weights,
                      "attn": attn, "fc": fc, "gelu": gelu}
            for name, value in probes.items():
                out[f"probe.{name}{suffix}"] = value.contiguous()
        return out

    fixture(
        OUT / "char-gpt.safetensors",
        make,
        list(batches),
        {"batches": batches.to(torch.uint8).contiguous()},
        CHAR_GPT_OPTIMIZERS,
        {
            "model": "char-gpt",
            "config": json.dumps(CHAR_GPT),
            "batch_size": str(CHAR_GPT_BATCH),
            "order": "windows s*B .. s*B+B-1 of the training split at step s (--no-shuffle)",
            "corpus": "Debian fortunes + fortunes-min 1:1.99.1-7.3",
            "corpus_train_crc32": f"crc32 {zlib.crc32(bytes(train)):08x}",
            "corpus_train_tokens": str(len(train)),
        },
        extra=logits,
    )


def read_idx(path):
    import gzip

    data = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


SOFTMAX_REGRESSION_BATCH = 16


def softmax_regression():
    def find(name):
        return next(p for p in (FASHION_MNIST / name, FASHION_MNIST / (name + ".gz")) if p.exists())

    n = STEPS * SOFTMAX_REGRESSION_BATCH
    pixels = read_idx(find("train-images-idx3-ubyte"))[:n].contiguous()
    labels = read_idx(find("train-labels-idx1-ubyte"))[:n].to(torch.int64).contiguous()
    images = pixels.to(torch.float32).reshape(n, 1, 28, 28) / 255.0
    b = SOFTMAX_REGRESSION_BATCH
    batches = [(images[s * b : (s + 1) * b], labels[s * b : (s + 1) * b]) for s in range(STEPS)]
    fixture(
        OUT / "softmax-regression.safetensors",
        SoftmaxRegression,
        batches,
        {"pixels": pixels, "labels": labels},
        [("adam", {"lr": 1e-3})],
        {
            "model": "softmax-regression",
            "batch_size": str(b),
            "order": "training images s*B .. s*B+B-1 in file order at step s (--no-shuffle)",
        },
    )


def test_function(name, make, lr):
    fixture(
        OUT / f"{name}.safetensors",
        make,
        [None] * STEPS,
        {},
        [("adam", {"lr": lr})],
        {"model": name, "batch_size": "1", "order": "no data"},
    )


def train_char_gpt(epochs=1, lr=1e-3, batch=32, seed=0, threads=2):
    """The reference point for `adamlab train --model char-gpt`: the same model (default
    configuration, GPT-2 initialisation), corpus, windows, batch, epochs and optimizer
    (torch.optim.Adam, lr 1e-3), with torch's own random initial weights and shuffle (seeded), then
    the validation loss in nats per character over every validation window. Prints it with the wall
    time. Not a fixture: `python3 tools/reference/workloads.py train-char-gpt [lr]`."""
    import time

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(False)
    train, validation = corpus()
    context = 128
    n_train = (len(train) - 1) // context
    n_valid = (len(validation) - 1) // context
    train_windows = torch.tensor(windows(train, context, 0, n_train), dtype=torch.int64)
    valid_windows = torch.tensor(windows(validation, context, 0, n_valid), dtype=torch.int64)
    torch.manual_seed(seed)
    model = CharGPT()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.time()
    for epoch in range(epochs):
        order = torch.randperm(n_train)
        for s in range(0, n_train, batch):
            opt.zero_grad()
            loss = model.loss(train_windows[order[s : s + batch]])
            loss.backward()
            opt.step()
            if (s // batch + 1) % 100 == 0:
                print(f"epoch {epoch + 1} step {s // batch + 1}: loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    trained = time.time() - start
    with torch.no_grad():
        total = sum(model.loss(valid_windows[i : i + 64]).item() * len(valid_windows[i : i + 64]) for i in range(0, n_valid, 64))
    print(
        f"torch {torch.__version__}: char-gpt, adam lr {lr}, batch {batch}, {epochs} epoch(s) of "
        f"{-(-n_train // batch)} steps: validation loss {total / n_valid:.3f} "
        f"(training {trained:.0f} s on {threads} threads)"
    )


def main():
    if sys.argv[1:2] == ["train-char-gpt"]:
        train_char_gpt(lr=float(sys.argv[2]) if len(sys.argv) > 2 else 1e-3)
        return
    only = set(sys.argv[1:])
    todo = {
        "char-gpt": char_gpt,
        "softmax-regression": softmax_regression,
        "rosenbrock": lambda: test_function("rosenbrock", Rosenbrock, 1e-3),
        "quadratic": lambda: test_function("quadratic", Quadratic, 1e-3),
    }
    for name, make in todo.items():
        if not only or name in only:
            print(name)
            make()


if __name__ == "__main__":
    main()
