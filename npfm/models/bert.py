"""BERT: a bidirectional transformer encoder, its pre-training heads and its
fine-tuning heads. (Hugging Face checkpoints are read and written by
``npfm.interop.hf_bert``; sentence embeddings are ``npfm.models.sentence_embeddings``.)

Forward, for token ids, segment ids and an attention mask, all (B, T):

    x = E_tok[ids] + E_seg[segments] + P[:T]     three embeddings, summed    (B, T, C)
    x = dropout(LayerNorm(x))
    x = block_l(x, mask)   for l = 1..L          post-LN, bidirectional      (B, T, C)
    h = x                                        the sequence output         (B, T, C)
    pooled = tanh(h[:, 0] @ W_pool + b_pool)     the [CLS] position's summary (B, C)

The attention mask (1 = real token, 0 = padding) is a *key-padding* mask: no
position attends to padding, so the outputs at real positions do not depend
on how much padding follows them.

Heads, each a small Module on top of h or pooled:

    MLM    logits = LN(gelu(h_sel @ W_t + b_t)) @ E_tok^T + b_vocab     (N, V)
           h_sel: the N masked positions only; the decoder is tied to the
           token embedding, so E_tok receives gradient from both ends
    NSP    logits = pooled @ W + b                                     (B, 2)
    sequence classification   dropout(pooled) @ W + b                  (B, K)
    token classification      dropout(h) @ W + b                       (B, T, K)

Backward, in reverse: each head returns dh (and dpooled); the pooler sends
dpooled back to position 0 of h; then the blocks in reverse, the embedding
LayerNorm, the positions, and finally each embedding table takes its rows.

Inputs longer than the position table (``max_len``) are refused by the model
with a ValueError; the text helpers (``sentence_embeddings``) truncate to the
limit and warn, as Hugging Face's tokenizers do with ``truncation=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..config import ConfigMixin, default_hidden
from ..core import Module, Parameter, check_ids
from ..nn.activations import GELU, Tanh
from ..nn.block import TransformerBlock
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding
from ..nn.layernorm import LayerNorm
from ..fast import pair
from ..nn.linear import Linear
from ..nn.positional import PositionalEmbedding
# They lived here before; ``from npfm.models.bert import sentence_embeddings`` still works.
from .sentence_embeddings import encode_texts, mean_pool, sentence_embeddings  # noqa: F401

IGNORE_INDEX = -100


# ----- configuration ----------------------------------------------------------

@dataclass(frozen=True)
class BertConfig(ConfigMixin):
    """Architecture of a BERT encoder. ``hidden`` (F) defaults to 4 * dim."""
    vocab_size: int = 30522
    max_len: int = 128              # positions in the table
    type_vocab_size: int = 2        # segments A and B
    dim: int = 128
    n_layers: int = 2
    n_heads: int = 4
    hidden: int = 0
    dropout: float = 0.1
    eps: float = 1e-12              # LayerNorm epsilon, as BERT
    init_std: float = 0.02          # std of the initial weights (HF: initializer_range)

    def __post_init__(self):
        default_hidden(self)
        for name in ("vocab_size", "max_len", "type_vocab_size", "dim", "n_layers", "n_heads",
                     "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"BertConfig: {name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"BertConfig: dim {self.dim} is not divisible by "
                             f"n_heads {self.n_heads}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"BertConfig: dropout must be in [0, 1), got {self.dropout}")


PRESETS = {
    # for tests: whole-model gradient checks in seconds. BERT's init std 0.02 suits
    # width 768; at width 16 the attention path (two 0.02 projections) would carry
    # ~0.3% of the signal and training would sit on a plateau, so 0.1 here.
    "tiny": BertConfig(vocab_size=64, max_len=16, dim=16, n_layers=2, n_heads=2, dropout=0.0,
                       init_std=0.1),
    # the main job: MLM + NSP pre-training on Python's documentation in minutes.
    # Pairs of 64 tokens (pydoc's sentences are short; half the cost of 128), and
    # init std 0.05, which learned faster than 0.02 at this width.
    "default": BertConfig(vocab_size=4096, max_len=64, dim=128, n_layers=2, n_heads=4,
                          dropout=0.0, init_std=0.05),
}


def preset(name, **overrides):
    """A named preset with some fields replaced (e.g. the tokenizer's vocab_size)."""
    if name not in PRESETS:
        raise ValueError(f"unknown BERT preset {name!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# ----- the encoder -----------------------------------------------------------------

class Pooler(Module):
    """pooled = tanh(h[:, 0] @ W + b): a summary of the sequence read at [CLS].

    backward(dpooled (B, C)) -> dh (B, T, C), zero except at position 0.
    """

    def __init__(self, dim, std=0.02, rng=None, dtype=np.float32):
        self.dense = Linear(dim, dim, std=std, rng=rng, dtype=dtype)
        self.act = Tanh()

    def forward(self, h):
        """h: (B, T, C) -> (B, C)"""
        self._cache = h.shape
        return self.act(self.dense(h[:, 0]))                         # (B, C)

    def backward(self, dpooled):
        shape = self._saved()
        dh = np.zeros(shape, dtype=dpooled.dtype)                    # (B, T, C)
        dh[:, 0] = self.dense.backward(self.act.backward(dpooled))
        return dh


class BertModel(Module):
    """The BERT encoder: forward(ids, segments, attention_mask) -> h (B, T, C).

    ``pool(h)`` gives the pooled [CLS] vector (B, C). ``backward(dh, dpooled=None)``
    fills every Parameter's grad (pass dpooled when pool was used).
    """

    def __init__(self, config: BertConfig, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        c = self.config = config
        std = c.init_std
        self.tok_emb = Embedding(c.vocab_size, c.dim, std=std, rng=rng, dtype=dtype)
        self.seg_emb = Embedding(c.type_vocab_size, c.dim, std=std, rng=rng, dtype=dtype)
        self.pos = PositionalEmbedding(c.max_len, c.dim, std=std, rng=rng, dtype=dtype)
        self.emb_ln = LayerNorm(c.dim, eps=c.eps, dtype=dtype)
        self.drop = Dropout(c.dropout)
        self.blocks = [TransformerBlock(c.dim, c.n_heads, c.hidden, causal=False, norm_first=False,
                                        activation="gelu_exact", dropout=c.dropout, eps=c.eps,
                                        std=std, rng=rng, dtype=dtype)
                       for _ in range(c.n_layers)]
        self.pooler = Pooler(c.dim, std=std, rng=rng, dtype=dtype)

    def check_inputs(self, ids, segments=None, attention_mask=None):
        """(ids, segments, mask) checked: (B, T) integers in range, mask boolean or None."""
        c = self.config
        ids = check_ids(ids, c.vocab_size, who="BERT")
        if ids.ndim != 2:
            raise ValueError(f"BERT: ids must be (B, T), got shape {ids.shape}")
        B, T = ids.shape
        if B == 0 or T == 0:
            raise ValueError(f"BERT: empty input (ids of shape {ids.shape}); give at least one "
                             "token, e.g. [CLS] [SEP]")
        if T > c.max_len:
            raise ValueError(f"BERT: {T} positions exceed the position table of {c.max_len}; "
                             f"truncate the input to {c.max_len} tokens")
        if segments is None:
            segments = np.zeros((B, T), dtype=np.int64)              # (B, T) all segment A
        else:
            segments = check_ids(segments, c.type_vocab_size, name="segments", who="BERT")
            if segments.shape != ids.shape:
                raise ValueError(f"BERT: segments have shape {segments.shape}, ids {ids.shape}")
        mask = None
        if attention_mask is not None:
            mask = np.asarray(attention_mask)
            if mask.shape != ids.shape:
                raise ValueError(f"BERT: attention_mask has shape {mask.shape}, ids {ids.shape}")
            if mask.dtype != bool:
                if not np.issubdtype(mask.dtype, np.integer) or not np.isin(mask, (0, 1)).all():
                    raise TypeError(f"BERT: attention_mask must be boolean or 0/1 integers "
                                    f"(1 = real token), got dtype {mask.dtype} with values "
                                    f"{np.unique(mask)[:5].tolist()}")
                mask = mask != 0                                     # (B, T)
        return ids, segments, mask

    def forward(self, ids, segments=None, attention_mask=None):
        """ids, segments, attention_mask: (B, T) -> h: (B, T, C)."""
        ids, segments, mask = self.check_inputs(ids, segments, attention_mask)
        x = self.tok_emb(ids) + self.seg_emb(segments)               # (B, T, C)
        x = self.pos(x)                                              # (B, T, C)
        x = self.drop(self.emb_ln(x))                                # (B, T, C)
        for block in self.blocks:
            x = block(x, mask=mask)                                  # (B, T, C)
        return x

    def pool(self, h):
        """h: (B, T, C) -> pooled (B, C)."""
        return self.pooler(h)

    def backward(self, dh=None, dpooled=None):
        """dh: (B, T, C) and/or dpooled: (B, C). Fills grads; ids have no gradient."""
        if dpooled is not None:
            dh_pool = self.pooler.backward(dpooled)                  # (B, T, C)
            dh = dh_pool if dh is None else dh + dh_pool
        if dh is None:
            raise ValueError("BertModel.backward: give dh, dpooled or both")
        for block in reversed(self.blocks):
            dh = block.backward(dh)
        dx = self.emb_ln.backward(self.drop.backward(dh))            # (B, T, C)
        dx = self.pos.backward(dx)
        self.seg_emb.backward(dx)
        self.tok_emb.backward(dx)
        return None


# ----- heads ----------------------------------------------------------------------------

class MLMHead(Module):
    """Masked-LM head: logits = LN(gelu(h @ W_t + b_t)) @ E^T + b_vocab.

    The decoder E is the token embedding's Parameter itself (tied), so its
    gradient adds to the embedding's. forward(h, select) with a boolean
    select (B, T) scores only the N selected positions: logits (N, V)
    instead of (B, T, V), ~7x fewer rows in the largest product.
    """

    def __init__(self, config: BertConfig, token_embedding: Parameter, rng=None,
                 dtype=np.float32):
        c = config
        self.dense = Linear(c.dim, c.dim, std=c.init_std, rng=rng, dtype=dtype)
        self.act = GELU("none")
        self.ln = LayerNorm(c.dim, eps=c.eps, dtype=dtype)
        self.W_emb = token_embedding                  # tied: the same Parameter object
        self.b_vocab = Parameter(np.zeros(c.vocab_size, dtype), decay=False)

    def forward(self, h, select=None):
        """h: (B, T, C) -> logits (B, T, V); with select (B, T) bool -> (N, V)."""
        shape = h.shape
        if select is not None:
            select = np.asarray(select, dtype=bool)
            if select.shape != shape[:-1]:
                raise ValueError(f"MLMHead: select has shape {select.shape}, expected {shape[:-1]}")
            h = h[select]                                            # (N, C)
        t = self.ln(self.act(self.dense(h)))                         # (N, C)
        decoder, self._decoder_backward = pair("linear")
        logits, lin_cache = decoder(t, self.W_emb.data.T, self.b_vocab.data)  # (N, V)
        self._cache = (lin_cache, select, shape)
        return logits

    def backward(self, dlogits):
        lin_cache, select, shape = self._saved()
        dt, dWT, db = self._decoder_backward(dlogits, lin_cache)     # (N, C), (C, V), (V,)
        self.W_emb.grad += dWT.T                                     # the decoder's share of E
        self.b_vocab.grad += db
        dh = self.dense.backward(self.act.backward(self.ln.backward(dt)))  # (N, C)
        if select is None:
            return dh
        dh_full = np.zeros(shape, dtype=dh.dtype)                    # (B, T, C)
        dh_full[select] = dh
        return dh_full


class Classifier(Module):
    """logits = dropout(x) @ W + b: the fine-tuning head, on pooled (B, C) or h (B, T, C)."""

    def __init__(self, dim, n_classes, dropout=0.1, std=0.02, rng=None, dtype=np.float32):
        self.drop = Dropout(dropout)
        self.fc = Linear(dim, n_classes, std=std, rng=rng, dtype=dtype)

    def forward(self, x):
        return self.fc(self.drop(x))

    def backward(self, dy):
        return self.drop.backward(self.fc.backward(dy))


# ----- whole models -------------------------------------------------------------------------

class BertForPreTraining(Module):
    """Encoder + MLM head + NSP head.

    forward(ids, segments, attention_mask, mlm_select) -> (mlm_logits (N, V), nsp_logits (B, 2))
    backward(dmlm_logits, dnsp_logits)
    """

    def __init__(self, config: BertConfig, seed=0, dtype=np.float32):
        self.config = config
        self.bert = BertModel(config, seed=seed, dtype=dtype)
        rng = np.random.default_rng(seed + 1)
        self.mlm = MLMHead(config, self.bert.tok_emb.W, rng=rng, dtype=dtype)
        self.nsp = Linear(config.dim, 2, std=config.init_std, rng=rng, dtype=dtype)

    def forward(self, ids, segments=None, attention_mask=None, mlm_select=None):
        h = self.bert(ids, segments, attention_mask)                 # (B, T, C)
        mlm_logits = self.mlm(h, mlm_select)                         # (N, V)
        nsp_logits = self.nsp(self.bert.pool(h))                     # (B, 2)
        return mlm_logits, nsp_logits

    def backward(self, dmlm_logits, dnsp_logits):
        dh = self.mlm.backward(dmlm_logits)                          # (B, T, C)
        dpooled = self.nsp.backward(dnsp_logits)                     # (B, C)
        return self.bert.backward(dh, dpooled)


class JoinedPreTrainingOutputs(Module):
    """A BertForPreTraining whose two outputs are joined into one flat array,
    [mlm_logits.ravel(), nsp_logits.ravel()]: the one-output form that
    ``npfm.gradcheck.check_module`` checks. mlm_select is fixed at construction.
    """

    def __init__(self, model: BertForPreTraining, mlm_select=None):
        self.model, self.mlm_select = model, mlm_select

    def forward(self, ids, segments=None, attention_mask=None):
        mlm, nsp = self.model(ids, segments, attention_mask, mlm_select=self.mlm_select)
        self._cache = mlm.shape
        return np.concatenate([mlm.reshape(-1), nsp.reshape(-1)])      # (N * V + B * 2,)

    def backward(self, dy):
        shape = self._saved()
        n = math.prod(shape)
        return self.model.backward(dy[:n].reshape(shape), dy[n:].reshape(-1, 2))


class BertForSequenceClassification(Module):
    """Encoder + a classifier on the pooled [CLS] vector: logits (B, n_classes).

    encoder: an existing BertModel to fine-tune (e.g. from ``from_pretrained``);
    None builds a fresh one from ``config``.
    """

    def __init__(self, config: BertConfig, n_classes, seed=0, dtype=np.float32, encoder=None):
        self.config = config
        self.n_classes = n_classes
        self.bert = BertModel(config, seed=seed, dtype=dtype) if encoder is None else encoder
        self.classifier = Classifier(config.dim, n_classes, config.dropout, config.init_std,
                                     rng=np.random.default_rng(seed + 2), dtype=dtype)

    def forward(self, ids, segments=None, attention_mask=None):
        h = self.bert(ids, segments, attention_mask)                 # (B, T, C)
        return self.classifier(self.bert.pool(h))                    # (B, K)

    def backward(self, dlogits):
        return self.bert.backward(dpooled=self.classifier.backward(dlogits))


class BertForTokenClassification(Module):
    """Encoder + a classifier at every position: logits (B, T, n_labels)."""

    def __init__(self, config: BertConfig, n_labels, seed=0, dtype=np.float32, encoder=None):
        self.config = config
        self.n_labels = n_labels
        self.bert = BertModel(config, seed=seed, dtype=dtype) if encoder is None else encoder
        self.classifier = Classifier(config.dim, n_labels, config.dropout, config.init_std,
                                     rng=np.random.default_rng(seed + 3), dtype=dtype)

    def forward(self, ids, segments=None, attention_mask=None):
        h = self.bert(ids, segments, attention_mask)                 # (B, T, C)
        return self.classifier(h)                                    # (B, T, K)

    def backward(self, dlogits):
        return self.bert.backward(self.classifier.backward(dlogits))
