"""GELU, fast: the textbook pair (npfm/functional/activations.py) in place, in row blocks.

The tanh form, written with a sigmoid (one exp instead of a tanh, see
``_gelu_tanh_rows``), runs its passes one block of rows at a time (the block
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


def _gelu_tanh_rows(x, y, s):
    """Fills s = sigmoid(2 u), u = k (x + a x^3), and y = x s for a block of rows.

    x (1 + tanh(u)) / 2 = x sigmoid(2 u) = x / (1 + exp(-2 u)): one exp in
    place of a tanh (NumPy's float32 exp is about twice as fast as its tanh
    here), and no 1 + t that cancels for large negative x. exp overflows to
    inf for x below about -10 (float32), giving s = 0 exactly, as the
    textbook's 1 + t = 0 does.
    """
    np.multiply(x, x, out=s)
    s *= -2.0 * _K * _A
    s += -2.0 * _K
    s *= x                                         # -2 u
    with np.errstate(over="ignore"):               # per thread: exp(-2 u) = inf is s = 0
        np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)                        # s = sigmoid(2 u) = (1 + t) / 2
    np.multiply(x, s, out=y)                       # x (1 + t) / 2


def _gelu_tanh_backward_rows(dy, x, s, dx):
    """Fills dx = dy s (1 + 2 w (1 - s)), w = x k (1 + 3 a x^2), for a block of rows.

    The textbook's (1 + t) / 2 + x (1 - t^2) k (1 + 3 a x^2) / 2 with
    (1 + t) / 2 = s and (1 - t) = 2 (1 - s).
    """
    w = x * x                                      # (n, last)
    w *= 6.0 * _K * _A
    w += 2.0 * _K
    w *= x                                         # 2 w = 2 x k (1 + 3 a x^2)
    np.subtract(1.0, s, out=dx)
    dx *= w
    dx += 1.0                                      # 1 + 2 w (1 - s)
    dx *= s
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
    y, s = np.empty(x.shape, x.dtype), np.empty(x.shape, x.dtype)  # y, and sigmoid(2 u) or Phi
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
