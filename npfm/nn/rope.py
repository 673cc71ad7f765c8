"""Rotary position embedding, RoPE (Su et al., 2021), in Llama's half-split layout: the Module (the pair: npfm/functional/rope.py)."""

import math

import numpy as np

from ..core import Module, check_array
from ..fast import pair


class RoPE(Module):
    """Rotary embedding of (..., T, head_dim) queries or keys; no Parameters.

    forward(x, offset=0): row t of x sits at position offset + t.
    """

    def __init__(self, head_dim, base=10000.0):
        if isinstance(head_dim, bool) or not isinstance(head_dim, (int, np.integer)) \
                or head_dim < 2 or head_dim % 2:
            raise ValueError(f"RoPE: head_dim must be a positive even integer, got {head_dim!r}")
        if not (isinstance(base, (int, float)) and math.isfinite(base) and base > 0):
            raise ValueError(f"RoPE: base must be a finite number > 0, got {base!r}")
        self.head_dim, self.base = int(head_dim), float(base)

    def forward(self, x, offset=0):
        """x: (..., T, head_dim) -> (..., T, head_dim)"""
        x = check_array(x, "x", min_ndim=2, last_dim=self.head_dim, who=f"RoPE({self.head_dim})")
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
            raise ValueError(f"RoPE: offset must be an integer >= 0, got {offset!r}")
        forward, self._backward = pair("rope")
        y, self._cache = forward(x, int(offset), self.base)
        return y

    def backward(self, dy):
        cache = self._saved()
        return self._backward(dy, cache)
