"""Embedding: y = W[ids] (the pair: npfm/functional/embedding.py)."""

import numpy as np

from ..core import Module, Parameter, check_ids
from ..fast import pair


class Embedding(Module):
    """A (num_embeddings, dim) table W ~ N(0, std^2); forward(ids) -> W[ids].

    backward(dy) adds into W.grad and returns None: ids have no gradient.
    """

    def __init__(self, num_embeddings, dim, std=0.02, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        self.num_embeddings, self.dim = num_embeddings, dim
        self.W = Parameter((rng.standard_normal((num_embeddings, dim)) * std).astype(dtype),
                           decay=False)

    def forward(self, ids):
        """ids: (...) integers -> (..., dim)"""
        ids = check_ids(ids, self.num_embeddings, who=f"Embedding({self.num_embeddings}, {self.dim})")
        forward, self._backward = pair("embedding")
        y, self._cache = forward(ids, self.W.data)
        self._out_shape = y.shape
        return y

    def infer(self, ids):
        return pair("embedding")[0](ids, self.W.data)[0]

    def backward(self, dy):
        cache = self._saved()
        dy = self._check_dy(dy, self.dim, shape=self._out_shape)
        self.W.grad += self._backward(dy, cache)
        return None
