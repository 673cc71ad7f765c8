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

``arch = "llama"`` is the same decoder in the Llama layout: no position
vectors (RoPE turns queries and keys inside the attention), RMSNorm,
SwiGLU, grouped-query attention (``n_kv_heads``), no biases; and, with
``tie_head = False`` (either arch), a head of its own: logits = h @ W_head.
"""

from dataclasses import dataclass, replace

import numpy as np

from ..config import ConfigMixin, default_hidden
from ..core import Parameter, check_ids
from ..fast import pair
from ..nn import data_parallel
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding
from ..nn.positional import PositionalEmbedding, SinusoidalPositionalEncoding
from .decoder import ARCHS, DecoderStack
from .sampling import check_sampling, sample_next


@dataclass(frozen=True)
class GPTConfig(ConfigMixin):
    """Architecture of a GPT. ``hidden`` defaults to 4 * dim (gpt2) or to
    8/3 * dim rounded up to a multiple of 8 (llama: three matrices of that
    width cost what GELU's two of 4 * dim do).

    arch: "gpt2" or "llama" (then ``positions`` is "rope"); n_kv_heads: the
    key/value heads of grouped-query attention (0: n_heads); tie_head: the
    head shares the token embedding (False: a W_head of its own); rope_base:
    RoPE's base. The defaults are GPT-2's, so older checkpoints load.
    """
    vocab_size: int = 256
    context: int = 128
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    hidden: int = 0
    dropout: float = 0.0
    positions: str = "learned"          # or "sinusoidal"; "rope" with arch "llama"
    arch: str = "gpt2"                  # or "llama"
    n_kv_heads: int = 0                 # 0: n_heads (no grouping)
    tie_head: bool = True
    rope_base: float = 10000.0

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.arch == "llama":
            if self.positions not in ("learned", "rope"):     # learned: the field's default
                raise ValueError(f"arch 'llama' uses positions 'rope', got {self.positions!r}")
            object.__setattr__(self, "positions", "rope")
            if self.hidden == 0:
                object.__setattr__(self, "hidden", -(-8 * self.dim // 3 // 8) * 8)
        default_hidden(self)
        if self.arch == "gpt2" and self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {self.positions!r}")
        if self.n_heads < 1 or self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads} "
                             f"(n_heads must be >= 1)")
        if self.n_kv_heads < 0 or (self.n_kv_heads and self.n_heads % self.n_kv_heads):
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")
        if self.arch == "llama" and (self.dim // self.n_heads) % 2:
            raise ValueError(f"RoPE needs an even head size, got dim / n_heads = "
                             f"{self.dim // self.n_heads}")



PRESETS = {
    # for tests: whole-model gradient checks in seconds
    "tiny": GPTConfig(vocab_size=256, context=16, dim=16, n_layers=2, n_heads=2),
    # the main job: learns to write Python in minutes on a laptop
    "default": GPTConfig(vocab_size=256, context=128, dim=128, n_layers=4, n_heads=4),
    # a bigger model for longer runs
    "large": GPTConfig(vocab_size=256, context=256, dim=256, n_layers=6, n_heads=8),
    # the Llama layout at the default's size: RMSNorm, RoPE, SwiGLU (F = 344), 4 query
    # heads sharing 2 key/value heads, no biases, untied head
    "llama": GPTConfig(vocab_size=256, context=128, dim=128, n_layers=4, n_heads=4,
                       arch="llama", n_kv_heads=2, tie_head=False),
    # for tests
    "tiny-llama": GPTConfig(vocab_size=256, context=16, dim=16, n_layers=2, n_heads=4,
                            arch="llama", n_kv_heads=2, tie_head=False),
}


def preset(name, **overrides):
    """A named preset with some fields replaced (e.g. vocab_size of a BPE tokenizer)."""
    if name not in PRESETS:
        raise ValueError(f"unknown GPT preset {name!r}; choose from {sorted(PRESETS)}")
    if "dim" in overrides and "hidden" not in overrides:
        overrides["hidden"] = 0                              # keep hidden at its default width
    return replace(PRESETS[name], **overrides)


def with_arch(config, arch):
    """``config``'s sizes in the other layout: "llama" gets RoPE, SwiGLU at its
    default width, n_heads / 2 key/value heads (when n_heads is even) and an
    untied head; "gpt2" gets learned positions, 4 * dim, no grouping, a tied head."""
    if arch == config.arch:
        return config
    if arch == "llama":
        kv = config.n_heads // 2 if config.n_heads % 2 == 0 else 0
        return replace(config, arch="llama", positions="rope", hidden=0, n_kv_heads=kv,
                       tie_head=False)
    if arch == "gpt2":
        return replace(config, arch="gpt2", positions="learned", hidden=0, n_kv_heads=0,
                       tie_head=True)
    raise ValueError(f"unknown arch {arch!r}; choose from {ARCHS}")


class GPT(DecoderStack):
    """GPT-2 style language model: forward(ids) -> logits, backward(dlogits)."""

    def __init__(self, config: GPTConfig, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        c = self.config = config
        self.tok_emb = Embedding(c.vocab_size, c.dim, std=0.02, rng=rng, dtype=dtype)
        if c.positions == "learned":
            self.pos = PositionalEmbedding(c.context, c.dim, std=0.01, rng=rng, dtype=dtype)
        elif c.positions == "sinusoidal":
            self.pos = SinusoidalPositionalEncoding(c.context, c.dim, dtype=dtype)
        else:
            self.pos = None                              # RoPE, inside each attention
        self.drop = Dropout(c.dropout)
        self.build_stack(c.dim, c.n_layers, c.n_heads, c.hidden, c.context, rng, dtype, c.dropout,
                         c.n_kv_heads or None, c.arch, c.rope_base)
        if not c.tie_head:
            self.W_head = Parameter((rng.standard_normal((c.dim, c.vocab_size)) * 0.02).astype(dtype))

    def _head_weight(self):
        return self.tok_emb.W.data.T if self.config.tie_head else self.W_head.data  # (C, V)

    def _check(self, ids, offset, who):
        ids = check_ids(ids, self.config.vocab_size, who=who)
        if ids.ndim != 2 or 0 in ids.shape:
            raise ValueError(f"{who}: ids must be (B, T) with B, T >= 1, got shape {ids.shape}")
        if offset + ids.shape[1] > self.config.context:
            raise ValueError(f"{who}: {offset + ids.shape[1]} positions exceed the context of "
                             f"{self.config.context}; crop the input to its last {self.config.context} tokens")
        return ids

    def forward(self, ids, kv_caches=None):
        """ids: (B, T) integers -> logits (B, T, V).

        kv_caches: one KVCache per block for incremental decoding; the new
        tokens then sit at positions cache.length ... cache.length + T - 1.
        """
        offset = kv_caches[0].length if kv_caches else 0
        ids = self._check(ids, offset, "GPT")
        logits = data_parallel.split_forward(self, ids, whole=kv_caches is not None)
        if logits is not None:
            return logits                       # a training batch in micro-batches, one per core
        x = self.tok_emb(ids)                                       # (B, T, C)
        if self.pos is not None:
            x = self.pos(x, offset=offset)                          # (B, T, C)
        x = self.drop(x)
        h = self.forward_stack(x, kv_caches)                        # (B, T, C)
        head, self._head_backward = pair("linear")
        logits, self._cache = head(h, self._head_weight())          # (B, T, V)
        return logits

    def backward(self, dlogits):
        """dlogits: (B, T, V). Fills every Parameter's grad; ids have no gradient."""
        if data_parallel.ran_split(self):
            return data_parallel.split_backward(self, dlogits)   # the micro-batches' replicas
        cache = self._saved()
        dlogits = self._check_dy(dlogits, self.config.vocab_size)
        dh, dWT, _ = self._head_backward(dlogits, cache)            # (B, T, C), (C, V)
        if self.config.tie_head:
            self.tok_emb.W.grad += dWT.T                            # the head's share
        else:
            self.W_head.grad += dWT
        dx = self.backward_stack(dh)
        dx = self.drop.backward(dx)
        if self.pos is not None:
            dx = self.pos.backward(dx)
        self.tok_emb.backward(dx)                                   # the embedding's share
        return None

    def decode(self, ids, kv_caches):
        """ids: (B, 1), one new token per sequence -> logits (B, V) of the token after it.

        The forward of a single new position, the work a KV cache leaves for
        each sampled token: the earlier positions' keys and values come from
        ``kv_caches`` (filled by ``forward(..., kv_caches)``), and the new
        position's own are appended. The arithmetic is forward's for T = 1
        (the tests hold the two equal bit for bit). Inference only.
        """
        if len(kv_caches) != len(self.blocks):
            raise ValueError(f"GPT.decode: expected {len(self.blocks)} KV caches, got {len(kv_caches)}")
        if kv_caches[0].length >= self.config.context:
            raise ValueError(f"GPT.decode: the KV caches are full ({self.config.context} positions)")
        ids = self._check(ids, kv_caches[0].length, "GPT.decode")
        if ids.shape[1] != 1:
            raise ValueError(f"GPT.decode: expected ids (B, 1), got shape {ids.shape}")
        return self._decode(ids, kv_caches)

    def _decode(self, ids, kv_caches):
        """decode without its checks, for ``generate`` (its ids are sampled in range)."""
        x = self.tok_emb.infer(ids)                                               # (B, 1, C)
        if self.pos is not None:
            x = self.pos.infer(x, offset=kv_caches[0].length)                     # (B, 1, C)
        h = self.decode_stack(x[:, 0], kv_caches)                                 # (B, C)
        return pair("linear")[0](h, self._head_weight())[0]                       # (B, V)


# ----- sampling ---------------------------------------------------------------

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
    check_sampling(temperature, top_k, top_p)
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
            logits = model._decode(np.array([tokens[-1:]]), caches)[0]
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
