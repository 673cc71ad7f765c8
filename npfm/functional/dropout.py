"""Inverted dropout.

In training each entry is kept with probability 1 - p and the kept ones are
scaled up by 1 / (1 - p), so the expected output equals the input and
evaluation needs no rescaling:

    mask ~ Bernoulli(1 - p)        y = x * mask / (1 - p)
    dx = dy * mask / (1 - p)       (the same mask: dropout is linear in x)

p = 0 is the identity.
"""

import numpy as np


def dropout_forward(x, p, rng):
    """y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) drawn from ``rng``.

    x: (...)   p: in [0, 1)   rng: np.random.Generator   ->   y: (...), cache
    p = 0 returns x itself (no copy, no draw from rng).
    """
    if p == 0:
        return x, (None, 1.0)
    keep = rng.random(x.shape, dtype=np.float32) >= p        # (...) bool, P(True) = 1 - p
    scale = 1.0 / (1.0 - float(p))
    return x * keep * scale, (keep, scale)


def dropout_backward(dy, cache):
    """dy: (...) -> dx = dy * mask / (1 - p)."""
    keep, scale = cache
    if keep is None:
        return dy
    return dy * keep * scale
