"""A word-level tokenizer for short captions ("a small red circle in the top left").

Text is lowercased and split on everything that is not a letter or a digit,
so "A red CIRCLE, top-left." gives the words a, red, circle, top, left, and
"a handwritten 7" gives a, handwritten, 7 (a run of digits is a word too:
dropping it would drop the class of a digit caption). The vocabulary is
the special tokens followed by the words of the training captions, sorted:

    0 [PAD]   fills a caption up to the context; never attended to (causal mask)
    1 [EOT]   end of text: CLIP reads the caption's embedding at this position
    2 [UNK]   any word not seen in training (never an error)
    3 ...     the words, in alphabetical order

Why words and not bytes for CLIP's captions: the captions are made from a
few dozen words, so a word is a whole concept (colour, shape, place) in one
token; a caption is ~8 tokens instead of ~35 bytes (attention costs T^2), and
the text tower does not spend its capacity learning to spell. Compositional
generalisation (a never-seen "green triangle") needs only that "green" and
"triangle" were each seen, which a word vocabulary makes explicit.
"""

from __future__ import annotations

import json
import re

import numpy as np

from ..core import check_ids

PAD, EOT, UNK = "[PAD]", "[EOT]", "[UNK]"
SPECIALS = (PAD, EOT, UNK)
_WORD = re.compile(r"[a-z]+|[0-9]+")


def split_words(text):
    """Lowercase words of ``text``: runs of the letters a-z or of the digits 0-9;
    everything else (spaces, punctuation, accents) separates."""
    if not isinstance(text, str):
        raise TypeError(f"WordTokenizer: expected a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Words <-> ids with [PAD] = 0, [EOT] = 1, [UNK] = 2.

    encode(text) -> (T,) ids, no [EOT];  encode_batch(texts, context) -> (B, context)
    ids, each caption ending in [EOT] and padded with [PAD].
    """

    type = "words"
    pad_id, eot_id, unk_id = 0, 1, 2

    def __init__(self, words):
        words = list(words)
        if len(set(words)) != len(words):
            raise ValueError("WordTokenizer: the word list has duplicates")
        for w in words:
            if not isinstance(w, str) or not _WORD.fullmatch(w):
                raise ValueError(f"WordTokenizer: {w!r} is not a word "
                                 "(lowercase letters a-z, or digits 0-9)")
        self.tokens = list(SPECIALS) + words
        self.ids = {w: i for i, w in enumerate(self.tokens)}

    @classmethod
    def train(cls, texts):
        """The vocabulary of ``texts``: every word that occurs, sorted."""
        if isinstance(texts, str):
            raise TypeError("WordTokenizer.train expects a list of captions, got one str")
        words = set()
        for text in texts:
            words.update(split_words(text))
        if not words:
            raise ValueError("WordTokenizer.train: the captions contain no words")
        return cls(sorted(words))

    @property
    def vocab_size(self):
        return len(self.tokens)

    def encode(self, text):
        """(T,) int32 ids of the words of ``text``; unknown words become [UNK]."""
        return np.array([self.ids.get(w, self.unk_id) for w in split_words(text)], np.int32)

    def encode_batch(self, texts, context):
        """(B, context) int32 ids: each caption, then [EOT], then [PAD] up to ``context``.

        A caption of more than context - 1 words is truncated to its first
        context - 1 words, so that [EOT] always fits (CLIP does the same).
        """
        if isinstance(texts, str):
            texts = [texts]
        if context < 2:
            raise ValueError(f"WordTokenizer.encode_batch: context must be >= 2 "
                             f"(a word and [EOT]), got {context}")
        ids = np.full((len(texts), context), self.pad_id, np.int32)       # (B, T)
        for row, text in enumerate(texts):
            words = self.encode(text)[:context - 1]
            ids[row, :len(words)] = words
            ids[row, len(words)] = self.eot_id
        return ids

    def decode(self, ids):
        """Words joined by spaces; stops at [EOT], skips [PAD]."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size == 0:
            return ""
        ids = check_ids(ids, self.vocab_size, who="WordTokenizer.decode")
        words = []
        for i in ids.tolist():
            if i == self.eot_id:
                break
            if i != self.pad_id:
                words.append(self.tokens[i])
        return " ".join(words)

    def to_dict(self):
        return {"type": self.type, "words": self.tokens[len(SPECIALS):]}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("type") != cls.type:
            raise ValueError(f"WordTokenizer.from_dict expects a dict of type {cls.type!r}, "
                             f"got {d.get('type') if isinstance(d, dict) else type(d).__name__!r}")
        return cls(d["words"])

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def __repr__(self):
        return f"WordTokenizer(vocab_size={self.vocab_size})"
