"""The one sampler: the next token of each row of logits, for GPT and the
text-to-image model alike.

    temperature 0      argmax (greedy)
    otherwise          softmax(logits / temperature), restricted to the top_k
                       largest entries (the rest set to -inf, so they get
                       probability exactly 0) and to the smallest set whose
                       probability reaches top_p (nucleus sampling)

The softmax is the textbook floor's (npfm.functional.softmax), not a copy of
it: a student copy whose softmax is an assignment samples with the student's.

Vectorised over rows by inverse-CDF sampling: with u ~ U(0, total), the id
is the number of entries whose cumulative probability is below u.
"""

import math
import numbers

import numpy as np

from ..functional.softmax import softmax_forward


def check_sampling(temperature=1.0, top_k=None, top_p=None):
    """A clear error for a temperature, top_k or top_p that means nothing."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real)
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def sample_from_logits(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """One id per row of logits (B, K) -> ids (B,) int64."""
    check_sampling(temperature, top_k, top_p)
    z = np.asarray(logits, dtype=np.float64)                            # (B, K)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"sample_from_logits: logits must be (B, K) with K >= 1, got {z.shape}")
    if not np.isfinite(z.max(axis=1)).all():                            # max is NaN if any entry is
        raise ValueError("sample_from_logits: the logits contain NaN, +inf, or a row with no "
                         "finite entry: the model's weights are probably damaged")
    if temperature == 0:
        return z.argmax(axis=1)
    z = z / temperature
    if top_k is not None and top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k]                # (B,)
        z = np.where(z < kth[:, None], -np.inf, z)
    p, _ = softmax_forward(z)                                           # (B, K)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=1, kind="stable")                   # (B, K) most likely first
        sorted_p = np.take_along_axis(p, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p                 # mass strictly before each
        keep_sorted = before < top_p                                    # the nucleus (>= 1 entry)
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=1)
        p = np.where(keep, p, 0.0)
    cdf = np.cumsum(p, axis=1)                                          # (B, K)
    u = rng.random((z.shape[0], 1)) * cdf[:, -1:]                       # (B, 1)
    return np.minimum((cdf < u).sum(axis=1), z.shape[1] - 1)            # (B,)


def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """The next token id (int) from one row of logits (V,)."""
    return int(sample_from_logits(np.asarray(logits)[None], rng, temperature, top_k, top_p)[0])
