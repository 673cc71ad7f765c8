"""The one causal decoder stack, shared by GPT, the text-to-image model and
CLIP's text tower: pre-LN blocks, a final LayerNorm, GPT-2 initialisation,
forward, backward, KV caches and one-position decoding.

    x = block_l(x)   for l = 1..L        pre-LN causal blocks           (B, T, C)
    h = LayerNorm(x)                                                     (B, T, C)

(the Llama layout: RMSNorm, RoPE, SwiGLU, no biases; see nn/block.py).

Backward, in reverse: dx = ln_f.backward(dh), then the blocks in reverse.

A model subclasses ``DecoderStack``, builds its embeddings, calls
``build_stack`` (the blocks draw their weights from the model's generator in
that order), and keeps only what is its own: positions, head, logits mask,
loss weighting, pooling.
"""

import math


from ..core import Module
from ..nn.attention import KVCache
from ..nn.block import TransformerBlock
from ..nn.layernorm import LayerNorm
from ..nn.rmsnorm import RMSNorm

ARCHS = ("gpt2", "llama")


def make_blocks(dim, n_layers, n_heads, hidden, causal, rng, dtype, dropout=0.0, n_kv_heads=None,
                arch="gpt2", rope_base=10000.0):
    """n_layers pre-LN TransformerBlocks with GPT-2's initialisation: weights
    N(0, 0.02^2), and the two projections that write into the residual stream
    (attention's W_out, the feed-forward's second layer) N(0, (0.02 / sqrt(2 L))^2),
    so the stream's variance does not grow with depth.

    arch: "gpt2" (LayerNorm, GELU MLP, biases) or "llama" (RMSNorm with eps
    1e-6, RoPE in the attention, SwiGLU, no biases); the same initialisation."""
    if arch not in ARCHS:
        raise ValueError(f"make_blocks: arch must be one of {ARCHS}, got {arch!r}")
    llama = arch == "llama"
    blocks = [TransformerBlock(dim, n_heads, hidden, causal=causal, norm_first=True,
                               activation="gelu", dropout=dropout, eps=1e-6 if llama else 1e-5,
                               std=0.02, rng=rng, dtype=dtype, n_kv_heads=n_kv_heads,
                               llama=llama, rope_base=rope_base)
              for _ in range(n_layers)]
    residual_std = 0.02 / math.sqrt(2 * max(n_layers, 1))
    for block in blocks:
        for W in block.residual_weights():
            W.data = (rng.standard_normal(W.shape) * residual_std).astype(dtype)
    return blocks


class DecoderStack(Module):
    """``blocks`` (causal, pre-LN) and ``ln_f``; the methods run them."""

    def build_stack(self, dim, n_layers, n_heads, hidden, context, rng, dtype, dropout=0.0,
                    n_kv_heads=None, arch="gpt2", rope_base=10000.0):
        self.blocks = make_blocks(dim, n_layers, n_heads, hidden, True, rng, dtype, dropout,
                                  n_kv_heads, arch, rope_base)
        self.ln_f = RMSNorm(dim, dtype=dtype) if arch == "llama" else LayerNorm(dim, dtype=dtype)
        self._stack_shape = (n_kv_heads or n_heads, context, dim // n_heads)

    def forward_stack(self, x, kv_caches=None):
        """x: (B, T, C) -> h: (B, T, C). With kv_caches (one per block) the T
        positions follow the cached ones."""
        for i, block in enumerate(self.blocks):
            x = block(x, kv_cache=None if kv_caches is None else kv_caches[i])
        return self.ln_f(x)                                          # (B, T, C)

    def backward_stack(self, dh):
        """dh: (B, T, C) -> dx: (B, T, C), through ln_f and the blocks in reverse."""
        dx = self.ln_f.backward(dh)
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        return dx

    def decode_stack(self, x, kv_caches):
        """x: (B, C), one new position -> h: (B, C); forward_stack's arithmetic
        for T = 1 (tested equal bit for bit), its keys and values appended."""
        for block, cache in zip(self.blocks, kv_caches):
            x = block.decode(x, cache)
        return self.ln_f.infer(x)                                    # (B, C)

    def new_kv_caches(self, batch_size=1):
        """One empty KVCache per block, holding up to the context's positions."""
        H_kv, context, D = self._stack_shape
        dtype = self.param_dtype                                     # a walk over the Parameters
        return [KVCache(batch_size, H_kv, context, D, dtype) for _ in self.blocks]
