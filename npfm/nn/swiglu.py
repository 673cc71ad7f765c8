"""SwiGLU (Shazeer, 2020), the feed-forward network of Llama: the Module (the pair: npfm/functional/swiglu.py)."""

import math

import numpy as np

from ..core import Module, Parameter, check_array
from ..fast import pair


class SwiGLU(Module):
    """y = (silu(x @ W_gate) * (x @ W_up)) @ W_down, weights ~ N(0, std^2), no biases.

    rng: an ``np.random.Generator`` for the initial weights (None: seed 0).
    """

    def __init__(self, dim, hidden, std=0.02, rng=None, dtype=np.float32):
        for name, value in (("dim", dim), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"SwiGLU: {name} must be a positive integer, got {value!r}")
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std >= 0):
            raise ValueError(f"SwiGLU: std must be a finite number >= 0, got {std!r}")
        rng = np.random.default_rng(0) if rng is None else rng
        self.dim, self.hidden = int(dim), int(hidden)
        self.W_gate = Parameter((rng.standard_normal((dim, hidden)) * std).astype(dtype))
        self.W_up = Parameter((rng.standard_normal((dim, hidden)) * std).astype(dtype))
        self.W_down = Parameter((rng.standard_normal((hidden, dim)) * std).astype(dtype))

    def forward(self, x):
        """x: (..., dim) -> (..., dim)"""
        x = check_array(x, "x", last_dim=self.dim, who=f"SwiGLU({self.dim}, {self.hidden})")
        forward, self._backward = pair("swiglu")
        y, self._cache = forward(x, self.W_gate.data, self.W_up.data, self.W_down.data)
        return y

    def infer(self, x):
        return pair("swiglu")[0](x, self.W_gate.data, self.W_up.data, self.W_down.data)[0]

    def backward(self, dy):
        cache = self._saved()
        dx, dW_gate, dW_up, dW_down = self._backward(dy, cache)
        self.W_gate.grad += dW_gate   # accumulate: a Parameter may be shared
        self.W_up.grad += dW_up
        self.W_down.grad += dW_down
        return dx
