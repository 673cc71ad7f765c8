"""Scaled dot-product attention and multi-head attention.

The pair (one head or many, any leading axes):

    S = q @ k^T / sqrt(D)              scores          (..., Tq, Tk)
    S[~mask] = -inf                    True = may attend
    P = softmax(S)  over Tk            a row with no allowed key gives P = 0
    y = P @ v                                           (..., Tq, D)

Backward, reversing each line:

    dv = P^T @ dy                      (..., Tk, D)
    dP = dy @ v^T                      (..., Tq, Tk)
    dS = P * (dP - sum(dP * P, -1))    softmax backward; zero where masked
                                       sum_j dP_ij P_ij = dy_i . y_i (no (Tq, Tk) temporary)
    dq = dS @ k / sqrt(D)              dk = dS^T @ q / sqrt(D)

How it is computed, fastest first, the math unchanged. Every pass over the
(Tq, Tk) arrays costs most, so: q is scaled instead of the scores; the mask
is added as 0 / -inf; the softmax runs in place and skips its usual
max-subtraction when no score can overflow (``_softmax_unshifted_inplace``);
the backward gets dP - r from one matrix product with an extra column; and
blocks of sequences run on every core (``npfm.parallel.map_rows``).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..core import Module, Parameter, check_array
from ..parallel import map_rows
from .linear import linear_backward, linear_forward


def _as_bool_mask(mask, scores_shape, who):
    """Check that ``mask`` is boolean (or 0/1 integers) and broadcasts to the scores."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.integer):
            raise TypeError(f"{who}: mask must be boolean (True = may attend), got dtype {mask.dtype}")
        mask = mask != 0
    try:
        shape = np.broadcast_shapes(mask.shape, scores_shape)
    except ValueError:
        shape = None
    if shape != tuple(scores_shape):
        raise ValueError(f"{who}: mask of shape {mask.shape} does not broadcast to the "
                         f"attention scores (..., Tq, Tk) = {tuple(scores_shape)}")
    return mask


def causal_mask(Tq, Tk=None):
    """(Tq, Tk) boolean: query i may attend key j when j <= i + (Tk - Tq).

    With Tk > Tq the queries are the *last* Tq positions of the sequence
    (incremental decoding with a KV cache).
    """
    Tk = Tq if Tk is None else Tk
    return np.tri(Tq, Tk, k=Tk - Tq, dtype=bool)


def attention_forward(q, k, v, mask=None):
    """y = softmax(q k^T / sqrt(D), masked) v.

    q: (..., Tq, D)   k, v: (..., Tk, D)   mask: bool, broadcastable to
    (..., Tq, Tk), True = may attend.   ->   y: (..., Tq, D), cache

    Each sequence (each index of the leading axes) attends alone, so
    ``map_rows`` runs blocks of them on every core.
    """
    q = check_array(q, "q", min_ndim=2, who="attention")
    k = check_array(k, "k", min_ndim=2, who="attention")
    v = check_array(v, "v", min_ndim=2, who="attention")
    if k.shape != v.shape or q.shape[-1] != k.shape[-1] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} do not match: "
                         "expected q (..., Tq, D) and k, v (..., Tk, D) with the same leading axes")
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores_shape = q.shape[:-1] + (k.shape[-2],)                   # (..., Tq, Tk)
    bias = None
    if mask is not None:
        mask = _as_bool_mask(mask, scores_shape, "attention")
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
    return y, (q, k, v, P, y, scale)


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
    """dy: (..., Tq, D) -> (dq, dk, dv) shaped like q, k, v.

    out: optional arrays (dq, dk, dv) to fill, e.g. views into one buffer.
    """
    q, k, v, P, y, scale = cache
    if out is None:
        # each gradient is laid out in memory like its input (MultiHeadAttention's
        # heads are views of (B, T, C) arrays: merging the heads back is then free)
        out = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    dq, dk, dv = out
    if dq.shape != q.shape or dk.shape != k.shape or dv.shape != v.shape:
        raise ValueError(f"attention_backward: out has shapes {[a.shape for a in out]}, "
                         f"expected {[q.shape, k.shape, v.shape]}")
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
    np.einsum("...d,...d->...", dy, y, out=dy_r[..., D])           # r
    np.negative(dy_r[..., D], out=dy_r[..., D])
    vT_1 = np.empty(v.shape[:-2] + (D + 1, v.shape[-2]), v.dtype)  # (..., D + 1, Tk)
    vT_1[..., :D, :] = v.swapaxes(-1, -2)
    vT_1[..., D, :] = 1.0
    dS = np.matmul(dy_r, vT_1)                                     # (..., Tq, Tk) dP - r
    dS *= P
    np.matmul(dS, k, out=dq)                                       # (..., Tq, D)
    dq *= scale
    np.matmul(dS.swapaxes(-1, -2), q, out=dk)                      # (..., Tk, D)
    dk *= scale


