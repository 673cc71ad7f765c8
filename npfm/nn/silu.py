"""SiLU (the swish), the gate of Llama's SwiGLU feed-forward: the Module (the pair: npfm/functional/silu.py)."""



from ..core import Module, check_array
from ..fast import pair


class SiLU(Module):
    """y = x * sigmoid(x); no Parameters."""

    def forward(self, x):
        x = check_array(x, "x", who="SiLU")
        forward, self._backward = pair("silu")
        y, self._cache = forward(x)
        return y

    def backward(self, dy):
        cache = self._saved()
        return self._backward(dy, cache)
