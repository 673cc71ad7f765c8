"""SiLU (the swish), the gate of Llama's SwiGLU feed-forward.

SiLU weights its input by the logistic sigmoid of itself:

    s = sigmoid(x) = 1 / (1 + exp(-x)) = exp(-log(1 + exp(-x)))
    y = silu(x) = x * s

Backward. The sigmoid's derivative is s' = s (1 - s), so by the product rule

    dy/dx = s + x s (1 - s) = s (1 + x (1 - s))
    dx = dy * s * (1 + x (1 - s))

``np.logaddexp(0, -x)`` = log(1 + exp(-x)) never overflows (exp(-x) alone
would for x < -709 in float64, x < -88 in float32), keeps full relative
precision in the tail where s is tiny (the form (1 + tanh(x / 2)) / 2 loses
it to cancellation), and stays in the input's dtype.
"""


import numpy as np


def silu_forward(x):
    """y = x * sigmoid(x), elementwise.

    x: any shape   ->   y: same shape, cache
    """
    s = np.exp(-np.logaddexp(0.0, -x))                         # (...) sigmoid(x)
    return x * s, (x, s)


def silu_backward(dy, cache):
    """dx = dy * s * (1 + x (1 - s)), with s = sigmoid(x)."""
    x, s = cache
    return dy * s * (1.0 + x * (1.0 - s))                      # (...)
