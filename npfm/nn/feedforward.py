"""The position-wise feed-forward network of a transformer block.

    h = act(x @ W1 + b1)        (..., F)     act = GELU (tanh or exact) or ReLU
    y = h @ W2 + b2             (..., C)

Backward reverses it: dh = dy @ W2^T, then through the activation, then dx = dpre @ W1^T.
"""

import numpy as np

from ..core import Module
from .activations import GELU, ReLU
from .linear import Linear

ACTIVATIONS = {"gelu": lambda: GELU("tanh"), "gelu_exact": lambda: GELU("none"), "relu": ReLU}


class FeedForward(Module):
    """Linear(C, F) -> activation -> Linear(F, C).

    activation: "gelu" (tanh approximation, GPT-2), "gelu_exact" (erf, BERT) or "relu".
    """

    def __init__(self, dim, hidden, activation="gelu", std=0.02, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        if activation not in ACTIVATIONS:
            raise ValueError(f"FeedForward: activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.fc1 = Linear(dim, hidden, std=std, rng=rng, dtype=dtype)
        self.act = ACTIVATIONS[activation]()
        self.fc2 = Linear(hidden, dim, std=std, rng=rng, dtype=dtype)

    def forward(self, x):
        """x: (..., C) -> (..., C)"""
        return self.fc2(self.act(self.fc1(x)))

    def infer(self, x):
        return self.fc2.infer(self.act.infer(self.fc1.infer(x)))

    def backward(self, dy):
        return self.fc1.backward(self.act.backward(self.fc2.backward(dy)))
