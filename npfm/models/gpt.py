"""A decoder-only transformer in the GPT-2 layout, with a hand-written backward.

Forward, for token ids (B, T):

    x = E[ids] + P[:T]                   token embedding + positions     (B, T, C)
    x = dropout(x)
    x = block_l(x)   for l = 1..L        pre-LN causal blocks           (B, T, C)
    h = LayerNorm(x)                                                     (B, T, C)
    logits = h @ E^T                     LM head tied to the embedding   (B, T, V)

Backward, in reverse: dh = dlogits @ E and dE += dlogits^T h (the head's
share of the tied weight), then back through ln_f, the blocks in reverse,
dropout and positions, and finally dE[ids] += dx (the embedding's share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..config import ConfigMixin
from ..core import Module, check_ids
from ..layers.activations import gelu_forward
from ..layers.attention import KVCache, attention_forward
from ..layers.block import TransformerBlock
from ..layers.dropout import Dropout
from ..layers.embedding import Embedding
from ..layers.layernorm import LayerNorm, layernorm_forward
from ..layers.linear import linear_backward, linear_forward
from ..layers.positional import PositionalEmbedding, SinusoidalPositionalEncoding


@dataclass(frozen=True)
class GPTConfig(ConfigMixin):
    """Architecture of a GPT. ``hidden`` defaults to 4 * dim."""
    vocab_size: int = 256
    context: int = 128
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    hidden: int = 0
    dropout: float = 0.0
    positions: str = "learned"          # or "sinusoidal"

    def __post_init__(self):
        if self.hidden == 0:
            object.__setattr__(self, "hidden", 4 * self.dim)
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {self.positions!r}")
        if self.n_heads < 1 or self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads} "
                             f"(n_heads must be >= 1)")



PRESETS = {
    # for tests: whole-model gradient checks in seconds
    "tiny": GPTConfig(vocab_size=256, context=16, dim=16, n_layers=2, n_heads=2),
    # the main job: learns to write Python in minutes on a laptop
    "default": GPTConfig(vocab_size=256, context=128, dim=128, n_layers=4, n_heads=4),
    # a bigger model for longer runs
    "large": GPTConfig(vocab_size=256, context=256, dim=256, n_layers=6, n_heads=8),
}


def preset(name, **overrides):
    """A named preset with some fields replaced (e.g. vocab_size of a BPE tokenizer)."""
    if name not in PRESETS:
        raise ValueError(f"unknown GPT preset {name!r}; choose from {sorted(PRESETS)}")
    if "dim" in overrides and "hidden" not in overrides:
        overrides["hidden"] = 4 * overrides["dim"]          # keep hidden = 4 * dim
    return replace(PRESETS[name], **overrides)


class GPT(Module):
    """GPT-2 style language model: forward(ids) -> logits, backward(dlogits)."""

    def __init__(self, config: GPTConfig, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        c = self.config = config
        self.tok_emb = Embedding(c.vocab_size, c.dim, std=0.02, rng=rng, dtype=dtype)
        if c.positions == "learned":
            self.pos = PositionalEmbedding(c.context, c.dim, std=0.01, rng=rng, dtype=dtype)
        else:
            self.pos = SinusoidalPositionalEncoding(c.context, c.dim, dtype=dtype)
        self.drop = Dropout(c.dropout)
        self.blocks = [TransformerBlock(c.dim, c.n_heads, c.hidden, causal=True, norm_first=True,
                                        activation="gelu", dropout=c.dropout, std=0.02, rng=rng,
                                        dtype=dtype)
                       for _ in range(c.n_layers)]
        self.ln_f = LayerNorm(c.dim, dtype=dtype)
        # GPT-2: the projections that write into the residual stream start smaller,
        # std 0.02 / sqrt(2 L), so the stream's variance does not grow with depth.
        residual_std = 0.02 / math.sqrt(2 * c.n_layers)
        for block in self.blocks:
            for W in (block.attn.W_out, block.ffn.fc2.W):
                W.data = (rng.standard_normal(W.shape) * residual_std).astype(dtype)

    def forward(self, ids, kv_caches=None):
        """ids: (B, T) integers -> logits (B, T, V).

        kv_caches: one KVCache per block for incremental decoding; the new
        tokens then sit at positions cache.length ... cache.length + T - 1.
        """
        ids = check_ids(ids, self.config.vocab_size, who="GPT")
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"GPT: ids must be (B, T) with T >= 1, got shape {ids.shape}")
        offset = kv_caches[0].length if kv_caches else 0
        if offset + ids.shape[1] > self.config.context:
            raise ValueError(f"GPT: {offset + ids.shape[1]} positions exceed the context of "
                             f"{self.config.context}; crop the input to its last {self.config.context} tokens")
        x = self.tok_emb(ids)                                       # (B, T, C)
        x = self.pos(x, offset=offset)                              # (B, T, C)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, kv_cache=None if kv_caches is None else kv_caches[i])
        h = self.ln_f(x)                                            # (B, T, C)
        logits, self._cache = linear_forward(h, self.tok_emb.W.data.T)  # (B, T, V)
        return logits

    def backward(self, dlogits):
        """dlogits: (B, T, V). Fills every Parameter's grad; ids have no gradient."""
        dh, dWT, _ = linear_backward(dlogits, self._saved())        # (B, T, C), (C, V)
        self.tok_emb.W.grad += dWT.T                                # the head's share
        dx = self.ln_f.backward(dh)
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        dx = self.drop.backward(dx)
        dx = self.pos.backward(dx)
        self.tok_emb.backward(dx)                                   # the embedding's share
        return None

    def decode(self, ids, kv_caches):
        """ids: (B, 1), one new token per sequence -> logits (B, V) of the token after it.

        The forward of a single new position, the work a KV cache leaves for
        each sampled token: the earlier positions' keys and values come from
        ``kv_caches`` (filled by ``forward(..., kv_caches)``), and the new
        position's own are appended. The arithmetic is forward's, call for
        call (the tests hold the two equal bit for bit); the Modules are
        bypassed because a position is a few vector-matrix products per layer,
        which their per-call bookkeeping (input checks, backward caches)
        would otherwise outweigh. Inference only: no dropout, no backward.
        """
        ids = check_ids(ids, self.config.vocab_size, who="GPT.decode")
        if ids.ndim != 2 or ids.shape[1] != 1 or len(kv_caches) != len(self.blocks):
            raise ValueError(f"GPT.decode: expected ids (B, 1) and {len(self.blocks)} KV caches, "
                             f"got ids of shape {ids.shape} and {len(kv_caches)} caches")
        if kv_caches[0].length >= self.config.context:
            raise ValueError(f"GPT.decode: the KV caches are full ({self.config.context} positions)")
        B, C, H = ids.shape[0], self.config.dim, self.config.n_heads
        x = self.pos(self.tok_emb.W.data[ids], offset=kv_caches[0].length)[:, 0]  # (B, C)
        for block, cache in zip(self.blocks, kv_caches):
            ln1, attn, ln2, ffn = block.ln1, block.attn, block.ln2, block.ffn
            h = layernorm_forward(x, ln1.gamma.data, ln1.beta.data, ln1.eps)[0]    # (B, C)
            qkv = h @ attn.W_qkv.data + attn.b_qkv.data                            # (B, 3C)
            q, k, v = (qkv[:, i * C:(i + 1) * C].reshape(B, H, 1, C // H)
                       for i in range(3))                                          # (B, H, 1, D)
            k, v = cache.append(k, v)                                              # (B, H, Tk, D)
            a = attention_forward(q, k, v)[0].reshape(B, C)                        # (B, C)
            x = x + (a @ attn.W_out.data + attn.b_out.data)                        # residual
            h = layernorm_forward(x, ln2.gamma.data, ln2.beta.data, ln2.eps)[0]
            h = gelu_forward(h @ ffn.fc1.W.data + ffn.fc1.b.data)[0]               # (B, F)
            x = x + (h @ ffn.fc2.W.data + ffn.fc2.b.data)                          # residual
        h = layernorm_forward(x, self.ln_f.gamma.data, self.ln_f.beta.data, self.ln_f.eps)[0]
        return h @ self.tok_emb.W.data.T                                           # (B, V)

    def new_kv_caches(self, batch_size=1):
        c = self.config
        return [KVCache(batch_size, c.n_heads, c.context, c.dim // c.n_heads, self.tok_emb.W.dtype)
                for _ in self.blocks]


# ----- sampling ---------------------------------------------------------------

def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """Pick the next token from logits (V,): greedy at temperature 0, else
    softmax(logits / temperature) restricted to the top_k tokens and to the
    smallest set whose probability reaches top_p (nucleus)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not (0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if not math.isfinite(temperature):
        raise ValueError(f"temperature must be finite, got {temperature}")
    logits = np.asarray(logits, dtype=np.float64)
    if np.isnan(logits).any() or np.isposinf(logits).any() or not np.isfinite(logits).any():
        raise ValueError("sample_next: the logits contain NaN or +inf (or no finite value): the model's "
                         "weights are probably damaged (check the checkpoint)")
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    if top_k is not None and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, kind="stable")
        cumulative = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
        mask = np.zeros_like(p, dtype=bool)
        mask[keep] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    return int(rng.choice(p.size, p=p))


def generate(model: GPT, prompt_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             rng=None, use_cache=True, on_token=None, return_logits=False):
    """Continue ``prompt_ids`` (1-D) by ``max_new_tokens`` tokens.

    The model always conditions on the window ``tokens[start:]``. While the
    sequence fits in the context, start = 0. At the context limit the window
    slides forward by half a context (start += context // 2): every token still
    sees at least context/2 tokens of history. With ``use_cache`` the keys and
    values of the window are kept (one KVCache per block) and each new token
    costs one position's forward; when the window slides, the cache is rebuilt
    by recomputing the kept half. Without the cache each step recomputes the
    whole window; both paths give the same logits (tested in float64).

    on_token(id) is called as each token is chosen (streaming output).
    Returns the new ids (and the logits of every step if return_logits).
    """
    rng = np.random.default_rng() if rng is None else rng
    context = model.config.context
    tokens = [int(t) for t in np.asarray(prompt_ids).reshape(-1)]
    if not tokens:
        raise ValueError("generate: the prompt is empty; give at least one token")
    check_ids(np.asarray(tokens), model.config.vocab_size, name="prompt ids", who="generate")
    was_training = model.training
    model.eval()
    start = max(0, len(tokens) - context)
    caches, new, all_logits = None, [], []
    for _ in range(max_new_tokens):
        if len(tokens) - start > context:                               # the window is full
            start = len(tokens) - context // 2
            caches = None                                               # positions moved: rebuild
        if use_cache and caches is not None:                            # one new position
            logits = model.decode(np.array([tokens[-1:]]), caches)[0]
        else:
            window = np.array([tokens[start:]])                         # (1, Tw)
            if use_cache:
                caches = model.new_kv_caches(1)
            logits = model.forward(window, kv_caches=caches)[0, -1]
        if return_logits:
            all_logits.append(logits.copy())
        token = sample_next(logits, rng, temperature, top_k, top_p)
        tokens.append(token)
        new.append(token)
        if on_token is not None:
            on_token(token)
    model.train(was_training)
    return (new, all_logits) if return_logits else new
