"""Linear: y = x @ W + b (the pair: npfm/functional/linear.py)."""

import numpy as np

from ..core import Module, Parameter, check_array
from ..fast import pair


class Linear(Module):
    """y = x @ W + b with W ~ N(0, std^2) of shape (in_dim, out_dim) and b = 0.

    rng: an ``np.random.Generator`` for the initial weights (None: seed 0).
    """

    def __init__(self, in_dim, out_dim, bias=True, std=0.02, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        self.in_dim, self.out_dim = in_dim, out_dim
        self.W = Parameter((rng.standard_normal((in_dim, out_dim)) * std).astype(dtype))
        self.b = Parameter(np.zeros(out_dim, dtype), decay=False) if bias else None

    def forward(self, x):
        """x: (..., in_dim) -> (..., out_dim)"""
        x = check_array(x, "x", last_dim=self.in_dim, who=f"Linear({self.in_dim}, {self.out_dim})")
        forward, self._backward = pair("linear")
        y, self._cache = forward(x, self.W.data, None if self.b is None else self.b.data)
        return y

    def infer(self, x):
        return pair("linear")[0](x, self.W.data, None if self.b is None else self.b.data)[0]

    def backward(self, dy):
        cache = self._saved()
        dy = self._check_dy(dy, self.out_dim)
        dx, dW, db = self._backward(dy, cache)
        self.W.grad += dW          # accumulate: a Parameter may be shared
        if self.b is not None:
            self.b.grad += db
        return dx
