"""Positions added to a sequence: learned or sinusoidal (the pairs: npfm/functional/positional.py)."""

import numbers

import numpy as np

from ..core import Module, Parameter, check_array
from ..fast import pair
from ..functional.positional import sinusoidal_positions


def check_positions(x, offset, max_len, dim, who):
    """Check x (..., T, C) against a (max_len, dim) table at ``offset``."""
    x = check_array(x, "x", min_ndim=2, last_dim=dim, who=who)
    if isinstance(offset, bool) or not isinstance(offset, numbers.Integral) or offset < 0:
        raise ValueError(f"{who}: offset must be a non-negative integer, got {offset!r}")
    T = x.shape[-2]
    if offset + T > max_len:
        raise ValueError(f"{who}: the sequence is longer than the position table: "
                         f"positions {offset} ... {offset + T - 1} requested "
                         f"(offset {offset} + length {T}), the table has max_len {max_len}")
    return x


class PositionalEmbedding(Module):
    """Learned positions: a Parameter W (max_len, dim) ~ N(0, std^2), added to x."""

    def __init__(self, max_len, dim, std=0.02, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        self.max_len, self.dim = max_len, dim
        self.W = Parameter((rng.standard_normal((max_len, dim)) * std).astype(dtype), decay=False)

    def forward(self, x, offset=0):
        """x: (B, T, dim) -> x + W[offset : offset + T]"""
        x = check_positions(x, offset, self.max_len, self.dim,
                            f"PositionalEmbedding({self.max_len}, {self.dim})")
        forward, self._backward = pair("positional_embedding")
        y, self._cache = forward(x, self.W.data, offset)
        return y

    def infer(self, x, offset=0):
        return pair("positional_embedding")[0](x, self.W.data, offset)[0]

    def backward(self, dy):
        cache = self._saved()
        dx, dW = self._backward(dy, cache)
        self.W.grad += dW
        return dx


class SinusoidalPositionalEncoding(Module):
    """Fixed sinusoidal positions, added to x; no Parameters."""

    def __init__(self, max_len, dim, dtype=np.float32):
        self.max_len, self.dim = max_len, dim
        self.dtype = np.dtype(dtype)
        self.table = sinusoidal_positions(max_len, dim, self.dtype)          # (max_len, C)

    def forward(self, x, offset=0):
        """x: (B, T, dim) -> x + P[offset : offset + T]"""
        x = check_positions(x, offset, self.max_len, self.dim,
                            f"SinusoidalPositionalEncoding({self.max_len}, {self.dim})")
        self._cache = True
        return self.infer(x, offset)

    def infer(self, x, offset=0):
        if self.table.dtype != self.dtype:          # Module.astype changed self.dtype
            self.table = sinusoidal_positions(self.max_len, self.dim, self.dtype)
        return x + self.table[offset:offset + x.shape[-2]]                    # (B, T, C)

    def backward(self, dy):
        self._saved()
        return dy
