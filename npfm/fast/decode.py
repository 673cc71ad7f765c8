"""Attention of one new position against a KV cache, fast: the textbook
attention (npfm/functional/attention.py) for Tq = 1 and no mask.

Generation feeds one token at a time; its query attends every cached key and
nothing is kept for a backward. The work is a few vector-matrix products per
head, so the cost is the number of NumPy calls, not arithmetic. Here:

    S = (q / sqrt(D)) @ k^T            the keys read in place from the
                                       cache's transposed buffer   (B, H_kv, R, Tk)
    E = exp(S - max(S))                in place                    (B, H_kv, R, Tk)
    y = (E @ v) / sum(E)               divide the output (D entries a row)
                                       instead of E (Tk entries)   (B, H_kv, R, D)

Grouped-query heads need no copy of the keys: the R = H / H_kv query heads
that share a key/value head are R rows of one product against it (q reshaped
(B, H, 1, D) -> (B, H_kv, R, D)). A row always has at least one key (the new
position's own), so the sum is >= 1 and no row is masked.
"""

import math

import numpy as np


def attention_decode(q, k, v):
    """y = softmax(q k^T / sqrt(D)) v for one query position per head.

    q: (B, H, 1, D)   k, v: (B, H_kv, Tk, D), H_kv dividing H   ->   y: (B, H, 1, D)

    Equal to ``attention_forward(q, k, v)[0]`` up to rounding (tested); no cache.
    """
    B, H, _, D = q.shape
    H_kv = k.shape[1]
    qg = q.reshape(B, H_kv, H // H_kv, D) * (1.0 / math.sqrt(D))  # (B, H_kv, R, D)
    s = qg @ k.swapaxes(-1, -2)                                    # (B, H_kv, R, Tk)
    # the ufuncs' reduce, not s.max() / s.sum(): the same C loop without a Python wrapper
    s -= np.maximum.reduce(s, axis=-1, keepdims=True)
    np.exp(s, out=s)
    y = s @ v                                                      # (B, H_kv, R, D)
    y /= np.add.reduce(s, axis=-1, keepdims=True)
    return y.reshape(B, H, 1, D)                                   # (B, H, 1, D)
