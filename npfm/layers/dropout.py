"""Inverted dropout.

In training each entry is kept with probability 1 - p and the kept ones are
scaled up by 1 / (1 - p), so the expected output equals the input and
evaluation needs no rescaling:

    mask ~ Bernoulli(1 - p)        y = x * mask / (1 - p)
    dx = dy * mask / (1 - p)       (the same mask: dropout is linear in x)

p = 0, and any Module in eval mode, is the identity.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..core import Module, check_array


def _check_p(p, who):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
        raise ValueError(f"{who}: p must be a probability in [0, 1), got {p!r}")
    return float(p)   # a Python float: a NumPy float64 scalar would promote float32 arrays


def dropout_forward(x, p, rng):
    """y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) drawn from ``rng``.

    x: (...)   p: in [0, 1)   rng: np.random.Generator   ->   y: (...), cache
    p = 0 returns x itself (no copy, no draw from rng).
    """
    p = _check_p(p, "dropout")
    x = check_array(x, "x", min_ndim=0, who="dropout")
    if p == 0.0:
        return x, (None, 1.0)
    keep = rng.random(x.shape, dtype=np.float32) >= p        # (...) bool, P(True) = 1 - p
    scale = 1.0 / (1.0 - p)
    y = x * keep                                              # (...)
    y *= scale
    return y, (keep, scale)


def dropout_backward(dy, cache):
    """dy: (...) -> dx = dy * mask / (1 - p)."""
    keep, scale = cache
    if keep is None:
        return dy
    dx = dy * keep                                            # (...)
    dx *= scale
    return dx


class Dropout(Module):
    """Inverted dropout with probability p; the identity in eval mode.

    rng: the ``np.random.Generator`` the masks are drawn from (None: seed 0).
    A model may point several Dropouts at one shared generator, so that a
    checkpoint can save its state.
    """

    def __init__(self, p, rng=None):
        self.p = _check_p(p, "Dropout")
        self.rng = np.random.default_rng(0) if rng is None else rng

    def forward(self, x):
        if self.p == 0.0 or not self.training:   # the identity (the common case: skip the call)
            self._cache = (None, 1.0)
            return x
        y, self._cache = dropout_forward(x, self.p, self.rng)
        return y

    def backward(self, dy):
        return dropout_backward(dy, self._saved())
