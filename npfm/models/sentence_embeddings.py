"""Sentence embeddings from a BERT encoder, as sentence-transformers makes them:
the encoder's output averaged over the real tokens, then scaled to unit length.

    e = l2_normalize(sum_t m_t h_t / sum_t m_t)      h (B, T, C) the encoder's output,
                                                      m (B, T) the attention mask
"""

from __future__ import annotations

import warnings

import numpy as np

from ..functional.l2_normalize import l2_normalize_forward


def mean_pool(h, attention_mask):
    """The average of h over the real positions: sum_t m_t h_t / max(sum_t m_t, 1e-9).

    h: (B, T, C)   attention_mask: (B, T) 0/1   ->   (B, C)
    """
    m = np.asarray(attention_mask).astype(h.dtype)[:, :, None]       # (B, T, 1)
    return (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)     # (B, C)


def encode_texts(tokenizer, texts, max_len, who="encode_texts"):
    """(ids, segments, attention_mask) (B, T) for single texts, padded to the longest.

    A text longer than ``max_len`` tokens (with [CLS] and [SEP]) is truncated
    with a warning.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"{who}: no text given")
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"{who}: texts must be str, got {type(t).__name__}")
    lengths = [len(tokenizer.encode(t)) + 2 for t in texts]
    too_long = [i for i, n in enumerate(lengths) if n > max_len]
    if too_long:
        warnings.warn(f"{who}: {len(too_long)} text(s) longer than {max_len} tokens "
                      f"(the first has {lengths[too_long[0]]}) truncated to {max_len}",
                      stacklevel=3)
    return tokenizer.encode_batch(texts, max_len=min(max(lengths), max_len))


def sentence_embeddings(model, tokenizer, sentences, max_len=None, batch_size=32):
    """Sentence embeddings as sentence-transformers makes them: the encoder's
    output mean-pooled over the real tokens, then L2-normalised.

    model: a BertModel; sentences: a list of str (or one str). max_len: truncation length
    (default: ``model.max_seq_length`` if set by ``from_pretrained``, else
    the position table). Returns (N, C), unit rows.
    """
    if isinstance(sentences, str):
        sentences = [sentences]
    sentences = list(sentences)
    if not sentences:
        raise ValueError("sentence_embeddings: no sentence given")
    limit = getattr(model, "max_seq_length", model.config.max_len) if max_len is None else max_len
    limit = min(limit, model.config.max_len)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(sentences), batch_size):
        ids, segments, mask = encode_texts(tokenizer, sentences[start:start + batch_size], limit,
                                           who="sentence_embeddings")
        h = model.forward(ids, segments, mask)                       # (B, T, C)
        out.append(l2_normalize_forward(mean_pool(h, mask))[0])      # (B, C) unit rows
    model.train(was_training)
    return np.concatenate(out)                                       # (N, C)
