"""Root-mean-square normalisation (Zhang and Sennrich, 2019), Llama's LayerNorm.

RMSNorm rescales each row to unit root mean square and does not centre it:
no mean is subtracted and there is no bias. For each row x of C channels:

    rstd = 1 / sqrt(mean(x^2) + eps)        xhat = x * rstd
    y = gamma * xhat

Backward. The gain: dgamma = sum over rows of dy * xhat. For the input, write
g = gamma * dy (the gradient reaching xhat). Since
d rstd / d x_j = -rstd^3 x_j / C,

    dx_i = g_i rstd + sum_j g_j x_j (-rstd^3 x_i / C)
         = rstd * (g_i - xhat_i * mean(g * xhat))

the LayerNorm formula without its mean(g) term (there is no centring to undo).
"""


import numpy as np


def rmsnorm_forward(x, gamma, eps=1e-6):
    """y = gamma * x / sqrt(mean(x^2) + eps), over the last axis.

    x: (..., C)   gamma: (C,)   ->   y: (..., C), cache
    """
    rstd = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    xhat = x * rstd                                                    # (..., C)
    return gamma * xhat, (xhat, gamma, rstd)


def rmsnorm_backward(dy, cache):
    """With g = gamma * dy:  dx = rstd * (g - xhat * mean(g * xhat)),  dgamma = sum(dy * xhat)."""
    xhat, gamma, rstd = cache
    batch_axes = tuple(range(dy.ndim - 1))
    g = dy * gamma                                                     # (..., C)
    dx = rstd * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))   # (..., C)
    return dx, (dy * xhat).sum(axis=batch_axes)
