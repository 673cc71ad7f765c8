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

where the means are over the C channels of the row. Both means are matrix
products with gamma: mean(g) = (dy @ gamma) / C and
mean(g * xhat) = ((dy * xhat) @ gamma) / C, and dy * xhat is the array that
gives dgamma, so the backward makes only two (..., C) arrays.
"""

from __future__ import annotations

import numpy as np

from ..core import Module, Parameter, check_array


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, over the last axis.

    x: (..., C)   gamma, beta: (C,)   ->   y: (..., C), cache
    """
    x = check_array(x, "x", last_dim=gamma.shape[-1], who="layernorm")
    mean = x.mean(axis=-1, keepdims=True)                          # (..., 1)
    xhat = x - mean                                                # (..., C) centred; scaled below
    y = np.multiply(xhat, xhat)                                    # (..., C) squares; becomes y
    rstd = 1.0 / np.sqrt(y.mean(axis=-1, keepdims=True) + float(eps))  # (..., 1)
    xhat *= rstd
    np.multiply(xhat, gamma, out=y)
    y += beta
    return y, (xhat, gamma, rstd)


def layernorm_backward(dy, cache):
    """dy: (..., C) -> dx (..., C), dgamma (C,), dbeta (C,).

    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = gamma * dy.
    """
    xhat, gamma, rstd = cache
    C = gamma.shape[-1]
    dy_xhat = dy * xhat                                            # (..., C)
    dgamma = dy_xhat.reshape(-1, C).sum(axis=0)                    # (C,)
    dbeta = dy.reshape(-1, C).sum(axis=0)                          # (C,)
    mean_g = (dy @ gamma)[..., None] / C                           # (..., 1)
    mean_g_xhat = (dy_xhat @ gamma)[..., None] / C                 # (..., 1)
    dx = dy * gamma                                                # (..., C) g
    dx -= mean_g
    dx -= np.multiply(xhat, mean_g_xhat, out=dy_xhat)              # reuse the buffer
    dx *= rstd
    return dx, dgamma, dbeta


class LayerNorm(Module):
    """Normalise each position over its dim channels, then scale by gamma
    (ones) and shift by beta (zeros); neither is weight-decayed."""

    def __init__(self, dim, eps=1e-5, dtype=np.float32):
        self.gamma = Parameter(np.ones(dim, dtype), decay=False)
        self.beta = Parameter(np.zeros(dim, dtype), decay=False)
        self.eps = eps

    def forward(self, x):
        """x: (..., dim) -> (..., dim)"""
        y, self._cache = layernorm_forward(x, self.gamma.data, self.beta.data, self.eps)
        return y

    def backward(self, dy):
        dx, dgamma, dbeta = layernorm_backward(dy, self._saved())
        self.gamma.grad += dgamma   # accumulate: a Parameter may be shared
        self.beta.grad += dbeta
        return dx
