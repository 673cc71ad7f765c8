"""Multi-head attention and its KV cache (the pair: npfm/functional/attention.py).

Self-attention (context is None):
    [q | k | v] = x @ W_qkv + b_qkv          (B, T, C + 2 H_kv D), split into heads
Cross-attention (keys and values from ``context``):
    q = x @ W_qkv[:, :C] + ...               [k | v] = context @ W_qkv[:, C:] + ...
then y = concat_heads(attention(q, k, v, mask)) @ W_out + b_out.

With n_kv_heads < n_heads (grouped-query attention) the keys and values have
H_kv heads, each shared by H / H_kv consecutive query heads; the KV cache
then holds only the H_kv heads.

The Llama layout (``rope=True``, ``bias=False``, ``as_linears=True``) rotates
each query and key head by its position before the scores (RoPE, the pair in
npfm/functional/rope.py), position offset + t for row t where offset is the
KV cache's length, so one decoded token at any offset gets the rotation of
the full forward:

    q_h = rope(q_h, offset)   k_h = rope(k_h, offset)       (B, H*, T, D)

and its backward turns the gradients back: dq_h = rope_backward(dq_h). With
``as_linears`` the two projections are Linear Modules ``qkv`` and ``out``
(state names ``qkv.W``, ``out.W``) instead of the Parameters ``W_qkv``,
``b_qkv``, ``W_out``, ``b_out`` of GPT-2's layout, so ``add_lora`` reaches them.
"""

import numbers

import numpy as np

from ..core import Module, Parameter, check_array
from ..fast import fast_kernel, pair
from ..functional.attention import attention_weights, causal_mask
from .linear import Linear


def as_bool_mask(mask, scores_shape, who):
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


def attention_one_position(q, k, v):
    """q: (B, H, 1, D) against all the cached k, v (B, H_kv, Tk, D) -> y (B, H, 1, D).

    What a KV cache leaves for each new token, on the fast floor's kernel for
    it (fast/decode.py) or, with the switch on, on the textbook pair. forward
    (T = 1, with a cache) and decode both call this, so they agree bit for bit."""
    decode = fast_kernel("attention", "decode")      # None on the textbook floor
    if decode is None:
        return pair("attention")[0](q, k, v)[0]
    return decode(q, k, v)


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
        start, T = self.length, k.shape[2]
        if start + T > self.v.shape[2]:
            raise ValueError(f"KV cache holds {self.v.shape[2]} positions; "
                             f"cannot append {T} to {start}")
        self.kT[:, :, :, start:start + T] = k.swapaxes(-1, -2)
        self.v[:, :, start:start + T] = v
        self.length = end = start + T
        return self.kT[:, :, :, :end].swapaxes(-1, -2), self.v[:, :, :end]


