"""Layer normalisation over the channels of each position.

Forward, for each row x of C channels:

    mean = sum(x) / C                 var = sum((x - mean)^2) / C
    rstd = 1 / sqrt(var + eps)        xhat = (x - mean) * rstd
    y = gamma * xhat + beta

Backward. The Parameters are easy: dgamma = sum over rows of dy * xhat,
dbeta = sum over rows of dy. For the input, write g = gamma * dy (the gradient
reaching xhat). Because xhat is centred and has unit variance, its gradient
through mean and rstd gives

    dx = rstd * (g - mean(g) - xhat * mean(g * xhat))

where the means are over the C channels of the row.
"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, over the last axis.

    x: (..., C)   gamma, beta: (C,)   ->   y: (..., C), cache
    """
    mean = x.mean(axis=-1, keepdims=True)                      # (..., 1)
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + float(eps))   # (..., 1)
    xhat = (x - mean) * rstd                                   # (..., C)
    return gamma * xhat + beta, (xhat, gamma, rstd)


def layernorm_backward(dy, cache):
    """With g = gamma * dy:  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))."""
    xhat, gamma, rstd = cache
    batch_axes = tuple(range(dy.ndim - 1))
    g = dy * gamma                                             # (..., C)
    dx = rstd * (g - g.mean(-1, keepdims=True)
                 - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=batch_axes), dy.sum(axis=batch_axes)
