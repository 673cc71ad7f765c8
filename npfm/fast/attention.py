"""Attention, fast: the textbook pair (npfm/functional/attention.py), the math unchanged.

Every pass over the (Tq, Tk) arrays costs most, so: q is scaled instead of
the scores; the mask is added as 0 / -inf; the softmax runs in place and
skips its usual max-subtraction when no score can overflow
(``_softmax_unshifted_inplace``, which falls back to the shifted form on any
risk); the backward gets dP - r from one matrix product with an extra column
([dy, -r] @ [v, 1]^T, with r_i = dy_i . y_i); and blocks of sequences run on
every core (``npfm.fast.threads.map_rows``). ``attention_backward`` may fill
arrays it is given (``out=``), so that MultiHeadAttention's dq, dk, dv land
in the columns of one buffer.
"""

import math
from functools import partial

import numpy as np

from ..functional.attention import repeat_kv, sum_kv_groups
from .threads import map_rows

def attention_forward(q, k, v, mask=None):
    """y = softmax(q k^T / sqrt(D), masked) v.

    q: (..., Tq, D)   k, v: (..., Tk, D)   mask: bool, broadcastable to
    (..., Tq, Tk), True = may attend.   ->   y: (..., Tq, D), cache

    Each sequence (each index of the leading axes) attends alone, so
    ``map_rows`` runs blocks of them on every core.
    """
    n_rep = q.shape[-3] // k.shape[-3] if q.ndim >= 3 else 1       # grouped-query heads
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)                # (..., H, Tk, D)
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores_shape = q.shape[:-1] + (k.shape[-2],)                   # (..., Tq, Tk)
    bias = None
    if mask is not None:
        # additive form of the mask: 0 where allowed, -inf where not; one
        # broadcast add instead of a masked copy over the scores
        bias = np.where(mask, q.dtype.type(0), q.dtype.type(-np.inf))
    y = np.empty_like(q)            # (..., Tq, D), laid out in memory like q (see _merge)
    P = np.empty(scores_shape, q.dtype)                            # (..., Tq, Tk)
    rows = [q, k, v, y, P]
    if bias is not None:
        rows.append(np.broadcast_to(bias, scores_shape))           # (..., Tq, Tk) view
    if q.ndim == 2:                                                # one sequence
        _attention_rows(*rows, scale=scale)
    else:
        map_rows(partial(_attention_rows, scale=scale), *rows)     # blocks of sequences
    return y, (q, k, v, P, y, scale, n_rep)


def _attention_rows(q, k, v, y, P, bias=None, *, scale):
    """The forward for a block of sequences; fills y (..., Tq, D) and P (..., Tq, Tk)."""
    # scaling q (Tq x D) is cheaper than scaling the scores (Tq x Tk); BLAS
    # runs a stack of products at full speed when rows of k^T are contiguous
    kT = _unit_stride_rows(k.swapaxes(-1, -2))                     # (..., D, Tk)
    q = q * scale                                                  # (..., Tq, D)
    scores = np.matmul(q, kT, out=P)                               # (..., Tq, Tk)
    if bias is not None:
        scores += bias
    if not _softmax_unshifted_inplace(scores):                     # P = softmax(scores)
        scores = np.matmul(q, kT, out=P)                           # exp would over/underflow:
        if bias is not None:                                       # start again, the usual way
            scores += bias
        _masked_softmax_inplace(scores)
    np.matmul(P, v, out=y)                                         # (..., Tq, D)


def _unit_stride_rows(a):
    """a itself if its last axis has unit stride (a KV cache keeps k^T so), else a copy."""
    return a if a.strides[-1] == a.itemsize else np.ascontiguousarray(a)


_NO_OVERFLOW = 60.0    # exp(60) = 1e26: a sum of a million of them still fits in float32
_NO_UNDERFLOW = 1e-20  # a row whose exps sum to less has lost its small entries


