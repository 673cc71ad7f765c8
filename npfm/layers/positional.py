"""Position information added to a (B, T, C) sequence of vectors.

Attention by itself ignores order, so each position t gets a vector P[t]
added to its input:

    y[b, t, :] = x[b, t, :] + P[offset + t, :]        dx = dy

``offset`` is the position of the first of the T inputs: 0 for a whole
sequence, the number of tokens already decoded when a KV cache feeds one new
token at a time.

Two tables:

* learned (GPT-2, BERT): P is a Parameter W (max_len, C); its gradient is dy
  summed over the batch, landing on rows offset ... offset + T - 1:
  dW[offset + t] = sum_b dy[b, t].
* sinusoidal ("Attention is all you need"), fixed, with no parameters:
  P[t, 2i] = sin(t / 10000^(2i / C)),   P[t, 2i + 1] = cos(t / 10000^(2i / C)).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..core import Module, Parameter, check_array


def sinusoidal_positions(T, C, dtype=np.float32):
    """The (T, C) sinusoidal table: sin on even channels, cos on odd ones.

    Channel pair (2i, 2i + 1) turns at the angular frequency 10000^(-2i / C),
    from 1 radian per position down to 1 / 10000. Odd C works: the last
    channel is a sine without its cosine partner.
    """
    if T < 0 or C < 1:
        raise ValueError(f"sinusoidal_positions: need T >= 0 and C >= 1, got T={T}, C={C}")
    positions = np.arange(T, dtype=np.float64)[:, None]                  # (T, 1)
    freqs = np.exp(np.arange(0, C, 2) * (-math.log(10000.0) / C))        # (ceil(C/2),)
    angles = positions * freqs                                           # (T, ceil(C/2))
    table = np.empty((T, C))                                             # (T, C)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : C // 2])
    return table.astype(dtype)


def _check_positions(x, offset, max_len, dim, who):
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


def positional_embedding_forward(x, W, offset=0):
    """y = x + W[offset : offset + T], a learned position table.

    x: (..., T, C)   W: (max_len, C)   ->   y: (..., T, C), cache
    """
    x = _check_positions(x, offset, W.shape[0], W.shape[1], "positional embedding")
    T = x.shape[-2]
    y = x + W[offset:offset + T]                                         # (..., T, C)
    return y, (W.shape, W.dtype, offset, T)


def positional_embedding_backward(dy, cache):
    """dy: (..., T, C) -> dx = dy, dW (max_len, C) nonzero on rows offset ... offset + T - 1."""
    shape, dtype, offset, T = cache
    dW = np.zeros(shape, dtype)                                          # (max_len, C)
    dW[offset:offset + T] = dy.reshape(-1, T, shape[1]).sum(axis=0)      # sum over the batch
    return dy, dW


class PositionalEmbedding(Module):
    """Learned positions: a Parameter W (max_len, dim) ~ N(0, std^2), added to x."""

    def __init__(self, max_len, dim, std=0.02, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        self.max_len, self.dim = max_len, dim
        self.W = Parameter((rng.standard_normal((max_len, dim)) * std).astype(dtype), decay=False)

    def forward(self, x, offset=0):
        """x: (B, T, dim) -> x + W[offset : offset + T]"""
        x = _check_positions(x, offset, self.max_len, self.dim,
                             f"PositionalEmbedding({self.max_len}, {self.dim})")
        y = x + self.W.data[offset:offset + x.shape[-2]]                 # (B, T, C)
        self._cache = (offset, x.shape[-2])
        return y

    def backward(self, dy):
        offset, T = self._saved()
        # only T rows receive gradient: add them in place, no (max_len, C) temporary
        self.W.grad[offset:offset + T] += dy.reshape(-1, T, self.dim).sum(axis=0)
        return dy


class SinusoidalPositionalEncoding(Module):
    """Fixed sinusoidal positions, added to x; no Parameters."""

    def __init__(self, max_len, dim, dtype=np.float32):
        self.max_len, self.dim = max_len, dim
        self.dtype = np.dtype(dtype)
        self.table = sinusoidal_positions(max_len, dim, self.dtype)          # (max_len, C)

    def forward(self, x, offset=0):
        """x: (B, T, dim) -> x + P[offset : offset + T]"""
        x = _check_positions(x, offset, self.max_len, self.dim,
                             f"SinusoidalPositionalEncoding({self.max_len}, {self.dim})")
        if self.table.dtype != self.dtype:          # Module.astype changed self.dtype
            self.table = sinusoidal_positions(self.max_len, self.dim, self.dtype)
        self._cache = True
        return x + self.table[offset:offset + x.shape[-2]]                    # (B, T, C)

    def backward(self, dy):
        self._saved()
        return dy
