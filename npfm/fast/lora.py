"""LoRA, fast: the textbook pair (npfm/functional/lora.py) on flattened rows.

As in fast/swiglu.py: NumPy's stacked ``(B, T, C) @ (C, F)`` is its generic
loop, an order of magnitude slower here than one BLAS call on the (N, C)
rows, so every product runs on rows; the low-rank term and the bias are
added in place.

Cache: (x rows, W, has bias, A, B, scale, u = x A rows, x's shape).
"""

import numpy as np


def lora_forward(x, W, b, A, B, scale):
    """y = x @ W + b + scale * (x @ A) @ B; x: (..., C_in) -> y: (..., C_out), cache"""
    C_in, C_out = W.shape
    x2 = x.reshape(-1, C_in)                                       # (N, C_in)
    u = x2 @ A                                                     # (N, r)
    y = x2 @ W                                                     # (N, C_out)
    low = u @ B
    low *= scale
    y += low
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], C_out), (x2, W, b is not None, A, B, scale, u, x.shape)


def lora_backward(dy, cache):
    """dy: (..., C_out) -> dx (..., C_in), dW, db (or None), dA, dB."""
    x2, W, has_bias, A, B, scale, u, shape = cache
    dy2 = dy.reshape(-1, W.shape[1])                               # (N, C_out)
    dW = x2.T @ dy2                                                # (C_in, C_out)
    db = np.ones(len(dy2), dy2.dtype) @ dy2 if has_bias else None  # (C_out,)
    dB = u.T @ dy2
    dB *= scale                                                    # (r, C_out)
    du = dy2 @ B.T
    du *= scale                                                    # (N, r)
    dA = x2.T @ du                                                 # (C_in, r)
    dx = dy2 @ W.T
    dx += du @ A.T                                                 # (N, C_in)
    return dx.reshape(shape), dW, db, dA, dB
