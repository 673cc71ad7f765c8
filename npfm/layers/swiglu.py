"""SwiGLU (Shazeer, 2020), the feed-forward network of Llama.

A gated linear unit: one projection of x, passed through SiLU, gates another
projection of x elementwise, and a third projection maps back to the width:

    a = x @ W1                  gate pre-activation          (..., F)
    u = x @ W3                  the "up" projection          (..., F)
    h = silu(a) * u                                          (..., F)
    y = h @ W2                  the "down" projection        (..., C)

W1, W3: (C, F), W2: (F, C), no biases (Llama's w1, w3, w2; the names of the
Module's Parameters say what they do: W_gate, W_up, W_down). Llama takes
F of about 8/3 C so that three matrices cost what GELU's two of 4 C do.

Backward, reversing the four lines:

    dh = dy @ W2^T              dW2 = h^T dy                 (rows of all leading axes)
    du = dh * silu(a)           da  = silu'(a) * (dh * u)
    dW3 = x^T du                dW1 = x^T da
    dx = da @ W1^T + du @ W3^T  (x feeds both branches: their gradients add)

with silu'(a) = s (1 + a (1 - s)), s = sigmoid(a) (see ``silu.py``).
"""

from __future__ import annotations

import math

import numpy as np

from ..core import Module, Parameter, check_array
from .silu import silu_backward, silu_forward


def swiglu_forward(x, W1, W3, W2):
    """y = (silu(x @ W1) * (x @ W3)) @ W2 over the last axis of x.

    x: (..., C)   W1, W3: (C, F)   W2: (F, C)   ->   y: (..., C), cache
    """
    a = x @ W1                                                     # (..., F)
    s, silu_cache = silu_forward(a)                                # (..., F)
    u = x @ W3                                                     # (..., F)
    h = s * u                                                      # (..., F)
    return h @ W2, (x, W1, W3, W2, s, silu_cache, u, h)


def swiglu_backward(dy, cache):
    """dy: (..., C) -> dx (..., C), dW1 (C, F), dW3 (C, F), dW2 (F, C)."""
    x, W1, W3, W2, s, silu_cache, u, h = cache
    C, F = W1.shape
    dy2 = dy.reshape(-1, C)                                        # (N, C)
    dh = dy @ W2.T                                                 # (..., F)
    dW2 = h.reshape(-1, F).T @ dy2                                 # (F, C)
    du = dh * s                                                    # (..., F)
    da = silu_backward(dh * u, silu_cache)                         # (..., F)
    x2 = x.reshape(-1, C)                                          # (N, C)
    dW1 = x2.T @ da.reshape(-1, F)                                 # (C, F)
    dW3 = x2.T @ du.reshape(-1, F)                                 # (C, F)
    dx = da @ W1.T + du @ W3.T                                     # (..., C)
    return dx, dW1, dW3, dW2


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
        y, self._cache = swiglu_forward(x, self.W_gate.data, self.W_up.data, self.W_down.data)
        return y

    def backward(self, dy):
        dx, dW_gate, dW_up, dW_down = swiglu_backward(dy, self._saved())
        self.W_gate.grad += dW_gate   # accumulate: a Parameter may be shared
        self.W_up.grad += dW_up
        self.W_down.grad += dW_down
        return dx
