"""Attention, fast: the textbook pair (npfm/functional/attention.py), the math unchanged.

Every pass over the (Tq, Tk) arrays costs most, so: q is scaled instead of
the scores; the mask is added as 0 / -inf; the softmax runs in place and
skips its usual max-subtraction when no score can overflow
(``_softmax_unshifted_inplace``, which falls back to the shifted form on any
risk); the backward gets dP - r from one matrix product with an extra column
([dy, -r] @ [v, 1]^T, with r_i = dy_i . y_i); and blocks of sequences run on
every core (``npfm.fast.threads.map_rows``). Under a causal mask (exactly
``causal_mask(T)``) the queries run in chunks of ``CAUSAL_CHUNK``, each
against only the keys it may see: the scores, exps and products above the
diagonal's chunks are skipped (about 1/4 of the work at T = 128, 3/8 at
T = 256), and each chunk's P is its own contiguous array. ``attention_backward`` may fill
arrays it is given (``out=``), so that MultiHeadAttention's dq, dk, dv land
in the columns of one buffer.
"""

import math
from functools import partial

import numpy as np

from ..functional.attention import causal_mask, repeat_kv, sum_kv_groups
from .decode import attention_decode  # noqa: F401  one position against a KV cache: fast_kernel("attention", "decode")
from .threads import map_rows

CAUSAL_CHUNK = 64      # queries per chunk under a causal mask (tests make it small)


def _causal_chunks(mask, Tq, Tk):
    """((start, end), ...) query chunks when mask is exactly causal_mask(T), Tq = Tk = T
    and T spans more than one chunk; None otherwise (the whole (Tq, Tk) at once).

    Chunk [s, e) may attend keys [0, e) only: for c chunks of a causal T x T,
    (c + 1) / (2 c) of the scores are computed.
    """
    if (mask is None or mask.ndim != 2 or mask.dtype != bool or mask.shape != (Tq, Tk)
            or Tq != Tk or Tq <= CAUSAL_CHUNK or not np.array_equal(mask, causal_mask(Tq))):
        return None
    return tuple((s, min(s + CAUSAL_CHUNK, Tq)) for s in range(0, Tq, CAUSAL_CHUNK))

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
    chunks = _causal_chunks(mask, q.shape[-2], k.shape[-2])
    y = np.empty_like(q)            # (..., Tq, D), laid out in memory like q (see _merge)
    if chunks is not None:
        return _causal_attention_forward(q, k, v, y, bias, scale, n_rep, chunks)
    P = np.empty(scores_shape, q.dtype)                            # (..., Tq, Tk)
    rows = [q, k, v, y, P]
    if bias is not None:
        rows.append(np.broadcast_to(bias, scores_shape))           # (..., Tq, Tk) view
    if q.ndim == 2:                                                # one sequence
        _attention_rows(*rows, scale=scale)
    else:
        map_rows(partial(_attention_rows, scale=scale), *rows)     # blocks of sequences
    return y, (q, k, v, P, y, scale, n_rep, None)


def _attention_rows(q, k, v, y, P, bias=None, *, scale):
    """The forward for a block of sequences; fills y (..., Tq, D) and P (..., Tq, Tk)."""
    # scaling q (Tq x D) is cheaper than scaling the scores (Tq x Tk); BLAS
    # runs a stack of products at full speed when rows of k^T are contiguous
    kT = _unit_stride_rows(k.swapaxes(-1, -2))                     # (..., D, Tk)
    _scores_softmax_values(q * scale, kT, v, y, P, bias)


def _causal_attention_forward(q, k, v, y, bias, scale, n_rep, chunks):
    """The forward under causal_mask(T), by chunks of queries.

    Chunk [s, e) keeps its own P_c (..., e - s, e), contiguous (every pass
    over it runs at full speed, and nothing above the chunks is stored); the
    cache holds the tuple of them in place of P.
    """
    P_chunks = [np.empty(q.shape[:-2] + (e - s, e), q.dtype) for s, e in chunks]
    diagonal_bias = [bias[s:e, s:e] for s, e in chunks]            # (e - s, e - s) each
    kernel = partial(_causal_attention_rows, scale=scale, chunks=chunks, diagonal_bias=diagonal_bias)
    if q.ndim == 2:
        kernel(q, k, v, y, *P_chunks)
    else:
        map_rows(kernel, q, k, v, y, *P_chunks)
    return y, (q, k, v, tuple(P_chunks), y, scale, n_rep, chunks)


