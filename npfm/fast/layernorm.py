"""LayerNorm, fast: the textbook pair (npfm/functional/layernorm.py, where the
forward and the backward are derived) in row blocks on every core.

Each row mean is a matrix-vector product (BLAS, faster than a reduction over
a short last axis): mean(x) = x @ (1/C), mean(g) = dy @ (gamma/C),
mean(g * xhat) = (dy * xhat) @ (gamma/C), and dy * xhat also gives dgamma, so
the backward makes only two (..., C) arrays; each pass writes into buffers
it owns (``out=``). The sums over rows (dgamma, dbeta) are products with a
vector of ones as well (BLAS, ~1.5x faster than ``sum(axis=0)`` here).
"""

from functools import lru_cache, partial

import numpy as np

from .threads import map_rows


@lru_cache(maxsize=None)
def _averager(C, dtype):
    """The (C,) vector of 1/C (read-only, made once per width and dtype)."""
    avg = np.full(C, 1.0 / C, dtype)
    avg.flags.writeable = False
    return avg


def _layernorm_rows(x, y, xhat, rstd, *, gamma, beta, eps):
    """Fills y, xhat (n, C) and rstd (n, 1) for a block of rows x (n, C)."""
    avg = _averager(x.shape[-1], x.dtype)                          # (C,) a row's mean is x @ avg
    mean = (x @ avg)[:, None]                                      # (n, 1)
    np.subtract(x, mean, out=xhat)                                 # centred; scaled below
    np.multiply(xhat, xhat, out=y)                                 # squares; y is scratch here
    var = (y @ avg)[:, None]                                       # (n, 1)
    np.divide(1.0, np.sqrt(var + eps), out=rstd)                   # 1 / sqrt(var + eps)
    xhat *= rstd
    np.multiply(xhat, gamma, out=y)
    y += beta


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, over the last axis.

    x: (..., C)   gamma, beta: (C,)   ->   y: (..., C), cache

    Rows are independent, so ``map_rows`` runs blocks of them on every core.
    """
    C = gamma.shape[-1]
    y = np.empty(x.shape, x.dtype)                                 # (..., C)
    xhat = np.empty(x.shape, x.dtype)                              # (..., C)
    rstd = np.empty(x.shape[:-1] + (1,), x.dtype)                  # (..., 1)
    map_rows(partial(_layernorm_rows, gamma=gamma, beta=beta, eps=float(eps)),
             x.reshape(-1, C), y.reshape(-1, C), xhat.reshape(-1, C), rstd.reshape(-1, 1))
    return y, (xhat, gamma, rstd)


@lru_cache(maxsize=None)
def _ones(n, dtype):
    """The (n,) vector of ones (read-only): a sum over rows is ones @ rows."""
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


def _layernorm_backward_rows(dy, xhat, rstd, dx, *, gamma):
    """Fills dx (n, C) for a block of rows; returns the block's shares of dgamma, dbeta (C,)."""
    dy_xhat = dy * xhat                                            # (n, C)
    ones = _ones(len(dy), dy.dtype)                                # (n,)
    dgamma = ones @ dy_xhat                                        # (C,) sums over the rows
    dbeta = ones @ dy                                              # (C,)
    gamma_avg = gamma / gamma.shape[-1]                            # (C,)
    mean_g = (dy @ gamma_avg)[:, None]                             # (n, 1) mean(g), g = gamma * dy
    mean_g_xhat = (dy_xhat @ gamma_avg)[:, None]                   # (n, 1) mean(g * xhat)
    np.multiply(dy, gamma, out=dx)                                 # g
    dx -= mean_g
    dx -= np.multiply(xhat, mean_g_xhat, out=dy_xhat)              # reuse the buffer
    dx *= rstd
    return dgamma, dbeta


def layernorm_backward(dy, cache):
    """dy: (..., C) -> dx (..., C), dgamma (C,), dbeta (C,).

    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = gamma * dy;
    dgamma and dbeta are sums over rows, added up block by block.
    """
    xhat, gamma, rstd = cache
    C = gamma.shape[-1]
    dx = np.empty(xhat.shape, xhat.dtype)                          # (..., C)
    dgamma, dbeta = map_rows(partial(_layernorm_backward_rows, gamma=gamma),
                             dy.reshape(-1, C), xhat.reshape(-1, C), rstd.reshape(-1, 1),
                             dx.reshape(-1, C))
    return dx, dgamma, dbeta
