"""adamlab's workload models in PyTorch, with adamlab's parameter names and PyTorch's layouts.

Shared by `tools/reference/workloads.py` (the parity fixtures) and `tools/bench/torch_bench.py`
(PyTorch's side of `adamlab bench train`, which the adamlab binary writes beside this file), so
that the model PyTorch is timed on is the model its fixtures were made with. Only torch is needed.
"""

import math

import torch

VOCAB = 96


class CausalSelfAttention(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.query = torch.nn.Linear(d, d)
        self.key = torch.nn.Linear(d, d)
        self.value = torch.nn.Linear(d, d)
        self.out = torch.nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads

        def split(y):
            return y.reshape(b, t, h, d // h).transpose(1, 2)  # [b, h, T, d/h]

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = (q @ k.transpose(2, 3)) * (1.0 / math.sqrt(d // h))  # [b, h, T, T]
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=3)
        y = weights @ v  # [b, h, T, d/h]
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = torch.nn.Linear(d, 4 * d)
        self.proj = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        return self.proj(torch.nn.functional.gelu(self.fc(x)))


class Block(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads)
        self.norm2 = torch.nn.LayerNorm(d)
        self.mlp = FeedForward(d)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharGPT(torch.nn.Module):
    """adamlab_models::CharGpt: GPT-2's initialisation (N(0, 0.02²) weights, zero biases)."""

    def __init__(self, vocab=VOCAB, context=128, d_model=128, heads=4, layers=4):
        super().__init__()
        self.token = torch.nn.Embedding(vocab, d_model)
        self.position = torch.nn.Embedding(context, d_model)
        self.blocks = torch.nn.ModuleList([Block(d_model, heads) for _ in range(layers)])
        self.norm = torch.nn.LayerNorm(d_model)
        self.head = torch.nn.Linear(d_model, vocab)
        for module in self.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                torch.nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.zeros_(module.bias)

    def forward(self, tokens):
        b, t = tokens.shape
        positions = torch.arange(t, device=tokens.device).expand(b, t)
        x = self.token(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def loss(self, batch):
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits = self(inputs)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class SoftmaxRegression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(784, 10)

    def loss(self, batch):
        images, labels = batch
        return torch.nn.functional.cross_entropy(self.fc(images.reshape(len(images), -1)), labels)


class Rosenbrock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.point = torch.nn.Parameter(torch.tensor([-1.2, 1.0]))

    def loss(self, _batch):
        x, y = self.point[0:1], self.point[1:2]
        a, b = 1.0 - x, y - x * x
        return (a * a + 100.0 * (b * b)).reshape(())


class Quadratic(torch.nn.Module):
    """½(x − c)ᵀA(x − c), A = H·diag(λ)·H, as adamlab_models::Quadratic."""

    DIM = 10
    CONDITION = 1000.0

    def __init__(self):
        super().__init__()
        n = self.DIM
        self.point = torch.nn.Parameter(torch.zeros(n))
        lam = torch.tensor([self.CONDITION ** (i / (n - 1)) for i in range(n)], dtype=torch.float64)
        h = torch.eye(n, dtype=torch.float64) - 2.0 / n
        self.register_buffer("curvature", (h @ torch.diag(lam) @ h).to(torch.float32), persistent=False)
        self.register_buffer(
            "optimum", torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(n)]), persistent=False
        )

    def loss(self, _batch):
        r = self.point - self.optimum
        return 0.5 * (r * (self.curvature @ r)).sum()
