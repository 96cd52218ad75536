#!/usr/bin/env python3
"""PyTorch's side of `adamlab bench`: the same measurements as adamlab's, in the same records.

`adamlab bench step --torch` and `adamlab bench train --torch` run this script with the Python
named by ADAMLAB_TORCH_PYTHON (else `python3`) and a JSON configuration on stdin; it writes one
JSON record per line on stdout, in the schema of docs/bench-schema.md, and progress on stderr.
Run by hand: `python3 tools/bench/torch_bench.py --config config.json`.

The configuration (written by adamlab, from its registry):

    {"bench": "step" | "train", "threads": 2, "warmup": 3, "repeats": 15,
     "optimizers": [{"spec": "adam", "reference": "torch.optim.Adam (torch 2.15)",
                     "class": "Adam", "kwargs": {"lr": 0.001, "betas": [0.9, 0.999], ...}}],
     "params": [100000, ...], "tensors": 1,            # step
     "models": ["cnn", "char-gpt"], "batch_sizes": [64]}    # train

Step: `optimizer.step()` over `params` parameters in `tensors` tensors with fixed gradients, for
each of torch's implementations the class accepts: fused=True (`torch-fused`), foreach=True
(`torch-foreach`) and the for-loop (`torch-forloop`). Train: the article's CNN (or MLP, or a
workload: char-gpt, softmax-regression, rosenbrock, quadratic from tools/reference/models.py, which
adamlab writes beside this script; run by hand, copy it here) on a random batch with the
optimizer's default implementation, split into forward, backward and step; the peak RSS is VmHWM reset through /proc/self/clear_refs before each measurement, as adamlab does.
Keywords the torch class does not take (adamlab's own) are dropped. An optimizer whose
reference is a bitsandbytes class (`"module": "bitsandbytes.optim"`) runs that class, on the CPU
too, labelled `bitsandbytes`, where this Python can import it (else it is skipped, said on stderr). CUDA is measured too when
torch sees a GPU. The thread count is adamlab's (torch.set_num_threads).
"""

import argparse
import importlib
import inspect
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

IMPLEMENTATIONS = [
    ("torch-fused", {"fused": True}),
    ("torch-foreach", {"foreach": True, "fused": False}),
    ("torch-forloop", {"foreach": False, "fused": False}),
]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def emit(record):
    print(json.dumps(record), flush=True)


def devices(config):
    """The devices the configuration asks for ("cpu" for adamlab's CPU backends, "cuda" for wgpu;
    both when it names none), less CUDA where this torch has none."""
    wanted = config.get("devices", ["cpu", "cuda"])
    out = []
    if "cpu" in wanted:
        out.append(("torch", "cpu", f"cpu ({config['threads']} threads)"))
    if "cuda" in wanted:
        if torch.cuda.is_available():
            out.append(("torch-cuda", "cuda", torch.cuda.get_device_name(0)))
        else:
            log("torch: no CUDA device, so the GPU backends' rows have no PyTorch counterpart; skipped")
    return out


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def optimizer_class(entry):
    """The entry's class, or None (said on stderr) where its module does not import."""
    module = entry.get("module", "torch.optim")
    try:
        return getattr(importlib.import_module(module), entry["class"])
    except ImportError as err:
        log(f"torch: {entry['spec']}: cannot import {module} ({err}); skipped")
        return None


def implementations(entry):
    """torch's three implementations for a torch.optim class; for another library's class (a
    bitsandbytes 8-bit optimizer) its one step, labelled with the library's name."""
    module = entry.get("module", "torch.optim")
    if module == "torch.optim":
        return IMPLEMENTATIONS
    return [(module.split(".")[0], {})]


def accepted(cls):
    return set(inspect.signature(cls.__init__).parameters)


def kwargs_for(cls, kwargs):
    """The spec's keywords that the torch class takes (tuples for lists), minus the
    implementation switches this script sets itself."""
    names = accepted(cls) - {"self", "params", "fused", "foreach"}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items() if k in names}


def split(params, tensors):
    return [params // tensors + (1 if i < params % tensors else 0) for i in range(tensors)]


def summary(times):
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": len(times),
    }


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    return status_mib("VmHWM:")


def status_mib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def base_record(config, bench, backend, device_name, entry, implementation):
    return {
        "bench": bench,
        "backend": backend,
        "device": device_name,
        "optimizer": entry["spec"],
        "reference": entry["reference"],
        "implementation": implementation,
        "warmup": config["warmup"],
        "lr": entry["kwargs"].get("lr"),
    }


