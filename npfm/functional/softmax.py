"""Softmax over the last axis, and its logarithm.

Forward, stable: subtracting the row maximum m changes nothing mathematically
(the factor exp(-m) cancels) but keeps exp from overflowing:

    y_i = exp(x_i - m) / sum_j exp(x_j - m)
    log y_i = (x_i - m) - log sum_j exp(x_j - m)

Backward. The Jacobian is dy_i/dx_j = y_i (delta_ij - y_j), so

    dx_i = y_i (dy_i - sum_j dy_j y_j)

A row whose entries are all -inf (nothing allowed, a fully masked attention
row) gives y = 0 and dx = 0, never NaN: its max is taken as 0 and its sum as 1.
Attention, cross-entropy and CLIP's loss all use these two functions.
"""

import numpy as np


def _row_max(x, axis):
    """The max along ``axis``, with 0 for rows that have no finite entry."""
    m = x.max(axis=axis, keepdims=True)                       # (..., 1)
    return np.where(np.isfinite(m), m, 0.0).astype(x.dtype)


def softmax_forward(x):
    """y = exp(x - max) / sum(exp(x - max)) over the last axis.

    x: (..., N)   ->   y: (..., N), cache
    """
    e = np.exp(x - _row_max(x, -1))                           # (..., N)
    s = e.sum(axis=-1, keepdims=True)                         # (..., 1)
    y = e / np.where(s == 0, 1.0, s).astype(x.dtype)          # an all -inf row: 0 / 1 = 0
    return y, y


def softmax_backward(dy, cache):
    """dy: (..., N) -> dx = y * (dy - sum(dy * y, -1))."""
    y = cache
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))    # (..., N)


def log_softmax(x, axis=-1):
    """log softmax(x) along ``axis``, without forming softmax(x) first."""
    shifted = x - _row_max(x, axis)                           # (..., N)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
