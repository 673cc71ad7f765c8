"""What the text-to-image model learns from: the stream of a caption and an
image's codes, the inputs and targets cut from it, and the loss that weights
the caption's part and the image's part (see ``npfm.models.dalle``).

    stream   = [BOS] t_1 ... t_L [SEP] c_1 ... c_N                     (B, L + 2 + N)
    inputs   = stream[:, :-1]    targets = stream[:, 1:]              (B, T)
    loss     = w * CE(text positions) + (1 - w) * CE(image positions),   w = 1/8

[PAD] targets after [EOT] and the [SEP] target (always at the same place) are
not counted. Each CE is the mean over its counted targets.
"""

from __future__ import annotations

import numpy as np

from ..core import Module, check_ids
from ..fast import pair
from ..nn.cross_entropy import check_targets

IGNORE = -100                 # a target the loss does not count (cross_entropy's ignore_index)


def make_stream(text_ids, codes, config):
    """[BOS] text [SEP] codes as joint ids (B, L + 2 + N).

    text_ids: (B, L) caption ids padded to L (``WordTokenizer.encode_batch(texts, L)``)
    codes: (B, N) or (B, h, w) image codes in [0, K).
    """
    c = config
    text_ids = check_ids(text_ids, c.text_vocab, name="text ids", who="make_stream")
    codes = check_ids(codes, c.n_codes, name="image codes", who="make_stream")
    if text_ids.ndim != 2 or text_ids.shape[1] != c.text_len:
        raise ValueError(f"make_stream: text ids must be (B, {c.text_len}), got shape {text_ids.shape}")
    B = text_ids.shape[0]
    if codes.ndim == 3:
        codes = codes.reshape(codes.shape[0], -1)                     # (B, N), row by row
    if codes.shape != (B, c.n_image_tokens):
        raise ValueError(f"make_stream: codes must be (B, {c.n_image_tokens}) or "
                         f"(B, {c.grid}, {c.grid}) with B = {B}, got shape {codes.shape}")
    bos = np.full((B, 1), c.bos_id, np.int64)                          # (B, 1)
    sep = np.full((B, 1), c.sep_id, np.int64)                          # (B, 1)
    return np.concatenate([bos, text_ids, sep, codes + c.code_offset], axis=1)   # (B, L+2+N)


def inputs_and_targets(stream, config, pad_id=0):
    """(inputs, targets), both (B, T): stream[:, :-1] and stream[:, 1:] with the
    [PAD] targets and the [SEP] target set to IGNORE (nothing to learn there)."""
    c = config
    inputs = stream[:, :-1]                                            # (B, T)
    targets = stream[:, 1:].copy()                                     # (B, T)
    text = targets[:, :c.n_text_positions]                             # a view
    text[text == pad_id] = IGNORE
    targets[:, c.text_len] = IGNORE                                    # the [SEP] target
    return inputs, targets


def text_image_loss_forward(logits, targets, n_text, text_weight=1 / 8):
    """loss = w * CE(logits[:, :n_text]) + (1 - w) * CE(logits[:, n_text:]).

    logits: (B, T, V)   targets: (B, T) joint ids or IGNORE   n_text: the
    number of text positions (L + 1)   ->   loss (0-d), cache.
    Each CE is the mean over its counted targets, so the weights say how much
    each *part* matters, whatever the number of tokens in it.
    """
    w = float(text_weight)
    ce_forward, ce_backward = pair("cross_entropy")
    for part in (slice(None, n_text), slice(n_text, None)):
        check_targets(logits[:, part], targets[:, part], IGNORE, who="text_image_loss")
    text_loss, text_cache = ce_forward(logits[:, :n_text], targets[:, :n_text], IGNORE)
    image_loss, image_cache = ce_forward(logits[:, n_text:], targets[:, n_text:], IGNORE)
    loss = w * text_loss + (1.0 - w) * image_loss
    return loss, {"parts": (float(text_loss), float(image_loss)), "w": w,
                  "backward": ce_backward, "caches": (text_cache, image_cache)}


def text_image_loss_parts(cache):
    """(text loss, image loss) of the forward that made ``cache``: the public way out."""
    return cache["parts"]


def text_image_loss_backward(dloss, cache):
    """dloss: scalar -> dlogits (B, T, V): each part's CE gradient scaled by its weight."""
    w, ce_backward, (text_cache, image_cache) = cache["w"], cache["backward"], cache["caches"]
    dtext = ce_backward(float(dloss) * w, text_cache)                   # (B, n_text, V)
    dimage = ce_backward(float(dloss) * (1.0 - w), image_cache)         # (B, T - n_text, V)
    return np.concatenate([dtext, dimage], axis=1)                      # (B, T, V)


class TextImageLoss(Module):
    """The training objective as a Module: forward(stream) -> weighted loss (0-d).

    Wraps a DALLE model (its Parameters are the model's): inputs and targets come
    from the stream, then ``text_image_loss_forward`` on the model's logits.
    After forward, ``text_loss`` and ``image_loss`` hold the two parts.
    """

    def __init__(self, model, pad_id=0):
        self.model, self.pad_id = model, pad_id

    def forward(self, stream):
        c = self.model.config
        inputs, targets = inputs_and_targets(np.asarray(stream), c, self.pad_id)
        logits = self.model.forward(inputs)                            # (B, T, V)
        loss, self._cache = text_image_loss_forward(logits, targets, c.n_text_positions,
                                                    c.text_weight)
        self.text_loss, self.image_loss = text_image_loss_parts(self._cache)
        return loss

    def backward(self, dloss=1.0):
        self.model.backward(text_image_loss_backward(dloss, self._saved()))
        return None