def _causal_attention_rows(q, k, v, y, *P_chunks, scale, chunks, diagonal_bias):
    """Fills y and each chunk's P_c for a block of sequences."""
    kT = _unit_stride_rows(k.swapaxes(-1, -2))                     # (..., D, T)
    q = q * scale                                                  # (..., T, D)
    for (s, e), P_c, bias_c in zip(chunks, P_chunks, diagonal_bias):   # queries [s, e), keys [0, e)
        _scores_softmax_values(q[..., s:e, :], kT[..., :e], v[..., :e, :], y[..., s:e, :],
                               P_c, bias_c, bias_from=s)


def _scores_softmax_values(q, kT, v, y, P, bias, bias_from=0):
    """Fills P = softmax(q kT + bias) and y = P v (q already scaled).

    bias is added to the key columns from bias_from on (a causal chunk's
    diagonal block; the keys before it are all allowed)."""
    scores = np.matmul(q, kT, out=P)                               # (..., Tq, Tk)
    if bias is not None:
        scores[..., bias_from:] += bias
    if not _softmax_unshifted_inplace(scores):                     # P = softmax(scores)
        scores = np.matmul(q, kT, out=P)                           # exp would over/underflow:
        if bias is not None:                                       # start again, the usual way
            scores[..., bias_from:] += bias
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
    q, k, v, P, y, scale, n_rep, chunks = cache
    if n_rep > 1:                                                  # grouped-query heads
        dq, dk, dv = attention_backward(dy, (q, k, v, P, y, scale, 1, chunks))
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
    rows = (dy, q, k, v, y, dq, dk, dv) + (P if chunks else (P,))
    kernel = partial(_attention_backward_rows, scale=scale, chunks=chunks)
    if q.ndim == 2:
        kernel(*rows)
    else:
        map_rows(kernel, *rows)
    return dq, dk, dv


def _attention_backward_rows(dy, q, k, v, y, dq, dk, dv, *P, scale, chunks=None):
    """Fills dq, dk, dv for a block of sequences.

    P: the one (..., Tq, Tk) array, or with causal chunks each chunk's P_c
    (..., e - s, e). Query chunk [s, e) reaches keys [0, e) only; its shares
    of dv and dk are added into their first e rows (the last chunk, which
    reaches every key, first: it writes them whole).
    """
    if chunks is None:
        np.matmul(P[0].swapaxes(-1, -2), dy, out=dv)               # (..., Tk, D)
    else:
        for (s, e), P_c in zip(chunks[::-1], P[::-1]):
            share = np.matmul(P_c.swapaxes(-1, -2), dy[..., s:e, :])   # (..., e, D)
            if e == dv.shape[-2]:
                dv[...] = share
            else:
                dv[..., :e, :] += share
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
    if chunks is None:
        dS = np.matmul(dy_r, vT_1)                                 # (..., Tq, Tk) dP - r
        dS *= P[0]
        np.matmul(dS, k, out=dq)                                   # (..., Tq, D)
        np.matmul(dS.swapaxes(-1, -2), q, out=dk)                  # (..., Tk, D)
    else:
        for (s, e), P_c in zip(chunks[::-1], P[::-1]):             # queries [s, e), keys [0, e)
            dS = np.matmul(dy_r[..., s:e, :], vT_1[..., :e])       # (..., e - s, e)
            dS *= P_c                                              # 0 where the mask is False
            np.matmul(dS, k[..., :e, :], out=dq[..., s:e, :])      # (..., e - s, D)
            share = np.matmul(dS.swapaxes(-1, -2), q[..., s:e, :])  # (..., e, D)
            if e == dk.shape[-2]:
                dk[...] = share
            else:
                dk[..., :e, :] += share
    dq *= scale
    dk *= scale
