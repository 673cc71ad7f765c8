"""Activation Modules: GELU, ReLU, Tanh (the pairs: npfm/functional/activations.py)."""

from ..core import Module, check_array
from ..fast import pair


class _Elementwise(Module):
    """An activation with no Parameters: check x, run the pair, keep its cache."""

    name = None

    def _run(self, x, *args):
        x = check_array(x, "x", min_ndim=0, who=type(self).__name__)
        forward, self._backward = pair(self.name)
        y, self._cache = forward(x, *args)
        self._out_shape = y.shape
        return y

    def backward(self, dy):
        cache = self._saved()
        dy = self._check_dy(dy, shape=self._out_shape)
        return self._backward(dy, cache)


class GELU(_Elementwise):
    """x * Phi(x); approximate="tanh" (GPT-2) or "none" (exact, BERT)."""

    name = "gelu"

    def __init__(self, approximate="tanh"):
        if approximate not in ("tanh", "none"):
            raise ValueError(f"GELU: approximate must be 'tanh' or 'none', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return self._run(x, self.approximate)

    def infer(self, x):
        return pair("gelu")[0](x, self.approximate)[0]


class ReLU(_Elementwise):
    """max(x, 0)."""

    name = "relu"

    def forward(self, x):
        return self._run(x)


class Tanh(_Elementwise):
    """The tanh activation; no Parameters."""

    name = "tanh"

    def forward(self, x):
        return self._run(x)
