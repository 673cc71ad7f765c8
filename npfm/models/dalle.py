"""Text-to-image in the manner of DALL-E: one decoder-only transformer over a
caption's tokens followed by an image's tokens, with a hand-written backward.

An image becomes a grid of h x w discrete codes (``npfm.tokenizers.vq``), read
row by row; a caption becomes word ids (``npfm.tokenizers.words``). Both go
into ONE stream, and a GPT learns to continue it:

    [BOS]  t_1 ... t_L  [SEP]  c_1 ... c_N           L text slots, N = h * w image codes

The text slots hold the caption's words, then [EOT], then [PAD] up to L. The
joint vocabulary lists the text ids, the two markers, then the codes:

    0 ... Vt-1           text ids (WordTokenizer: [PAD] 0, [EOT] 1, [UNK] 2, words)
    Vt                   [BOS]
    Vt + 1               [SEP]
    Vt + 2 ... Vt+1+K    image code k has joint id Vt + 2 + k        V = Vt + 2 + K

The model reads stream[:-1] (T = L + 1 + N positions) and predicts stream[1:].
Positions 0 ... L (the *text part*: [BOS] and the L slots) predict text;
positions L+1 ... L+N (the *image part*: [SEP] and codes c_1 ... c_{N-1})
predict the codes, position L + 1 + j predicting c_{j+1}.

Forward, for joint ids (B, T):

    x = E[ids] + P                       token embedding + positions          (B, T, C)
        P[t] = P_text[t]                 text part: a learned row per slot
        P[L+1+j] = R[j // w] + Q[j % w]  image part: the row and column of the
                                         grid cell this position predicts
    x = block_l(x)   for l = 1..L'       pre-LN causal blocks (as GPT)         (B, T, C)
    logits = LayerNorm(x) @ W_head                                            (B, T, V)
    logits[t, v] = -inf unless allowed[t, v]    the logits mask: text positions
                                         may only predict text ids, image
                                         positions only codes

The loss weights the two parts as DALL-E did (1/8 text, 7/8 image;
``npfm.models.dalle_loss``):

    loss = w * CE(text positions) + (1 - w) * CE(image positions),   w = 1/8

each CE the mean over its counted targets; [PAD] targets after [EOT] and the
[SEP] target (always at the same place) are not counted. Because masked
logits are -inf, each CE is a softmax over the allowed ids only.

Backward, in reverse: the mask's backward zeroes dlogits where it is -inf,
then the head, ln_f, the blocks in reverse, the positions (dP_text = dy
summed over the batch on the text part; on the image part dR[r] and dQ[c]
sum dy over the cells of row r and of column c) and finally dE[ids] += dx.

Sampling (``generate_codes``) feeds [BOS] caption [SEP] once, then one code
at a time with a KV cache per block, drawing each code from softmax(logits /
temperature) over the codes only (optionally the top k of them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..config import ConfigMixin, default_hidden
from ..core import Module, Parameter, check_ids
from ..fast import pair
from ..nn.dropout import Dropout
from ..nn.embedding import Embedding
from .decoder import DecoderStack
# The objective lived here before; ``from npfm.models.dalle import TextImageLoss`` still works.
from .dalle_loss import (IGNORE, TextImageLoss, inputs_and_targets, make_stream,  # noqa: F401
                         text_image_loss_backward, text_image_loss_forward, text_image_loss_parts)
from .sampling import check_sampling, sample_from_logits


@dataclass(frozen=True)
class DALLEConfig(ConfigMixin):
    """Architecture of a text-to-image transformer.

    text_vocab: size Vt of the caption tokenizer's vocabulary ([PAD] = 0, [EOT] = 1).
    text_len: L, caption slots (words, [EOT], [PAD]s); captions have at most L - 1 words.
    n_codes: K, codes of the image tokenizer; image_size / patch: the grid is
    (image_size / patch) squared, read row by row. ``hidden`` defaults to 4 * dim.
    text_weight: the text part's share of the loss (DALL-E: 1/8).
    """
    text_vocab: int = 32
    text_len: int = 12
    n_codes: int = 64
    image_size: int = 16
    patch: int = 2
    channels: int = 3
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    hidden: int = 0
    dropout: float = 0.0
    text_weight: float = 1 / 8

    def __post_init__(self):
        default_hidden(self)
        if self.dim % self.n_heads:
            raise ValueError(f"DALLEConfig: dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.patch < 1 or self.image_size % self.patch:
            raise ValueError(f"DALLEConfig: patch {self.patch} does not divide the image size "
                             f"{self.image_size}")
        if self.text_len < 2:
            raise ValueError(f"DALLEConfig: text_len must be >= 2 (a word and [EOT]), got {self.text_len}")
        if self.text_vocab < 2 or self.n_codes < 1:
            raise ValueError(f"DALLEConfig: need text_vocab >= 2 and n_codes >= 1, got "
                             f"{self.text_vocab} and {self.n_codes}")
        if not 0.0 <= self.text_weight <= 1.0:
            raise ValueError(f"DALLEConfig: text_weight must be in [0, 1], got {self.text_weight}")

    # ----- the layout of the stream and of the joint vocabulary -----
    @property
    def grid(self):
        """Codes per side of the image grid: image_size / patch."""
        return self.image_size // self.patch

    @property
    def n_image_tokens(self):
        """N = grid * grid codes per image."""
        return self.grid * self.grid

    @property
    def n_text_positions(self):
        """Input positions of the text part: [BOS] and the L text slots."""
        return self.text_len + 1

    @property
    def context(self):
        """T = L + 1 + N input positions: the stream [BOS] L [SEP] N without its last code."""
        return self.n_text_positions + self.n_image_tokens

    @property
    def bos_id(self):
        return self.text_vocab

    @property
    def sep_id(self):
        return self.text_vocab + 1

    @property
    def code_offset(self):
        """Joint id of image code 0."""
        return self.text_vocab + 2

    @property
    def vocab_size(self):
        """V = Vt + 2 + K."""
        return self.text_vocab + 2 + self.n_codes



PRESETS = {
    # for tests: whole-model gradient checks in seconds (a 2 x 2 grid of codes)
    "tiny": DALLEConfig(text_vocab=7, text_len=3, n_codes=5, image_size=4, patch=2, dim=8,
                        n_layers=2, n_heads=2),
    # the main job on 16 x 16 shapes: 2 x 2 patches, an 8 x 8 grid of codes out of 128
    "default": DALLEConfig(text_len=12, n_codes=128, image_size=16, patch=2, dim=96,
                           n_layers=4, n_heads=4),
}


def preset(name, **overrides):
    """A named preset with some fields replaced (e.g. text_vocab of the tokenizer).
    A new ``dim`` without a ``hidden`` gets hidden = 4 * dim again."""
    if name not in PRESETS:
        raise ValueError(f"unknown DALL-E preset {name!r}; choose from {sorted(PRESETS)}")
    if "dim" in overrides and "hidden" not in overrides:
        overrides["hidden"] = 0
    return replace(PRESETS[name], **overrides)


# ----- positions: one row per text slot, a row and a column per image cell ----------

def text_image_positions_forward(x, text_pos, row_pos, col_pos, offset=0):
    """y = x + P[offset : offset + T], P the (L + 1 + h * w, C) table of every position:

        P[t]         = text_pos[t]                      t < L + 1 (the text part)
        P[L + 1 + j] = row_pos[j // w] + col_pos[j % w]  image part, cell j in row order

    x: (B, T, C)   text_pos: (L + 1, C)   row_pos: (h, C)   col_pos: (w, C)
    -> y: (B, T, C), cache
    """
    n_text, C = text_pos.shape
    h, w = row_pos.shape[0], col_pos.shape[0]
    T = x.shape[1]
    if offset + T > n_text + h * w:
        raise ValueError(f"text-image positions: positions {offset} ... {offset + T - 1} requested, "
                         f"the stream has {n_text + h * w} ({n_text} text + {h}x{w} image)")
    grid = row_pos[:, None, :] + col_pos[None, :, :]                    # (h, w, C)
    table = np.concatenate([text_pos, grid.reshape(h * w, C)])         # (L+1+N, C)
    return x + table[offset:offset + T], (n_text, h, w, offset, T)      # (B, T, C)


def text_image_positions_backward(dy, cache):
    """dy: (B, T, C) -> (dx, dtext_pos, drow_pos, dcol_pos). dx = dy; the table's
    gradient is dy summed over the batch, then split: text rows as they are, and
    each grid row (column) sums the gradients of its w (h) cells."""
    n_text, h, w, offset, T = cache
    C = dy.shape[-1]
    dtable = np.zeros((n_text + h * w, C), dy.dtype)                   # (L+1+N, C)
    dtable[offset:offset + T] = dy.sum(axis=0)
    dgrid = dtable[n_text:].reshape(h, w, C)                           # (h, w, C)
    return dy, dtable[:n_text], dgrid.sum(axis=1), dgrid.sum(axis=0)


class TextImagePositions(Module):
    """Learned positions of the stream: text slots, then image rows + columns."""

    def __init__(self, n_text, grid, dim, std=0.01, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        self.text_pos = Parameter((rng.standard_normal((n_text, dim)) * std).astype(dtype), decay=False)
        self.row_pos = Parameter((rng.standard_normal((grid, dim)) * std).astype(dtype), decay=False)
        self.col_pos = Parameter((rng.standard_normal((grid, dim)) * std).astype(dtype), decay=False)

    def forward(self, x, offset=0):
        y, self._cache = text_image_positions_forward(x, self.text_pos.data, self.row_pos.data,
                                                      self.col_pos.data, offset)
        return y

    def infer(self, x, offset=0):
        """x: (B, 1, C), one position -> x + P[offset]: forward's sum, without
        building the whole table (P[offset] is one row, or one row + one column)."""
        n_text, w = self.text_pos.shape[0], self.col_pos.shape[0]
        if offset < n_text:
            return x + self.text_pos.data[offset]                     # (B, 1, C)
        row, col = divmod(offset - n_text, w)
        return x + (self.row_pos.data[row] + self.col_pos.data[col])  # (B, 1, C)

    def backward(self, dy):
        dx, dtext, drow, dcol = text_image_positions_backward(dy, self._saved())
        self.text_pos.grad += dtext
        self.row_pos.grad += drow
        self.col_pos.grad += dcol
        return dx


# ----- the logits mask --------------------------------------------------------------

def logits_mask(config: DALLEConfig, offset=0, T=None):
    """allowed (T, V) boolean for input positions offset ... offset + T - 1:
    text positions may predict the text ids, image positions the codes."""
    c = config
    T = c.context - offset if T is None else T
    position = offset + np.arange(T)                                   # (T,)
    is_text = position < c.n_text_positions                            # (T,)
    is_text_id = np.arange(c.vocab_size) < c.text_vocab                # (V,)
    is_code = np.arange(c.vocab_size) >= c.code_offset                 # (V,)
    return np.where(is_text[:, None], is_text_id[None, :], is_code[None, :])   # (T, V)




# ----- the model ----------------------------------------------------------------------

class DALLE(DecoderStack):
    """forward(ids (B, T)) -> masked logits (B, T, V); backward(dlogits) fills the grads."""

    def __init__(self, config: DALLEConfig, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        c = self.config = config
        self.tok_emb = Embedding(c.vocab_size, c.dim, std=0.02, rng=rng, dtype=dtype)
        self.pos = TextImagePositions(c.n_text_positions, c.grid, c.dim, std=0.01, rng=rng, dtype=dtype)
        self.drop = Dropout(c.dropout)
        self.build_stack(c.dim, c.n_layers, c.n_heads, c.hidden, c.context, rng, dtype, c.dropout)
        self.W_head = Parameter((rng.standard_normal((c.dim, c.vocab_size)) * 0.02).astype(dtype))

    def forward(self, ids, kv_caches=None):
        """ids: (B, T) joint ids -> logits (B, T, V), -inf where the logits mask forbids.

        kv_caches: one KVCache per block for incremental decoding; the new ids
        then sit at positions cache.length ... cache.length + T - 1.
        """
        c = self.config
        ids = check_ids(ids, c.vocab_size, who="DALLE")
        if ids.ndim != 2:
            raise ValueError(f"DALLE: ids must be (B, T), got shape {ids.shape}")
        offset = kv_caches[0].length if kv_caches else 0
        T = ids.shape[1]
        if offset + T > c.context:
            raise ValueError(f"DALLE: {offset + T} positions exceed the stream's {c.context} "
                             f"({c.n_text_positions} text + {c.n_image_tokens} image)")
        x = self.tok_emb(ids)                                          # (B, T, C)
        x = self.pos(x, offset=offset)                                 # (B, T, C)
        x = self.drop(x)
        h = self.forward_stack(x, kv_caches)                           # (B, T, C)
        head, self._head_backward = pair("linear")
        logits, head_cache = head(h, self.W_head.data)                 # (B, T, V)
        allowed = logits_mask(c, offset, T)                            # (T, V)
        np.copyto(logits, -np.inf, where=~allowed)
        self._cache = (head_cache, allowed)
        return logits

    def backward(self, dlogits):
        """dlogits: (B, T, V). Fills every Parameter's grad; ids have no gradient."""
        head_cache, allowed = self._saved()
        dlogits = np.where(allowed, dlogits, 0.0)                      # the mask: no gradient where -inf
        dh, dW_head, _ = self._head_backward(dlogits, head_cache)      # (B, T, C), (C, V)
        self.W_head.grad += dW_head
        dx = self.backward_stack(dh)
        dx = self.drop.backward(dx)
        dx = self.pos.backward(dx)
        self.tok_emb.backward(dx)
        return None

    def decode(self, ids, kv_caches):
        """ids: (B, 1), one new joint id per stream -> masked logits (B, V) of the
        next position; forward's arithmetic for T = 1 (tested equal bit for bit)."""
        c = self.config
        offset = kv_caches[0].length
        ids = check_ids(ids, c.vocab_size, who="DALLE.decode")
        if ids.ndim != 2 or ids.shape[1] != 1 or offset + 1 > c.context:
            raise ValueError(f"DALLE.decode: expected ids (B, 1) with room in the caches "
                             f"({offset} of {c.context} positions used), got shape {ids.shape}")
        return self._decode(ids, kv_caches)

    def _decode(self, ids, kv_caches):
        """decode without its checks, for ``generate_codes`` (its codes are sampled in range)."""
        offset = kv_caches[0].length
        x = self.pos.infer(self.tok_emb.infer(ids), offset=offset)[:, 0]  # (B, C)
        h = self.decode_stack(x, kv_caches)                            # (B, C)
        logits = pair("linear")[0](h, self.W_head.data)[0]             # (B, V)
        np.copyto(logits, -np.inf, where=~logits_mask(self.config, offset, 1)[0])
        return logits


# ----- sampling -------------------------------------------------------------------------

def generate_codes(model: DALLE, text_ids, rng=None, temperature=1.0, top_k=None,
                   use_cache=True, return_logits=False):
    """Sample image codes (B, N) for captions text_ids (B, L), one code at a time.

    The prompt [BOS] text [SEP] goes through the model once; each sampled code
    is then fed back alone, its keys and values appended to the KV cache of
    every block. Without the cache each step reruns the whole prefix (the
    same logits; tested in float64). Only the code logits are sampled from:
    the logits mask already makes the others -inf.
    Returns codes (B, N) int64 (and the (B, N, K) code logits if return_logits).
    """
    c = model.config
    check_sampling(temperature, top_k)
    rng = np.random.default_rng() if rng is None else rng
    text_ids = check_ids(text_ids, c.text_vocab, name="text ids", who="generate_codes")
    if text_ids.ndim != 2 or text_ids.shape[1] != c.text_len or text_ids.shape[0] == 0:
        raise ValueError(f"generate_codes: text ids must be (B, {c.text_len}) with B >= 1, "
                         f"got shape {text_ids.shape}")
    B, N = text_ids.shape[0], c.n_image_tokens
    prefix = np.concatenate([np.full((B, 1), c.bos_id), text_ids,
                             np.full((B, 1), c.sep_id)], axis=1)          # (B, L+2)
    was_training = model.training
    model.eval()
    caches = model.new_kv_caches(B) if use_cache else None
    codes = np.zeros((B, N), np.int64)                                   # (B, N)
    all_logits = []
    logits = model.forward(prefix, kv_caches=caches)[:, -1]              # (B, V)
    for j in range(N):
        code_logits = logits[:, c.code_offset:]                          # (B, K)
        if return_logits:
            all_logits.append(code_logits.copy())
        codes[:, j] = sample_from_logits(code_logits, rng, temperature, top_k)
        if j == N - 1:
            break
        if use_cache:
            logits = model._decode(codes[:, j:j + 1] + c.code_offset, caches)     # (B, V)
        else:
            sequence = np.concatenate([prefix, codes[:, :j + 1] + c.code_offset], axis=1)
            logits = model.forward(sequence)[:, -1]
    model.train(was_training)
    if return_logits:
        return codes, np.stack(all_logits, axis=1)                       # (B, N, K)
    return codes


def check_codebook(config: DALLEConfig, tokenizer):
    """Refuse an image tokenizer that does not match the model: its patch size,
    image size, channels and number of codes must be the ones the model was
    trained on (codes from a 4 x 4 codebook mean nothing to a 2 x 2 model)."""
    c = config
    problems = []
    if tokenizer.patch != c.patch:
        problems.append(f"the codebook uses {tokenizer.patch}x{tokenizer.patch} patches but the "
                        f"model was trained on {c.patch}x{c.patch} patches")
    if tuple(tokenizer.image_size) != (c.image_size, c.image_size):
        problems.append(f"the codebook was fitted on {tokenizer.image_size[0]}x"
                        f"{tokenizer.image_size[1]} images, the model on {c.image_size}x{c.image_size}")
    if tokenizer.n_codes != c.n_codes:
        problems.append(f"the codebook has {tokenizer.n_codes} codes, the model {c.n_codes}")
    if tokenizer.channels != c.channels:
        problems.append(f"the codebook has {tokenizer.channels} channels, the model {c.channels}")
    if problems:
        raise ValueError("codebook and model do not match: " + "; ".join(problems))
    return tokenizer


def encode_captions(tokenizer, captions, config: DALLEConfig):
    """Caption strings -> text ids (B, L) for the model, with checks.

    Unknown words become [UNK] (the model saw [UNK] during training, see the
    job's word dropout); a caption longer than L - 1 words keeps its first
    L - 1. An empty caption (no word at all) is refused: there is nothing to draw.
    """
    if isinstance(captions, str):
        captions = [captions]
    if len(captions) == 0:
        raise ValueError("encode_captions: no captions")
    for caption in captions:
        if not isinstance(caption, str):
            raise TypeError(f"a caption must be a str, got {type(caption).__name__}")
        if tokenizer.encode(caption).size == 0:
            raise ValueError(f"the caption {caption!r} is empty: it has no words to draw from "
                             "(try e.g. 'a large blue square in the bottom right')")
    if tokenizer.vocab_size != config.text_vocab:
        raise ValueError(f"the caption tokenizer has {tokenizer.vocab_size} words, the model "
                         f"expects {config.text_vocab}")
    return tokenizer.encode_batch(list(captions), config.text_len).astype(np.int64)   # (B, L)

