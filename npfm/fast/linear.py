"""Linear, fast: the textbook pair (npfm/functional/linear.py) with fewer passes.

The bias is added in place, and the bias gradient (a sum over N rows) is a
matrix-vector product with a vector of ones, which BLAS runs faster than a
reduction over the rows. The backward's two products, dx and dW, are
independent and of the same size: they run at once, one per core
(``npfm.fast.threads.run_in_parallel``), instead of one after the other on
OpenBLAS's threads.
"""

import numpy as np

from .threads import run_in_parallel

PAIR_WORK = 1 << 21    # multiply-adds per product from which dx and dW run in parallel


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
    x2d = x.reshape(-1, W.shape[0])                        # (N, in)

    def input_and_bias_grads():
        dx = (dy2d @ W.T).reshape(x.shape)                 # (..., in)
        db = np.ones(len(dy2d), dy2d.dtype) @ dy2d if has_bias else None   # (out,) sum over rows
        return dx, db

    def weight_grad():
        return x2d.T @ dy2d                                # (in, out)

    if len(dy2d) * W.size >= PAIR_WORK:
        (dx, db), dW = run_in_parallel(input_and_bias_grads, weight_grad)
    else:
        (dx, db), dW = input_and_bias_grads(), weight_grad()
    return dx, dW, db
