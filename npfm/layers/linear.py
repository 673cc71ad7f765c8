"""The affine layer, the workhorse of every transformer.

Forward, for x with any leading axes flattened to N rows:

    y = x @ W + b                  x: (N, in)   W: (in, out)   b: (out,)

Backward, reversing that one line:

    dx = dy @ W^T                  (N, in)
    dW = x^T @ dy                  (in, out)    one matrix product over all N rows
    db = sum over rows of dy       (out,)
"""

from __future__ import annotations

import numpy as np

from ..core import Module, Parameter, check_array


def linear_forward(x, W, b=None):
    """y = x @ W + b over the last axis of x.

    x: (..., in)   W: (in, out)   b: (out,) or None   ->   y: (..., out), cache
    """
    W = check_array(W, "W", min_ndim=2, who="linear")
    if W.ndim != 2:
        raise ValueError(f"linear: W must be a matrix (in, out), got shape {W.shape}")
    x = check_array(x, "x", last_dim=W.shape[0], who="linear")
    if b is not None and np.shape(b) != (W.shape[1],):
        raise ValueError(f"linear: b has shape {np.shape(b)}, expected ({W.shape[1]},)")
    x2d = x.reshape(-1, W.shape[0])                        # (N, in)
    y = x2d @ W                                            # (N, out)  one BLAS call
    if b is not None:
        y += b
    y = y.reshape(*x.shape[:-1], W.shape[1])               # (..., out)
    return y, (x, W, b is not None)


def linear_backward(dy, cache):
    """dy: (..., out) -> dx (..., in), dW (in, out), db (out,) or None without bias."""
    x, W, has_bias = cache
    dy2d = dy.reshape(-1, W.shape[1])                      # (N, out)
    dx = (dy2d @ W.T).reshape(x.shape)                     # (..., in)
    dW = x.reshape(-1, W.shape[0]).T @ dy2d                # (in, out)
    db = np.ones(len(dy2d), dy2d.dtype) @ dy2d if has_bias else None  # (out,) sum over rows
    return dx, dW, db


class Linear(Module):
    """y = x @ W + b with W ~ N(0, std^2) of shape (in_dim, out_dim) and b = 0.

    rng: an ``np.random.Generator`` for the initial weights (None: seed 0).
    """

    def __init__(self, in_dim, out_dim, bias=True, std=0.02, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        self.in_dim, self.out_dim = in_dim, out_dim
        self.W = Parameter((rng.standard_normal((in_dim, out_dim)) * std).astype(dtype))
        self.b = Parameter(np.zeros(out_dim, dtype), decay=False) if bias else None

    def forward(self, x):
        """x: (..., in_dim) -> (..., out_dim)"""
        x = check_array(x, "x", last_dim=self.in_dim, who=f"Linear({self.in_dim}, {self.out_dim})")
        b = None if self.b is None else self.b.data
        y, self._cache = linear_forward(x, self.W.data, b)
        return y

    def backward(self, dy):
        dx, dW, db = linear_backward(dy, self._saved())
        self.W.grad += dW          # accumulate: a Parameter may be shared
        if self.b is not None:
            self.b.grad += db
        return dx
