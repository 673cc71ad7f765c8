"""Inverted dropout as a Module (the pair: npfm/functional/dropout.py)."""

import numbers

import numpy as np

from ..core import Module, check_array
from ..fast import pair


def check_p(p, who):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
        raise ValueError(f"{who}: p must be a probability in [0, 1), got {p!r}")
    return float(p)   # a Python float: a NumPy float64 scalar would promote float32 arrays


class Dropout(Module):
    """Inverted dropout with probability p; the identity in eval mode.

    rng: the ``np.random.Generator`` the masks are drawn from (None: seed 0).
    A model may point several Dropouts at one shared generator, so that a
    checkpoint can save its state.
    """

    def __init__(self, p, rng=None):
        self.p = check_p(p, "Dropout")
        self.rng = np.random.default_rng(0) if rng is None else rng

    def forward(self, x):
        if self.p == 0.0 or not self.training:   # the identity (the common case: skip the call)
            self._cache, self._backward = "identity", None
            return x
        x = check_array(x, "x", min_ndim=0, who="Dropout")
        forward, self._backward = pair("dropout")
        y, self._cache = forward(x, self.p, self.rng)
        return y

    def backward(self, dy):
        cache = self._saved()
        return dy if self._backward is None else self._backward(dy, cache)
