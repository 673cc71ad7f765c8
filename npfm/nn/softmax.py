"""Softmax over the last axis as a Module (the pair: npfm/functional/softmax.py)."""

from ..core import Module, check_array
from ..fast import pair


class Softmax(Module):
    """Softmax over the last axis; no Parameters."""

    def forward(self, x):
        x = check_array(x, "x", who="softmax")
        forward, self._backward = pair("softmax")
        y, self._cache = forward(x)
        self._out_shape = y.shape
        return y

    def backward(self, dy):
        cache = self._saved()
        return self._backward(self._check_dy(dy, shape=self._out_shape), cache)
