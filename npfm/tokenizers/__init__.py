"""Tokenizers: text -> int32 ids and back.

Every tokenizer has ``vocab_size`` and ``type``, ``encode(text) -> ids``,
``decode(ids) -> text``, ``decode_bytes(ids)``, ``stream_decoder()``, and
``to_dict()`` / ``from_dict(d)`` and ``save(path)`` / ``load(path)`` (JSON),
so a checkpoint can carry the tokenizer it was trained with.

    ByteTokenizer   the 256 UTF-8 byte values        (bytes.py)
    BPETokenizer    byte-level BPE, as in GPT-2      (bpe.py)
    WordPieceTokenizer  BERT's WordPiece             (wordpiece.py)
    WordTokenizer   whole words of short captions    (words.py)
"""

import json

from .bpe import BPETokenizer
from .bytes import ByteLevelTokenizer, ByteTokenizer, StreamDecoder
from .wordpiece import WordPieceTokenizer
from .words import WordTokenizer

# d["type"] -> the class that reads it. Add a tokenizer by adding a line here.
TOKENIZER_TYPES = {
    "bytes": ByteTokenizer,
    "bpe": BPETokenizer,
    "wordpiece": WordPieceTokenizer,
    "words": WordTokenizer,
}


def tokenizer_from_dict(d):
    """The tokenizer that ``to_dict()`` described, of whichever type it names."""
    if not isinstance(d, dict):
        raise TypeError(f"tokenizer_from_dict expects a dict, got {type(d).__name__}")
    kind = d.get("type")
    if kind not in TOKENIZER_TYPES:
        raise ValueError(f"unknown tokenizer type {kind!r}; known types: {sorted(TOKENIZER_TYPES)}")
    return TOKENIZER_TYPES[kind].from_dict(d)


def load_tokenizer(path):
    """Read a tokenizer saved with ``save(path)``, of whichever type it is."""
    with open(path, encoding="utf-8") as f:
        return tokenizer_from_dict(json.load(f))


__all__ = ["ByteLevelTokenizer", "ByteTokenizer", "BPETokenizer", "StreamDecoder", "WordPieceTokenizer", "WordTokenizer",
           "TOKENIZER_TYPES", "tokenizer_from_dict", "load_tokenizer"]
