"""Activation functions: GELU (tanh approximation and exact), ReLU, tanh.

GELU weights its input by the probability that a standard normal is below it:

    gelu(x) = x * Phi(x),   Phi(x) = (1 + erf(x / sqrt(2))) / 2 = erfc(-x / sqrt(2)) / 2
    gelu'(x) = Phi(x) + x * phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

BERT uses it exactly ("none"). GPT-2 uses the tanh approximation ("tanh"),
with k = sqrt(2 / pi) and a = 0.044715:

    t = tanh(k (x + a x^3)),   y = x (1 + t) / 2
    y' = (1 + t) / 2 + x (1 - t^2) k (1 + 3 a x^2) / 2

ReLU: y = max(x, 0), y' = 1 where x > 0 else 0 (0 at x = 0, as PyTorch).
tanh: y' = 1 - y^2.
"""

import math

import numpy as np

from .erf import erfc

K = math.sqrt(2.0 / math.pi)         # tanh GELU constants
A = 0.044715


def gelu_forward(x, approximate="tanh"):
    """y = x * Phi(x), exactly ("none") or with the tanh approximation ("tanh").

    x: (...)   ->   y: (...), cache
    """
    if approximate == "tanh":
        t = np.tanh(K * (x + A * x * x * x))                # (...)
        return x * (1.0 + t) / 2, (approximate, x, t)
    Phi = erfc(-x / math.sqrt(2.0)) / 2                     # (...)
    return x * Phi, (approximate, x, Phi)


def gelu_backward(dy, cache):
    """dy: (...) -> dx = dy * gelu'(x)."""
    approximate, x, s = cache
    if approximate == "tanh":
        t = s
        dtanh = (1.0 - t * t) * K * (1.0 + 3 * A * x * x)   # d t / d x
        return dy * ((1.0 + t) / 2 + x * dtanh / 2)
    Phi = s
    phi = np.exp(-x * x / 2) / math.sqrt(2.0 * math.pi)     # (...)
    return dy * (Phi + x * phi)


def relu_forward(x):
    """y = max(x, 0).   x: (...)   ->   y: (...), cache"""
    y = np.maximum(x, 0.0)                                  # (...)
    return y, y > 0


def relu_backward(dy, cache):
    """dy: (...) -> dx = dy where x > 0, else 0."""
    positive = cache
    return dy * positive


def tanh_forward(x):
    """y = tanh(x), elementwise (BERT's pooler).   x: (...) -> y: (...), cache"""
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, cache):
    """dx = dy * (1 - y^2), since d tanh(x) / dx = 1 - tanh(x)^2."""
    y = cache
    return dy * (1.0 - y * y)
