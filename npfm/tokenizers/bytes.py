"""The byte tokenizer, and what every byte-level tokenizer shares.

A byte-level tokenizer maps text to ids through its UTF-8 bytes: every token
stands for a fixed byte string, so any text can be encoded (there is no
unknown token) and decoding is

    decode(ids) = (bytes of ids[0] + bytes of ids[1] + ...).decode("utf-8")

A sequence of ids chosen by a model need not spell valid UTF-8 (it can stop in
the middle of a multi-byte character, or put a continuation byte first), so
``decode`` replaces such bytes with U+FFFD instead of raising, and
``StreamDecoder`` holds back an unfinished character until its last byte
arrives, so a generator can print text token by token.

``ByteTokenizer`` is the simplest such tokenizer: the 256 byte values are the
vocabulary (V = 256). ``BPETokenizer`` (bpe.py) adds merged byte strings.
"""

from __future__ import annotations

import codecs
import json

import numpy as np

from ..core import check_ids


class ByteLevelTokenizer:
    """What ByteTokenizer and BPETokenizer share: decoding, streaming and files.

    A sub-class sets ``type`` (the name stored in its dict), ``token_bytes``
    (the byte string of each id; its length is ``vocab_size``) and implements
    ``encode``, ``to_dict`` and ``from_dict``.
    """

    type = None
    token_bytes: list

    @property
    def vocab_size(self):
        return len(self.token_bytes)

    def encode(self, text):
        raise NotImplementedError(f"{type(self).__name__}.encode is not implemented")

    def to_dict(self):
        raise NotImplementedError(f"{type(self).__name__}.to_dict is not implemented")

    @classmethod
    def from_dict(cls, d):
        raise NotImplementedError(f"{cls.__name__}.from_dict is not implemented")

    def _check_text(self, text):
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.encode expects a str, "
                            f"got {type(text).__name__}")

    def _check_ids(self, ids):
        """ids as a 1-D integer array with every id in [0, vocab_size)."""
        ids = np.asarray(ids)
        if ids.ndim == 0:
            ids = ids.reshape(1)
        if ids.ndim != 1:
            raise ValueError(f"{type(self).__name__}.decode expects a 1-D sequence of ids, "
                             f"got shape {ids.shape}")
        if ids.size == 0:
            return ids.astype(np.int64)  # np.asarray([]) is float64: an empty list is fine
        return check_ids(ids, self.vocab_size, who=f"{type(self).__name__}.decode")

    def decode_bytes(self, ids):
        """The bytes the ids stand for, concatenated (no UTF-8 decoding)."""
        ids = self._check_ids(ids)
        return b"".join([self.token_bytes[i] for i in ids.tolist()])

    def decode(self, ids):
        """The text of ``ids``; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def stream_decoder(self):
        """A fresh StreamDecoder over this tokenizer."""
        return StreamDecoder(self)

    def save(self, path):
        """Write ``to_dict()`` as JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)

    @classmethod
    def load(cls, path):
        """Read a tokenizer written by ``save``."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def _check_dict(cls, d):
        if not isinstance(d, dict):
            raise TypeError(f"{cls.__name__}.from_dict expects a dict, got {type(d).__name__}")
        if d.get("type") != cls.type:
            raise ValueError(f"{cls.__name__}.from_dict expects type {cls.type!r}, "
                             f"got {d.get('type')!r}")

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class StreamDecoder:
    """Decode ids one at a time, returning only complete characters.

    ``push(id)`` returns the text that became complete with this id (often
    "", when the id ends inside a multi-byte character); ``flush()`` returns
    what is left at the end, an unfinished character as U+FFFD. The pieces
    joined are exactly ``tokenizer.decode(all ids)``.

        stream = tokenizer.stream_decoder()
        for i in ids:
            print(stream.push(i), end="", flush=True)
        print(stream.flush())
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        # Python's incremental UTF-8 decoder keeps the bytes of an unfinished
        # character until they are complete (or proven invalid).
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id):
        """The text completed by one more id."""
        return self._utf8.decode(self.tokenizer.decode_bytes([token_id]))

    def flush(self):
        """The text left at the end of the stream; the decoder is then reset."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text


class ByteTokenizer(ByteLevelTokenizer):
    """Text as its UTF-8 bytes: id i is the byte value i (V = 256).

    encode("é!") = [195, 169, 33]   (é is two bytes in UTF-8)
    """

    type = "bytes"

    def __init__(self):
        self.token_bytes = [bytes([i]) for i in range(256)]

    def encode(self, text):
        """The UTF-8 bytes of ``text`` as an int32 array of shape (T,)."""
        self._check_text(text)
        return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)  # (T,)

    def decode_bytes(self, ids):
        """The bytes of ``ids`` (each id is one byte)."""
        return self._check_ids(ids).astype(np.uint8).tobytes()

    def to_dict(self):
        return {"type": self.type}

    @classmethod
    def from_dict(cls, d):
        cls._check_dict(d)
        return cls()
