"""Linear, fast: the textbook pair (npfm/functional/linear.py) with fewer passes.

The bias is added in place, and the bias gradient (a sum over N rows) is a
matrix-vector product with a vector of ones, which BLAS runs faster than a
reduction over the rows.
"""

import numpy as np


def linear_forward(x, W, b=None):
    """y = x @ W + b over the last axis of x.

    x: (..., in)   W: (in, out)   b: (out,) or None   ->   y: (..., out), cache
    """
    y = x.reshape(-1, W.shape[0]) @ W                      # (N, out)  one BLAS call
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], W.shape[1]), (x, W, b is not None)


def linear_backward(dy, cache):
    """dy: (..., out) -> dx (..., in), dW (in, out), db (out,) or None without bias."""
    x, W, has_bias = cache
    dy2d = dy.reshape(-1, W.shape[1])                      # (N, out)
    dx = (dy2d @ W.T).reshape(x.shape)                     # (..., in)
    dW = x.reshape(-1, W.shape[0]).T @ dy2d                # (in, out)
    db = np.ones(len(dy2d), dy2d.dtype) @ dy2d if has_bias else None   # (out,) sum over rows
    return dx, dW, db