class MultiHeadAttention(Module):
    """Multi-head attention with a fused query/key/value projection.

    dim C, n_heads H, n_kv_heads H_kv (default H; fewer is grouped-query
    attention). mask (True = may attend) may be a key-padding mask (B, Tk), or
    a full mask (B, Tq, Tk) or (B, H, Tq, Tk); ``causal=True`` adds the causal
    mask (self-attention only). backward(dy) returns dx, or (dx, dcontext)
    after cross-attention.

    ``keep_attention = True`` makes each forward store its attention weights
    (B, H, Tq, Tk) in ``self.attention`` (for pictures; recomputed from q and
    k, so the pair's cache stays its own).
    """

    def __init__(self, dim, n_heads, causal=False, bias=True, std=0.02, rng=None,
                 dtype=np.float32, n_kv_heads=None, rope=False, rope_base=10000.0,
                 as_linears=False):
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        for name, value in (("dim", dim), ("n_heads", n_heads), ("n_kv_heads", n_kv_heads)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"MultiHeadAttention: {name} must be a positive integer, got {value!r}")
        if dim % n_heads != 0:
            raise ValueError(f"MultiHeadAttention: dim {dim} is not divisible by n_heads {n_heads}")
        if n_heads % n_kv_heads != 0:
            raise ValueError(f"MultiHeadAttention: n_heads {n_heads} is not divisible by "
                             f"n_kv_heads {n_kv_heads}")
        if rope and (dim // n_heads) % 2:
            raise ValueError(f"MultiHeadAttention: RoPE needs an even head size, got {dim // n_heads}")
        rng = np.random.default_rng(0) if rng is None else rng
        self.dim, self.n_heads, self.n_kv_heads, self.causal = dim, n_heads, n_kv_heads, causal
        self.head_dim = dim // n_heads
        self.rope, self.rope_base = bool(rope), float(rope_base)
        kv_dim = n_kv_heads * self.head_dim
        if as_linears:                  # same draws, in the same order, as the Parameters
            self.qkv = Linear(dim, dim + 2 * kv_dim, bias=bias, std=std, rng=rng, dtype=dtype)
            self.out = Linear(dim, dim, bias=bias, std=std, rng=rng, dtype=dtype)
        else:
            self.qkv = self.out = None
            self.W_qkv = Parameter((rng.standard_normal((dim, dim + 2 * kv_dim)) * std).astype(dtype))
            self.b_qkv = Parameter(np.zeros(dim + 2 * kv_dim, dtype)) if bias else None
            self.W_out = Parameter((rng.standard_normal((dim, dim)) * std).astype(dtype))
            self.b_out = Parameter(np.zeros(dim, dtype)) if bias else None
        self.keep_attention = False
        self.attention = None

    def _heads(self, x, n_heads=None):
        """(B, T, n * D) -> (B, n, T, D)"""
        B, T, _ = x.shape
        return x.reshape(B, T, n_heads or self.n_heads, self.head_dim).transpose(0, 2, 1, 3)

    def _merge(self, x):
        """(B, n, T, D) -> (B, T, n * D)"""
        B, n, T, D = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, T, n * D)

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
            full = as_bool_mask(mask, (B, self.n_heads, Tq, Tk), "MultiHeadAttention")
        if self.causal and self_attention and Tq > 1:              # one query sees every key
            tri = causal_mask(Tq, Tk)                              # (Tq, Tk)
            full = tri if full is None else (full & tri)
        return full

    def _split(self, qkv):
        """(..., C + 2 C_kv) -> q (..., C), k, v (..., C_kv): views of the columns."""
        C, Ckv = self.dim, self.n_kv_heads * self.head_dim
        return qkv[..., :C], qkv[..., C:C + Ckv], qkv[..., C + Ckv:]

    def forward(self, x, mask=None, context=None, kv_cache=None):
        """x: (B, T, C) -> y: (B, T, C). kv_cache: a KVCache for incremental decoding."""
        x = check_array(x, "x", min_ndim=3, last_dim=self.dim, who="MultiHeadAttention")
        if x.ndim != 3 or 0 in x.shape:
            raise ValueError(f"MultiHeadAttention: x must be (B, T, C) with B, T >= 1; it has "
                             f"no positions or no sequences (shape {x.shape})")
        B, T, C = x.shape
        linear, self._linear_backward = pair("linear")
        attention, self._attention_backward = pair("attention")
        self._fills_out = self._attention_backward is fast_kernel("attention", "backward")
        if context is None:
            if self.qkv is not None:
                qkv, lin_cache = self.qkv(x), None                           # (B, T, C + 2C_kv)
            else:
                b = None if self.b_qkv is None else self.b_qkv.data
                qkv, lin_cache = linear(x, self.W_qkv.data, b)              # (B, T, C + 2C_kv)
            q, k, v = self._split(qkv)
            kv_lin_cache = None
        else:
            if self.qkv is not None or self.rope:
                raise ValueError("MultiHeadAttention: cross-attention needs the fused "
                                 "Parameters and no RoPE (as_linears=False, rope=False)")
            W, b = self.W_qkv.data, None if self.b_qkv is None else self.b_qkv.data
            context = check_array(context, "context", min_ndim=3, last_dim=self.dim,
                                  who="MultiHeadAttention")
            if context.ndim != 3 or context.shape[0] != B:
                raise ValueError(f"MultiHeadAttention: context must be (B, Tk, C) with B = {B}, "
                                 f"got shape {context.shape}")
            q, lin_cache = linear(x, W[:, :C], None if b is None else b[:C])
            kv, kv_lin_cache = linear(context, W[:, C:], None if b is None else b[C:])
            Ckv = self.n_kv_heads * self.head_dim
            k, v = kv[..., :Ckv], kv[..., Ckv:]                            # 2 x (B, Tk, C_kv)
        q = self._heads(q)                                                 # (B, H, T, D)
        k, v = self._heads(k, self.n_kv_heads), self._heads(v, self.n_kv_heads)  # (B, H_kv, T*, D)
        rope_caches = None
        if self.rope:
            offset = 0 if kv_cache is None else kv_cache.length
            rope, self._rope_backward = pair("rope")
            q, q_rope_cache = rope(q, offset, self.rope_base)              # (B, H, T, D)
            k, k_rope_cache = rope(k, offset, self.rope_base)              # (B, H_kv, T, D)
            rope_caches = (q_rope_cache, k_rope_cache)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)                                   # (B, H_kv, Tk, D)
        mask = self._mask(mask, B, T, k.shape[2], context is None)
        if kv_cache is not None and T == 1 and mask is None:               # one new token
            a, attn_cache = attention_one_position(q, k, v), None          # (B, H, 1, D)
        else:
            a, attn_cache = attention(q, k, v, mask)                       # (B, H, T, D)
        if self.keep_attention:
            self.attention = attention_weights(q, k, mask)                 # (B, H, T, Tk)
        a = self._merge(a)                                                 # (B, T, C)
        if self.out is not None:
            y, out_cache = self.out(a), None                               # (B, T, C)
        else:
            y, out_cache = linear(a, self.W_out.data,
                                  None if self.b_out is None else self.b_out.data)
        self._cache = (lin_cache, kv_lin_cache, attn_cache, rope_caches, out_cache,
                       kv_cache is not None)
        self._out_shape = y.shape
        return y

    def decode(self, x, kv_cache):
        """x: (B, C), one new position -> y: (B, C), its keys and values appended
        to ``kv_cache``. The arithmetic of forward with T = 1, for generation
        only (nothing is kept for a backward)."""
        B, C = x.shape
        linear = pair("linear")[0]
        if self.qkv is not None:
            qkv = self.qkv.infer(x[:, None])                               # (B, 1, C + 2C_kv)
        else:
            b = None if self.b_qkv is None else self.b_qkv.data
            qkv = linear(x[:, None], self.W_qkv.data, b)[0]               # (B, 1, C + 2C_kv)
        q, k, v = self._split(qkv)
        q, k = self._heads(q), self._heads(k, self.n_kv_heads)            # (B, H*, 1, D)
        if self.rope:                                   # the new position is the cache's length
            rope = pair("rope")[0]
            q = rope(q, kv_cache.length, self.rope_base)[0]
            k = rope(k, kv_cache.length, self.rope_base)[0]
        k, v = kv_cache.append(k, self._heads(v, self.n_kv_heads))
        a = attention_one_position(q, k, v).reshape(B, 1, C)               # (B, 1, C)
        if self.out is not None:
            return self.out.infer(a)[:, 0]                                 # (B, C)
        y = linear(a, self.W_out.data, None if self.b_out is None else self.b_out.data)[0]
        return y[:, 0]                                                     # (B, C)

    def backward(self, dy):
        lin_cache, kv_lin_cache, attn_cache, rope_caches, out_cache, used_kv_cache = self._saved()
        if used_kv_cache:
            raise ValueError("MultiHeadAttention.backward: no backward through KV-cache "
                             "decoding (it is for generation only)")
        dy = self._check_dy(dy, shape=self._out_shape)
        C, Ckv = self.dim, self.n_kv_heads * self.head_dim
        if self.out is not None:
            da = self.out.backward(dy)                                     # (B, T, C)
        else:
            da, dW_out, db_out = self._linear_backward(dy, out_cache)      # (B, T, C)
            self.W_out.grad += dW_out
            if self.b_out is not None:
                self.b_out.grad += db_out
        dah = self._heads(da)                                              # (B, H, T, D)
        if kv_lin_cache is None:
            # the gradients of q, k and v land in their columns of one buffer
            dqkv = np.empty(da.shape[:2] + (C + 2 * Ckv,), da.dtype)       # (B, T, C + 2C_kv)
            dq, dk, dv = self._split(dqkv)
            targets = [self._heads(dq), self._heads(dk, self.n_kv_heads),
                       self._heads(dv, self.n_kv_heads)]
            if self._fills_out and rope_caches is None:
                self._attention_backward(dah, attn_cache, out=targets)
            else:
                dq_h, dk_h, dv_h = self._attention_backward(dah, attn_cache)
                if rope_caches is not None:    # q = rope(q), k = rope(k): turn them back
                    dq_h = self._rope_backward(dq_h, rope_caches[0])
                    dk_h = self._rope_backward(dk_h, rope_caches[1])
                for target, grad in zip(targets, (dq_h, dk_h, dv_h)):
                    target[...] = grad
            if self.qkv is not None:
                return self.qkv.backward(dqkv)                             # (B, T, C)
            dx, dW, db = self._linear_backward(dqkv, lin_cache)
            self.W_qkv.grad += dW
            if self.b_qkv is not None:
                self.b_qkv.grad += db
            return dx
        dq, dk, dv = self._attention_backward(dah, attn_cache)             # (B, H*, T*, D)
        if rope_caches is not None:
            dq = self._rope_backward(dq, rope_caches[0])
            dk = self._rope_backward(dk, rope_caches[1])
        dq, dk, dv = self._merge(dq), self._merge(dk), self._merge(dv)     # (B, T*, C*)
        dx, dWq, dbq = self._linear_backward(dq, lin_cache)
        dcontext, dWkv, dbkv = self._linear_backward(np.concatenate([dk, dv], axis=-1),
                                                     kv_lin_cache)
        self.W_qkv.grad[:, :C] += dWq
        self.W_qkv.grad[:, C:] += dWkv
        if self.b_qkv is not None:
            self.b_qkv.grad[:C] += dbq
            self.b_qkv.grad[C:] += dbkv
        return dx, dcontext
