"""LoRA: low-rank adaptation of a frozen Linear (Hu et al., 2021): the Module (the pair: npfm/functional/lora.py)."""

import math

import numpy as np

from ..core import Module, Parameter, check_array
from .linear import Linear
from ..fast import pair


class LoRALinear(Module):
    """A Linear with a trained low-rank update: y = x @ W + b + (alpha / r) (x @ A) @ B.

    linear: the npfm ``Linear`` to adapt. Its Parameters W and b become this
    Module's W and b (the same objects, not copies; so a state dict keeps
    their names ``...W``, ``...b`` beside the new ``...A``, ``...B``) and are
    frozen (``trainable = False``): optimizers and gradient clipping skip
    them, and backward adds no gradient to them. Set ``W.trainable = True``
    to train them as well.
    A ~ N(0, std^2) with std = 1 / sqrt(C_in) by default, B = 0.
    """

    def __init__(self, linear, r, alpha=None, std=None, rng=None):
        if not isinstance(linear, Linear):
            raise TypeError(f"LoRALinear: expected an npfm Linear to adapt, got {type(linear).__name__}")
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise ValueError(f"LoRALinear: the rank r must be a positive integer, got {r!r}")
        alpha = r if alpha is None else alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
            raise ValueError(f"LoRALinear: alpha must be a finite number, got {alpha!r}")
        rng = np.random.default_rng(0) if rng is None else rng
        self.in_dim, self.out_dim = linear.in_dim, linear.out_dim
        self.r, self.alpha, self.scale = int(r), float(alpha), float(alpha) / int(r)
        self.W, self.b = linear.W, linear.b
        self.W.trainable = False
        if self.b is not None:
            self.b.trainable = False
        std = 1.0 / math.sqrt(self.in_dim) if std is None else float(std)
        dtype = self.W.dtype
        self.A = Parameter((rng.standard_normal((self.in_dim, self.r)) * std).astype(dtype))
        self.B = Parameter(np.zeros((self.r, self.out_dim), dtype))

    def forward(self, x):
        """x: (..., in_dim) -> (..., out_dim)"""
        x = check_array(x, "x", last_dim=self.in_dim,
                        who=f"LoRALinear({self.in_dim}, {self.out_dim}, r={self.r})")
        b = None if self.b is None else self.b.data
        forward, self._backward = pair("lora")
        y, self._cache = forward(x, self.W.data, b, self.A.data, self.B.data, self.scale)
        return y

    def backward(self, dy):
        cache = self._saved()
        dx, dW, db, dA, dB = self._backward(dy, cache)
        self.A.grad += dA           # accumulate: a Parameter may be shared
        self.B.grad += dB
        if self.W.trainable:
            self.W.grad += dW
        if self.b is not None and self.b.trainable:
            self.b.grad += db
        return dx

    def merge(self):
        """A plain, trainable Linear with W + scale * A @ B (and a copy of b): same outputs."""
        dtype = self.W.dtype
        merged = Linear(self.in_dim, self.out_dim, bias=self.b is not None, std=0.0, dtype=dtype)
        merged.W.data = (self.W.data + self.scale * (self.A.data @ self.B.data)).astype(dtype)
        if self.b is not None:
            merged.b.data = self.b.data.copy()
        return merged


def _linear_slots(module, prefix=""):
    """(dotted name, parent, attribute, index or None, child) for every Linear or
    LoRALinear below ``module``, depth first, each module object visited once."""
    seen = set()

    def walk(parent, prefix):
        if id(parent) in seen:
            return
        seen.add(id(parent))
        for attr, value in list(vars(parent).items()):
            name = f"{prefix}.{attr}" if prefix else attr
            if isinstance(value, (Linear, LoRALinear)):
                yield name, parent, attr, None, value
            elif isinstance(value, Module):
                yield from walk(value, name)
            elif isinstance(value, list) and value and all(isinstance(v, Module) for v in value):
                for i, v in enumerate(value):
                    if isinstance(v, (Linear, LoRALinear)):
                        yield f"{name}.{i}", parent, attr, i, v
                    else:
                        yield from walk(v, f"{name}.{i}")

    yield from walk(module, prefix)


def _put(parent, attr, index, new):
    if index is None:
        setattr(parent, attr, new)
    else:
        getattr(parent, attr)[index] = new


def _matches(name, targets):
    parts = name.split(".")
    return any(parts[-len(t.split(".")):] == t.split(".") for t in targets)


def add_lora(model, r, alpha=None, targets=None, freeze=True, seed=0):
    """Replace Linears of ``model`` by LoRALinears in place; returns the names replaced.

    targets: None for every Linear, or names that end a Linear's dotted name
        ("fc1", "ffn.fc2", "blocks.0.ffn.fc1"); a target matching nothing raises.
    freeze: also freeze every other Parameter of the model (what LoRA
        fine-tuning means: only the A and B matrices train).
    seed: for the A matrices (one generator, in the order of the names).
    """
    if not isinstance(model, Module):
        raise TypeError(f"add_lora: expected a Module, got {type(model).__name__}")
    if isinstance(model, (Linear, LoRALinear)):
        raise TypeError("add_lora: the model itself is a Linear; wrap it with LoRALinear(linear, r)")
    if isinstance(targets, str):
        targets = [targets]
    slots = [s for s in _linear_slots(model) if isinstance(s[4], Linear)]
    if targets is not None:
        targets = list(targets)
        for t in targets:
            if not any(_matches(s[0], [t]) for s in slots):
                names = [s[0] for s in slots]
                raise ValueError(f"add_lora: target {t!r} matches no Linear of "
                                 f"{type(model).__name__}; its Linears are {names}")
        slots = [s for s in slots if _matches(s[0], targets)]
    if not slots:
        raise ValueError(f"add_lora: {type(model).__name__} has no Linear to adapt")
    if freeze:
        for p in model.parameters():
            p.trainable = False
    rng = np.random.default_rng(seed)
    for name, parent, attr, index, linear in slots:
        _put(parent, attr, index, LoRALinear(linear, r, alpha, rng=rng))
    return [s[0] for s in slots]


def merge_lora(model):
    """Replace every LoRALinear of ``model`` by its merged Linear (for export); returns the names."""
    slots = [s for s in _linear_slots(model) if isinstance(s[4], LoRALinear)]
    for name, parent, attr, index, lora in slots:
        _put(parent, attr, index, lora.merge())
    return [s[0] for s in slots]