def bench_step(config):
    for backend, device, device_name in devices(config):
        for entry in config["optimizers"]:
            cls = optimizer_class(entry)
            if cls is None:
                continue
            kwargs = kwargs_for(cls, entry["kwargs"])
            takes = accepted(cls)
            for implementation, flags in implementations(entry):
                # An implementation needs the switches it turns on; those it turns off are passed
                # only where the class has them (a class without `fused` still has a for-loop).
                needed = [k for k, v in flags.items() if v]
                if not set(needed) <= takes:
                    log(f"torch: {cls.__name__} has no {', '.join(needed)}; {implementation} skipped")
                    continue
                flags = {k: v for k, v in flags.items() if k in takes}
                for params in config["params"]:
                    torch.manual_seed(0)
                    tensors = []
                    for n in split(params, config["tensors"]):
                        p = nn.Parameter(torch.randn(n, device=device))
                        p.grad = torch.randn(n, device=device) * 1e-2
                        tensors.append(p)
                    # Some implementations are refused only at the first step (torch's fused
                    # Adagrad on CUDA, say): that step is inside the check too.
                    try:
                        optimizer = cls(tensors, **kwargs, **flags)
                        # One untimed step creates the state; then the peak resident memory of
                        # the warm-up and timed steps is taken above the resident memory before.
                        optimizer.step()
                        sync(device)
                    except (RuntimeError, ValueError) as err:
                        first = str(err).splitlines()[0] if str(err) else type(err).__name__
                        log(f"torch: {cls.__name__} {implementation} on {device}: {first}; skipped")
                        break
                    log(f"torch: {entry['spec']} {implementation} {device} {params}")
                    before = status_mib("VmRSS:") if device == "cpu" else None
                    reset = device == "cpu" and reset_peak_rss()
                    for _ in range(config["warmup"]):
                        optimizer.step()
                    sync(device)
                    times = []
                    for _ in range(config["repeats"]):
                        start = time.perf_counter()
                        optimizer.step()
                        sync(device)
                        times.append((time.perf_counter() - start) * 1e3)
                    record = base_record(config, "step", backend, device_name, entry, implementation)
                    record.update(summary(times), params=params, tensors=config["tensors"])
                    peak = peak_rss_mib() if reset else None
                    if before is not None and peak is not None:
                        record["step_extra_mib"] = max(peak - before, 0.0)
                    emit(record)
                    del optimizer, tensors


class Cnn(nn.Module):
    """The article's CNN, as adamlab_models::Cnn."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))  # [b, 32, 14, 14]
        x = self.pool(self.relu(self.conv2(x)))  # [b, 64, 7, 7]
        x = x.view(-1, 64 * 7 * 7)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


def batch_for(model_name, batch, device):
    """The model and its loss on one random batch (the values do not change the time)."""
    images = torch.rand(batch, 1, 28, 28, device=device)
    labels = torch.arange(batch, device=device) % 10
    if model_name == "cnn":
        return Cnn().to(device), lambda m: F.cross_entropy(m(images), labels)
    if model_name == "mlp":
        inputs = torch.randn(batch, 2, device=device)
        targets = torch.randn(batch, 1, device=device)
        return nn.Linear(2, 1).to(device), lambda m: F.mse_loss(m(inputs), targets)
    # The workloads: tools/reference/models.py, which adamlab writes beside this script.
    import models

    if model_name == "char-gpt":
        tokens = torch.randint(0, models.VOCAB, (batch, 129), device=device)
        return models.CharGPT().to(device), lambda m: m.loss(tokens)
    if model_name == "softmax-regression":
        return models.SoftmaxRegression().to(device), lambda m: m.loss((images, labels))
    make = {"rosenbrock": models.Rosenbrock, "quadratic": models.Quadratic}[model_name]
    return make().to(device), lambda m: m.loss(None)


def batch_sizes(config, model_name):
    """A test function has no data: batch 1 only, as adamlab_bench::train::Model::batch_sizes."""
    return [1] if model_name in ("rosenbrock", "quadratic") else config["batch_sizes"]


def bench_train(config):
    for backend, device, device_name in devices(config):
        # torch's default: the for-loop on the CPU, foreach on CUDA.
        default = "torch-foreach" if device == "cuda" else "torch-forloop"
        for model_name in config["models"]:
            for entry in config["optimizers"]:
                cls = optimizer_class(entry)
                if cls is None:
                    continue
                # Another library's class has one step of its own.
                torch_optim = entry.get("module", "torch.optim") == "torch.optim"
                implementation = default if torch_optim else implementations(entry)[0][0]
                kwargs = kwargs_for(cls, entry["kwargs"])
                for batch in batch_sizes(config, model_name):
                    log(f"torch: train {model_name} {entry['spec']} {device} batch {batch}")
                    torch.manual_seed(0)
                    reset = reset_peak_rss()
                    model, loss_of = batch_for(model_name, batch, device)
                    optimizer = cls(model.parameters(), **kwargs)
                    total, forward, backward, step = [], [], [], []
                    for i in range(config["warmup"] + config["repeats"]):
                        t0 = time.perf_counter()
                        loss = loss_of(model)
                        sync(device)
                        t1 = time.perf_counter()
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        sync(device)
                        t2 = time.perf_counter()
                        optimizer.step()
                        sync(device)
                        t3 = time.perf_counter()
                        if i >= config["warmup"]:
                            total.append((t3 - t0) * 1e3)
                            forward.append((t1 - t0) * 1e3)
                            backward.append((t2 - t1) * 1e3)
                            step.append((t3 - t2) * 1e3)
                    record = base_record(config, "train", backend, device_name, entry, implementation)
                    record.update(
                        summary(total),
                        model=model_name,
                        batch_size=batch,
                        images_per_second=batch / (statistics.median(total) * 1e-3),
                        forward_ms=statistics.median(forward),
                        backward_ms=statistics.median(backward),
                        step_ms=statistics.median(step),
                        peak_rss_mib=peak_rss_mib() if device == "cpu" else None,
                    )
                    if not reset:
                        record["note"] = "peak RSS not reset: it covers the whole process"
                    emit(record)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="the JSON configuration (default: read from stdin)")
    args = parser.parse_args()
    if args.config:
        with open(args.config) as f:
            config = json.load(f)
    else:
        config = json.load(sys.stdin)
    torch.set_num_threads(config["threads"])
    if config["bench"] == "step":
        bench_step(config)
    elif config["bench"] == "train":
        bench_train(config)
    else:
        sys.exit(f"torch_bench.py: unknown bench {config['bench']!r} (step or train)")


if __name__ == "__main__":
    main()
