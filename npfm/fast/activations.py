"""GELU, fast: the textbook pair (npfm/functional/activations.py) in place, in row blocks.

The tanh form's eight passes run one block of rows at a time (the block
stays in the core's cache between passes) and on every core
(``npfm.fast.threads.map_rows``); the exact form's erf is the textbook's
(npfm/functional/erf.py), applied block by block.
"""

import math

import numpy as np

from ..functional.activations import A as _A
from ..functional.activations import K as _K
from ..functional.erf import erfc
from .threads import map_rows

def _as_rows(*arrays):
    """Elementwise work sees any shape as rows: (...) -> (N, last), 0-d -> (1, 1)."""
    return [a.reshape(-1, a.shape[-1] if a.ndim else 1) for a in arrays]


def _gelu_tanh_rows(x, y, t):
    """Fills t = tanh(k (x + a x^3)) and y = x (1 + t) / 2 for a block of rows."""
    np.multiply(x, x, out=t)
    t *= _K * _A
    t += _K
    t *= x                                         # k (x + a x^3)
    np.tanh(t, out=t)                              # t
    np.add(t, 1.0, out=y)
    y *= x
    y *= 0.5                                       # x (1 + t) / 2


def _gelu_tanh_backward_rows(dy, x, t, dx):
    """Fills dx = dy (1 + t) (1 + u (1 - t)) / 2, u = x k (1 + 3 a x^2), for a block of rows."""
    u = x * x                                      # (n, last)
    u *= 3.0 * _K * _A
    u += _K
    u *= x                                         # u = x k (1 + 3 a x^2)
    np.subtract(1.0, t, out=dx)
    dx *= u
    dx += 1.0                                      # 1 + u (1 - t)
    dx *= np.add(t, 1.0, out=u)                    # (1 + t) (1 + u (1 - t))
    dx *= 0.5
    dx *= dy


def _gelu_exact_rows(x, y, Phi):
    """Fills Phi = erfc(-x / sqrt 2) / 2 and y = x Phi for a block of rows."""
    np.multiply(erfc(x * (-1.0 / math.sqrt(2.0))), 0.5, out=Phi)
    np.multiply(x, Phi, out=y)


def _gelu_exact_backward_rows(dy, x, Phi, dx):
    """Fills dx = dy (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    np.multiply(x, x, out=dx)
    dx *= -0.5
    np.exp(dx, out=dx)
    dx *= 1.0 / math.sqrt(2.0 * math.pi)           # phi(x)
    dx *= x
    dx += Phi                                      # Phi(x) + x phi(x)
    dx *= dy


def gelu_forward(x, approximate="tanh"):
    """y = x * Phi(x), exactly ("none") or with the tanh approximation ("tanh").

    x: (...)   ->   y: (...), cache

    Elementwise, so ``map_rows`` runs blocks of rows on every core.
    """
    y, s = np.empty(x.shape, x.dtype), np.empty(x.shape, x.dtype)  # y, and t or Phi
    kernel = _gelu_tanh_rows if approximate == "tanh" else _gelu_exact_rows
    map_rows(kernel, *_as_rows(x, y, s))
    return y, (approximate, x, s)


def gelu_backward(dy, cache):
    """dy: (...) -> dx: (...), dx = dy * gelu'(x)."""
    approximate, x, s = cache
    dx = np.empty(x.shape, x.dtype)                # (...)
    kernel = _gelu_tanh_backward_rows if approximate == "tanh" else _gelu_exact_backward_rows
    map_rows(kernel, *_as_rows(dy, x, s, dx))
    return dx