class KVCache:
    """Keys and values of the positions decoded so far, for one attention layer.

    kT: (B, H, D, max_len) and v: (B, H, max_len, D) buffers filled from the
    left; ``length`` positions are valid. Keys are kept transposed, as the
    scores q @ k^T use them, so each new token's attention reads them in
    place instead of transposing the whole cache. Appending past ``max_len``
    is an error: the model decides what to do at its context limit.
    """

    def __init__(self, B, H, max_len, D, dtype=np.float32):
        self.kT = np.zeros((B, H, D, max_len), dtype)
        self.v = np.zeros((B, H, max_len, D), dtype)
        self.length = 0

    def append(self, k, v):
        """k, v: (B, H, T, D) -> all valid keys and values (B, H, length, D)."""
        T = k.shape[2]
        if self.length + T > self.v.shape[2]:
            raise ValueError(f"KV cache holds {self.v.shape[2]} positions; "
                             f"cannot append {T} to {self.length}")
        self.kT[..., self.length:self.length + T] = k.swapaxes(-1, -2)
        self.v[:, :, self.length:self.length + T] = v
        self.length += T
        return self.kT[..., :self.length].swapaxes(-1, -2), self.v[:, :, :self.length]


class MultiHeadAttention(Module):
    """Multi-head attention with a fused query/key/value projection.

    Self-attention (context is None):
        [q | k | v] = x @ W_qkv + b_qkv          (B, T, 3C), split into H heads of D
    Cross-attention (keys and values from ``context``):
        q = x @ W_qkv[:, :C] + b_qkv[:C]        [k | v] = context @ W_qkv[:, C:] + b_qkv[C:]
    then y = concat_heads(attention(q, k, v, mask)) @ W_out + b_out.

    mask (True = may attend) may be a key-padding mask (B, Tk), or a full mask
    (B, Tq, Tk) or (B, H, Tq, Tk); ``causal=True`` adds the causal mask
    (self-attention only). backward(dy) returns dx, or (dx, dcontext) after
    cross-attention.
    """

    def __init__(self, dim, n_heads, causal=False, bias=True, std=0.02, rng=None,
                 dtype=np.float32):
        for name, value in (("dim", dim), ("n_heads", n_heads)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"MultiHeadAttention: {name} must be a positive integer, "
                                 f"got {value!r}")
        if dim % n_heads != 0:
            raise ValueError(f"MultiHeadAttention: dim {dim} is not divisible by n_heads {n_heads}")
        rng = np.random.default_rng(0) if rng is None else rng
        self.dim, self.n_heads, self.causal = dim, n_heads, causal
        self.W_qkv = Parameter((rng.standard_normal((dim, 3 * dim)) * std).astype(dtype))
        self.b_qkv = Parameter(np.zeros(3 * dim, dtype)) if bias else None
        self.W_out = Parameter((rng.standard_normal((dim, dim)) * std).astype(dtype))
        self.b_out = Parameter(np.zeros(dim, dtype)) if bias else None

    def _heads(self, x):
        """(B, T, C) -> (B, H, T, D)"""
        B, T, _ = x.shape
        return x.reshape(B, T, self.n_heads, -1).transpose(0, 2, 1, 3)

    def _merge(self, x):
        """(B, H, T, D) -> (B, T, C)"""
        B, _, T, _ = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, T, self.dim)

    def _mask(self, mask, B, Tq, Tk, self_attention):
        full = None
        if mask is not None:
            mask = np.asarray(mask)
            if mask.ndim == 2:                                     # key padding (B, Tk)
                if mask.shape != (B, Tk):
                    raise ValueError(f"MultiHeadAttention: padding mask has shape {mask.shape}, "
                                     f"expected (B, Tk) = {(B, Tk)}")
                mask = mask[:, None, None, :]                      # (B, 1, 1, Tk)
            elif mask.ndim == 3:
                mask = mask[:, None]                               # (B, 1, Tq, Tk)
            elif mask.ndim != 4:
                raise ValueError(f"MultiHeadAttention: mask must be (B, Tk), (B, Tq, Tk) or "
                                 f"(B, H, Tq, Tk); got shape {mask.shape}")
            full = _as_bool_mask(mask, (B, self.n_heads, Tq, Tk), "MultiHeadAttention")
        if self.causal and self_attention and Tq > 1:              # one query sees every key
            tri = causal_mask(Tq, Tk)                              # (Tq, Tk)
            full = tri if full is None else (full & tri)
        return full

    def forward(self, x, mask=None, context=None, kv_cache=None):
        """x: (B, T, C) -> y: (B, T, C). kv_cache: a KVCache for incremental decoding."""
        x = check_array(x, "x", min_ndim=3, last_dim=self.dim, who="MultiHeadAttention")
        B, T, C = x.shape
        if T == 0:
            raise ValueError(f"MultiHeadAttention: x has no positions (shape {x.shape}); "
                             f"attention needs at least one")
        b_qkv = self.b_qkv.data if self.b_qkv is not None else None
        W_qkv = self.W_qkv.data
        if context is None:
            qkv, lin_cache = linear_forward(x, W_qkv, b_qkv)                 # (B, T, 3C)
            q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]    # 3 x (B, T, C)
            kv_lin_cache = None
        else:
            context = check_array(context, "context", min_ndim=3, last_dim=self.dim,
                                  who="MultiHeadAttention")
            if context.shape[0] != B:
                raise ValueError(f"MultiHeadAttention: context batch {context.shape[0]} != x batch {B}")
            q, lin_cache = linear_forward(x, W_qkv[:, :C], None if b_qkv is None else b_qkv[:C])
            kv, kv_lin_cache = linear_forward(context, W_qkv[:, C:],
                                              None if b_qkv is None else b_qkv[C:])  # (B, Tk, 2C)
            k, v = kv[..., :C], kv[..., C:]                                # 2 x (B, Tk, C)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)           # (B, H, T*, D)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)                                   # (B, H, Tk, D)
        mask = self._mask(mask, B, T, k.shape[2], context is None)
        a, attn_cache = attention_forward(q, k, v, mask)                   # (B, H, T, D)
        a = self._merge(a)                                                 # (B, T, C)
        y, out_cache = linear_forward(a, self.W_out.data,
                                      None if self.b_out is None else self.b_out.data)
        self._cache = (lin_cache, kv_lin_cache, attn_cache, out_cache, kv_cache is not None)
        self._y_shape = y.shape
        return y

    def backward(self, dy):
        lin_cache, kv_lin_cache, attn_cache, out_cache, used_kv_cache = self._saved()
        dy = check_array(dy, "dy", who="MultiHeadAttention.backward")
        if dy.shape != self._y_shape:
            raise ValueError(f"MultiHeadAttention.backward: dy has shape {dy.shape}, but the "
                             f"forward's output had shape {self._y_shape}")
        if used_kv_cache:
            raise ValueError("MultiHeadAttention.backward: no backward through KV-cache "
                             "decoding (it is for generation only)")
        C = self.dim
        da, dW_out, db_out = linear_backward(dy, out_cache)                # (B, T, C)
        self.W_out.grad += dW_out
        if self.b_out is not None:
            self.b_out.grad += db_out
        if kv_lin_cache is None:
            # the gradients of q, k and v land straight in their columns of one buffer
            dqkv = np.empty(da.shape[:2] + (3 * C,), da.dtype)             # (B, T, 3C)
            attention_backward(self._heads(da), attn_cache,
                               out=[self._heads(dqkv[..., i * C:(i + 1) * C]) for i in range(3)])
            dx, dW, db = linear_backward(dqkv, lin_cache)
            self.W_qkv.grad += dW
            if self.b_qkv is not None:
                self.b_qkv.grad += db
            return dx
        dq, dk, dv = attention_backward(self._heads(da), attn_cache)       # (B, H, T*, D)
        dq, dk, dv = self._merge(dq), self._merge(dk), self._merge(dv)     # (B, T*, C)
        dx, dWq, dbq = linear_backward(dq, lin_cache)
        dcontext, dWkv, dbkv = linear_backward(np.concatenate([dk, dv], axis=-1), kv_lin_cache)
        self.W_qkv.grad[:, :C] += dWq
        self.W_qkv.grad[:, C:] += dWkv
        if self.b_qkv is not None:
            self.b_qkv.grad[:C] += dbq
            self.b_qkv.grad[C:] += dbkv
        return dx, dcontext
