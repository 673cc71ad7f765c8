"""Softmax over the last axis.

Forward, stable: subtracting the row maximum m changes nothing mathematically
(the factor exp(-m) cancels) but keeps exp from overflowing:

    y_i = exp(x_i - m) / sum_j exp(x_j - m)

Backward. The Jacobian is dy_i/dx_j = y_i (delta_ij - y_j), so

    dx_i = y_i (dy_i - sum_j dy_j y_j)

A row whose entries are all -inf (nothing allowed) gives y = 0 and dx = 0, never NaN.
"""

from __future__ import annotations

import numpy as np

from ..core import Module, check_array


def softmax_forward(x):
    """y = exp(x - max) / sum(exp(x - max)) over the last axis.

    x: (..., N)   ->   y: (..., N), cache
    """
    x = check_array(x, "x", who="softmax")
    row_max = x.max(axis=-1, keepdims=True)                   # (..., 1)
    row_max[~np.isfinite(row_max)] = 0.0                      # all -inf rows stay -inf, exp -> 0
    y = x - row_max                                           # (..., N)
    np.exp(y, out=y)
    row_sum = y.sum(axis=-1, keepdims=True)                   # (..., 1)
    row_sum[row_sum == 0] = 1.0                               # 0 / 1 = 0, never 0 / 0
    y /= row_sum
    return y, y


def softmax_backward(dy, cache):
    """dy: (..., N) -> dx = y * (dy - sum(dy * y, -1))."""
    y = cache
    dx = dy - (dy * y).sum(axis=-1, keepdims=True)            # (..., N)
    dx *= y
    return dx


class Softmax(Module):
    """Softmax over the last axis; no Parameters."""

    def forward(self, x):
        y, self._cache = softmax_forward(x)
        return y

    def backward(self, dy):
        return softmax_backward(dy, self._saved())
