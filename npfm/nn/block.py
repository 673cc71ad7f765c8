"""The transformer block, pre-LN (GPT-2) or post-LN (original BERT).

Pre-LN (norm_first=True), the residual stream is never normalised:

    h = x + drop(attn(ln1(x)))
    y = h + drop(ffn(ln2(h)))

Post-LN (norm_first=False), each sub-layer's sum is normalised:

    h = ln1(x + drop(attn(x)))
    y = ln2(h + drop(ffn(h)))

A residual's backward is plain arithmetic: the gradient flows through the
skip unchanged and through the sub-layer, and the two add.

The Llama layout (``llama=True``, pre-norm only) keeps the pre-LN residuals
and swaps the parts: RMSNorm for LayerNorm, RoPE inside the attention (no
position vectors in the stream), a SwiGLU feed-forward, no biases:

    h = x + attn_rope(rmsnorm1(x))
    y = h + swiglu(rmsnorm2(h))
"""

import numpy as np

from ..core import Module
from .attention import MultiHeadAttention
from .dropout import Dropout
from .feedforward import FeedForward
from .layernorm import LayerNorm
from .rmsnorm import RMSNorm
from .swiglu import SwiGLU


class TransformerBlock(Module):
    """Self-attention and feed-forward sub-layers with residuals and LayerNorm.

    dim C, n_heads H, hidden F (feed-forward width), causal mask or not,
    norm_first: pre-LN (True) or post-LN (False); activation as FeedForward's.
    forward(x (B, T, C), mask=None, kv_cache=None) -> (B, T, C).
    llama: the Llama layout (RMSNorm, RoPE, SwiGLU, no biases; ``activation``
    unused, ``eps`` RMSNorm's), rope_base its RoPE's base.
    """

    def __init__(self, dim, n_heads, hidden, causal=False, norm_first=True, activation="gelu",
                 dropout=0.0, eps=1e-5, std=0.02, rng=None, dtype=np.float32, n_kv_heads=None,
                 llama=False, rope_base=10000.0):
        rng = np.random.default_rng(0) if rng is None else rng
        if llama and not norm_first:
            raise ValueError("TransformerBlock: the Llama layout is pre-norm (norm_first=True)")
        self.norm_first = norm_first
        Norm = RMSNorm if llama else LayerNorm
        self.ln1 = Norm(dim, eps=eps, dtype=dtype)
        self.attn = MultiHeadAttention(dim, n_heads, causal=causal, bias=not llama, std=std,
                                       rng=rng, dtype=dtype, n_kv_heads=n_kv_heads, rope=llama,
                                       rope_base=rope_base, as_linears=llama)
        self.drop1 = Dropout(dropout, rng=rng)
        self.ln2 = Norm(dim, eps=eps, dtype=dtype)
        if llama:
            self.ffn = SwiGLU(dim, hidden, std=std, rng=rng, dtype=dtype)
        else:
            self.ffn = FeedForward(dim, hidden, activation=activation, std=std, rng=rng, dtype=dtype)
        self.drop2 = Dropout(dropout, rng=rng)

    def residual_weights(self):
        """The two matrices that write into the residual stream (attention's
        output projection, the feed-forward's last), for depth-scaled init."""
        W_out = self.attn.W_out if self.attn.out is None else self.attn.out.W
        return W_out, self.ffn.W_down if isinstance(self.ffn, SwiGLU) else self.ffn.fc2.W

    def forward(self, x, mask=None, kv_cache=None):
        """x: (B, T, C) -> (B, T, C)"""
        if self.norm_first:
            h = x + self.drop1(self.attn(self.ln1(x), mask=mask, kv_cache=kv_cache))
            return h + self.drop2(self.ffn(self.ln2(h)))
        h = self.ln1(x + self.drop1(self.attn(x, mask=mask, kv_cache=kv_cache)))
        return self.ln2(h + self.drop2(self.ffn(h)))

    def decode(self, x, kv_cache):
        """x: (B, C), one new position -> (B, C); its keys and values join
        ``kv_cache``. Pre-LN only (the causal blocks of the decoders);
        inference only: nothing is kept for a backward."""
        if not self.norm_first:
            raise ValueError("TransformerBlock.decode: only pre-LN blocks decode one position")
        h = x + self.attn.decode(self.ln1.infer(x), kv_cache)
        # the feed-forward sees forward's (B, 1, C): a stacked (B, 1, C) @ (C, F)
        # rounds differently from a (B, C) @ (C, F) product
        return h + self.ffn.infer(self.ln2.infer(h)[:, None])[:, 0]

    def backward(self, dy):
        """dy: (B, T, C) -> dx: (B, T, C), in reverse order of forward."""
        if self.norm_first:
            dh = dy + self.ln2.backward(self.ffn.backward(self.drop2.backward(dy)))
            return dh + self.ln1.backward(self.attn.backward(self.drop1.backward(dh)))
        ds = self.ln2.backward(dy)                   # gradient of h + ffn(h)
        dh = ds + self.ffn.backward(self.drop2.backward(ds))
        dr = self.ln1.backward(dh)                   # gradient of x + attn(x)
        return dr + self.attn.backward(self.drop1.backward(dr))