def _softmax_unshifted_inplace(scores):
    """Softmax over the last axis, in place, without subtracting the row max;
    False (scores left unusable) where that is not safe.

    softmax(s) = exp(s - c) / sum(exp(s - c)) for any c of the row. The usual
    c = max(s) keeps exp from overflowing, at the price of a row-max pass and
    a subtraction over the whole (Tq, Tk) array. When no score exceeds 60
    (checked in one cheap pass), c = 0 is safe from overflow; a row so
    negative that its exps underflow (or one with no allowed key) shows up
    as a tiny sum, and then the caller starts again with c = max(s).
    """
    if not scores.max(initial=-np.inf) <= _NO_OVERFLOW:            # also False for NaN
        return False
    np.exp(scores, out=scores)
    row_sum = np.einsum("...j->...", scores)[..., None]            # (..., Tq, 1) (einsum: faster)
    if row_sum.size and not row_sum.min() >= _NO_UNDERFLOW:
        return False
    scores /= row_sum                                              # (a row of one key gives 1 exactly)
    return True


def _masked_softmax_inplace(scores):
    """Softmax over the last axis, in place; rows that are all -inf become 0."""
    row_max = np.fmax.reduce(scores, axis=-1, keepdims=True)       # (..., Tq, 1)
    # a fully masked row has max -inf: shift it by a finite number instead,
    # so that exp gives zeros rather than NaN from -inf - (-inf)
    np.fmax(row_max, np.finfo(scores.dtype).min, out=row_max)
    scores -= row_max
    np.exp(scores, out=scores)
    row_sum = np.einsum("...j->...", scores)[..., None]            # (..., Tq, 1) (einsum: faster)
    # a row's largest entry is exp(0) = 1, so row_sum >= 1, except on fully
    # masked rows, where it is 0: dividing those by 1 leaves zeros, never NaN
    scores *= 1.0 / np.maximum(row_sum, 1.0)
    return scores


def attention_backward(dy, cache, out=None):
    """dy: (..., Tq, D) -> (dq, dk, dv) shaped like q, k, v (and their key/value heads).

    out: optional arrays (dq, dk, dv) to fill, e.g. views into one buffer.
    """
    q, k, v, P, y, scale, n_rep = cache
    if n_rep > 1:                                                  # grouped-query heads
        dq, dk, dv = attention_backward(dy, (q, k, v, P, y, scale, 1))
        dk, dv = sum_kv_groups(dk, n_rep), sum_kv_groups(dv, n_rep)
        if out is None:
            return dq, dk, dv
        for target, grad in zip(out, (dq, dk, dv)):
            target[...] = grad
        return tuple(out)
    if out is None:
        # each gradient is laid out in memory like its input (MultiHeadAttention's
        # heads are views of (B, T, C) arrays: merging the heads back is then free)
        out = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    dq, dk, dv = out
    rows = (dy, q, k, v, P, y, dq, dk, dv)
    if q.ndim == 2:
        _attention_backward_rows(*rows, scale=scale)
    else:
        map_rows(partial(_attention_backward_rows, scale=scale), *rows)
    return dq, dk, dv


def _attention_backward_rows(dy, q, k, v, P, y, dq, dk, dv, *, scale):
    """Fills dq, dk, dv for a block of sequences."""
    np.matmul(P.swapaxes(-1, -2), dy, out=dv)                      # (..., Tk, D)
    # softmax backward: dS = P * (dP - r) with dP = dy @ v^T and
    # r_i = sum_j dP_ij P_ij = sum_j (dy_i . v_j) P_ij = dy_i . y_i.
    # dP - r comes out of one matrix product with one more column:
    # [dy, -r] @ [v, 1]^T = dy @ v^T - r 1^T  (no pass over (Tq, Tk) to subtract r)
    D = dy.shape[-1]
    dy_r = np.empty(dy.shape[:-1] + (D + 1,), dy.dtype)            # (..., Tq, D + 1)
    dy_r[..., :D] = dy
    # -r into the last column. Not np.negative(col, out=col): in place on a
    # strided view (this column) NumPy 2.4.6 writes wrong values for float32
    dy_r[..., D] = -np.einsum("...d,...d->...", dy, y)             # (..., Tq) -r
    vT_1 = np.empty(v.shape[:-2] + (D + 1, v.shape[-2]), v.dtype)  # (..., D + 1, Tk)
    vT_1[..., :D, :] = v.swapaxes(-1, -2)
    vT_1[..., D, :] = 1.0
    dS = np.matmul(dy_r, vT_1)                                     # (..., Tq, Tk) dP - r
    dS *= P
    np.matmul(dS, k, out=dq)                                       # (..., Tq, D)
    dq *= scale
    np.matmul(dS.swapaxes(-1, -2), q, out=dk)                      # (..., Tk, D)
    dk *= scale
