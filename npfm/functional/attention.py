"""Scaled dot-product attention, one head or many, any leading axes.

Forward:

    S = q @ k^T / sqrt(D)              scores                       (..., Tq, Tk)
    S = -inf where not mask            True = may attend
    P = softmax(S)  over Tk            a row with no allowed key gives P = 0
    y = P @ v                                                       (..., Tq, D)

Backward, reversing each line:

    dv = P^T @ dy                      (..., Tk, D)
    dP = dy @ v^T                      (..., Tq, Tk)
    dS = P * (dP - sum(dP * P, -1))    the softmax backward; zero where masked (P = 0)
    dq = dS @ k / sqrt(D)              dk = dS^T @ q / sqrt(D)

Grouped-query attention: k and v may have fewer heads than q, H_kv dividing
H (shape (..., H_kv, Tk, D) against q's (..., H, Tq, D)). Each KV head then
serves H / H_kv consecutive query heads, and its gradient is the sum over
its group.
"""

import math

import numpy as np

from .softmax import softmax_backward, softmax_forward


def causal_mask(Tq, Tk=None):
    """(Tq, Tk) boolean: query i may attend key j when j <= i + (Tk - Tq).

    With Tk > Tq the queries are the *last* Tq positions of the sequence
    (incremental decoding with a KV cache).
    """
    Tk = Tq if Tk is None else Tk
    return np.tri(Tq, Tk, k=Tk - Tq, dtype=bool)


def repeat_kv(k, n_rep):
    """(..., H_kv, T, D) -> (..., H_kv * n_rep, T, D): each KV head repeated for its group."""
    return k if n_rep == 1 else np.repeat(k, n_rep, axis=-3)


def sum_kv_groups(dk, n_rep):
    """(..., H, T, D) -> (..., H / n_rep, T, D): the gradient of repeat_kv sums each group."""
    if n_rep == 1:
        return dk
    *lead, H, T, D = dk.shape
    return dk.reshape(*lead, H // n_rep, n_rep, T, D).sum(axis=-3)


def attention_forward(q, k, v, mask=None):
    """y = softmax(q k^T / sqrt(D), masked) v.

    q: (..., Tq, D)   k, v: (..., Tk, D)   mask: bool, broadcastable to
    (..., Tq, Tk), True = may attend.   ->   y: (..., Tq, D), cache
    """
    n_rep = q.shape[-3] // k.shape[-3] if q.ndim >= 3 else 1       # grouped-query heads
    k_all, v_all = repeat_kv(k, n_rep), repeat_kv(v, n_rep)        # (..., H, Tk, D)
    scale = 1.0 / math.sqrt(q.shape[-1])
    S = (q @ k_all.swapaxes(-1, -2)) * scale                       # (..., Tq, Tk)
    if mask is not None:
        S = np.where(mask, S, -np.inf)
    P, softmax_cache = softmax_forward(S)                          # (..., Tq, Tk)
    y = P @ v_all                                                  # (..., Tq, D)
    return y, (q, k_all, v_all, P, softmax_cache, scale, n_rep)


def attention_backward(dy, cache):
    """dy: (..., Tq, D) -> (dq, dk, dv) shaped like q, k, v."""
    q, k_all, v_all, P, softmax_cache, scale, n_rep = cache
    dv = P.swapaxes(-1, -2) @ dy                                   # (..., Tk, D)
    dP = dy @ v_all.swapaxes(-1, -2)                               # (..., Tq, Tk)
    dS = softmax_backward(dP, softmax_cache)                       # (..., Tq, Tk)
    dq = (dS @ k_all) * scale                                      # (..., Tq, D)
    dk = (dS.swapaxes(-1, -2) @ q) * scale                         # (..., Tk, D)
    return dq, sum_kv_groups(dk, n_rep), sum_kv_groups(dv, n_rep)


def attention_weights(q, k, mask=None):
    """P = softmax(q k^T / sqrt(D), masked): how much each query attends each key.

    The forward's P, recomputed: the public way to look at attention (a
    picture of it, say) without reading the pair's cache.
    q: (..., Tq, D)   k: (..., Tk, D)   ->   P: (..., Tq, Tk)
    """
    n_rep = q.shape[-3] // k.shape[-3] if q.ndim >= 3 else 1
    S = (q @ repeat_kv(k, n_rep).swapaxes(-1, -2)) / math.sqrt(q.shape[-1])   # (..., Tq, Tk)
    if mask is not None:
        S = np.where(mask, S, -np.inf)
    return softmax_forward(S)[0]
