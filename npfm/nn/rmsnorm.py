"""Root-mean-square normalisation (Zhang and Sennrich, 2019), Llama's LayerNorm: the Module (the pair: npfm/functional/rmsnorm.py)."""


import numpy as np

from ..core import Module, Parameter, check_array
from ..fast import pair


class RMSNorm(Module):
    """y = gamma * x / rms(x) over the last axis; gamma starts at 1."""

    def __init__(self, dim, eps=1e-6, dtype=np.float32):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"RMSNorm: dim must be a positive integer, got {dim!r}")
        if not eps >= 0:
            raise ValueError(f"RMSNorm: eps must be >= 0, got {eps!r}")
        self.dim, self.eps = int(dim), float(eps)
        self.gamma = Parameter(np.ones(dim, dtype), decay=False)

    def forward(self, x):
        """x: (..., dim) -> (..., dim)"""
        x = check_array(x, "x", last_dim=self.dim, who=f"RMSNorm({self.dim})")
        forward, self._backward = pair("rmsnorm")
        y, self._cache = forward(x, self.gamma.data, self.eps)
        return y

    def infer(self, x):
        return pair("rmsnorm")[0](x, self.gamma.data, self.eps)[0]

    def backward(self, dy):
        cache = self._saved()
        dx, dgamma = self._backward(dy, cache)
        self.gamma.grad += dgamma   # accumulate: a Parameter may be shared
        return dx
