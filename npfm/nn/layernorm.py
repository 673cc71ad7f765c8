"""LayerNorm over the last axis (the pair: npfm/functional/layernorm.py)."""

import numpy as np

from ..core import Module, Parameter, check_array
from ..fast import pair


class LayerNorm(Module):
    """Normalise each position over its dim channels, then scale by gamma
    (ones) and shift by beta (zeros); neither is weight-decayed."""

    def __init__(self, dim, eps=1e-5, dtype=np.float32):
        self.gamma = Parameter(np.ones(dim, dtype), decay=False)
        self.beta = Parameter(np.zeros(dim, dtype), decay=False)
        self.eps = eps

    def forward(self, x):
        """x: (..., dim) -> (..., dim)"""
        x = check_array(x, "x", last_dim=self.gamma.shape[0], who="LayerNorm")
        forward, self._backward = pair("layernorm")
        y, self._cache = forward(x, self.gamma.data, self.beta.data, self.eps)
        return y

    def infer(self, x):
        return pair("layernorm")[0](x, self.gamma.data, self.beta.data, self.eps)[0]

    def backward(self, dy):
        cache = self._saved()
        dy = self._check_dy(dy, self.gamma.shape[0])
        dx, dgamma, dbeta = self._backward(dy, cache)
        self.gamma.grad += dgamma   # accumulate: a Parameter may be shared
        self.beta.grad += dbeta
        return dx
