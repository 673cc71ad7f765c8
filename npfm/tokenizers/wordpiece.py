"""WordPiece, the tokenizer of BERT.

Tokenizing is two steps.

1. **Basic tokenization** cuts text into words, exactly as BERT's
   ``BasicTokenizer`` does (``npfm.tokenizers.bert_basic``): clean the text,
   put CJK ideographs apart, lower-case and strip accents, and split off each
   punctuation character.

       "Héllo, World!"  ->  ["hello", ",", "world", "!"]

2. **WordPiece** covers each word by vocabulary pieces, greedily, longest
   match first. A piece that continues a word is written with the prefix
   ``##``:

       vocabulary {un, ##aff, ##able, ...}:   "unaffable" -> un ##aff ##able

   From the left, take the longest prefix of the rest of the word that is in
   the vocabulary (with ``##`` in front unless it starts the word), and go on
   after it. A word that cannot be covered this way, or that is longer than
   ``max_chars_per_word``, becomes the single token ``[UNK]``.

Decoding joins tokens with spaces and glues each ``##`` piece to the token
before it, so ``decode(encode(text))`` is the basic tokens joined by spaces
(for text without unknown words).

``encode_pair`` lays out BERT's input of one or two segments,
``[CLS] a [SEP] b [SEP]`` with segment ids and an attention mask
(``npfm.tokenizers.bert_pairs``). ``WordPieceTokenizer.train`` learns a
vocabulary from a corpus by frequency merges (``npfm.tokenizers.wordpiece_vocab``).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from ..core import check_ids
from .bert_basic import basic_tokenize
from .bert_pairs import pack_pair, truncate_longest_first
from .wordpiece_vocab import CONTINUATION, SPECIAL_TOKENS, learn_wordpiece_vocab

# Encoding remembers the pieces of words it has seen; past this many the
# memory is cleared, so encoding a huge text cannot grow it without bound.
CACHE_SIZE = 100_000


def wordpiece_word(word, vocab, unk_token="[UNK]", max_chars_per_word=100):
    """Greedy longest-match-first pieces of one word: ['un', '##aff', '##able'].

    vocab: anything supporting ``in`` (a dict or set of token strings).
    A word that cannot be covered, or is too long, is ``[unk_token]``.
    """
    if len(word) > max_chars_per_word:
        return [unk_token]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        piece = None
        while start < end:
            candidate = word[start:end] if start == 0 else CONTINUATION + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


class WordPieceStreamDecoder:
    """Decode ids one at a time: ``push(id)`` returns the text it adds.

    A ``##`` piece is glued to the text before it; any other token starts
    with a space (except the first). The pieces joined equal ``decode(ids)``.
    """

    def __init__(self, tokenizer, skip_special_tokens=False):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._started = False

    def push(self, token_id):
        tokens = self.tokenizer.ids_to_tokens([token_id], self.skip_special_tokens)
        if not tokens:
            return ""
        token = tokens[0]
        if token.startswith(CONTINUATION) and self._started:
            return token[len(CONTINUATION):]
        text = token if not self._started else " " + token
        self._started = True
        return text

    def flush(self):
        self._started = False
        return ""


class WordPieceTokenizer:
    """BERT's tokenizer: basic tokenization, then greedy WordPiece.

    vocab: list of token strings; the id of a token is its index. It must hold
    the special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (at any ids).

        tok = WordPieceTokenizer.from_vocab_file("vocab.txt")
        tok.tokenize("Unaffable!")          # ['una', '##ffa', '##ble', '!']
        ids, segments, mask = tok.encode_pair("Is it?", "Yes.", max_len=16)
    """

    type = "wordpiece"

    def __init__(self, vocab, lowercase=True, strip_accents=None, unk_token="[UNK]",
                 max_chars_per_word=100):
        if isinstance(vocab, str) or not all(isinstance(t, str) and t for t in vocab):
            raise TypeError("WordPieceTokenizer: vocab must be a list of non-empty str tokens")
        self.vocab = list(vocab)
        self.token_to_id = {}
        for i, token in enumerate(self.vocab):
            if token in self.token_to_id:
                raise ValueError(f"WordPieceTokenizer: token {token!r} appears twice in the vocab "
                                 f"(ids {self.token_to_id[token]} and {i})")
            self.token_to_id[token] = i
        specials = list(SPECIAL_TOKENS)
        if unk_token != "[UNK]":
            specials[1] = unk_token
        missing = [t for t in specials if t not in self.token_to_id]
        if missing:
            raise ValueError(f"WordPieceTokenizer: the vocab lacks the special tokens {missing}")
        if not isinstance(max_chars_per_word, int) or max_chars_per_word < 1:
            raise ValueError(f"WordPieceTokenizer: max_chars_per_word must be an int >= 1, "
                             f"got {max_chars_per_word!r}")
        self.lowercase = bool(lowercase)
        self.strip_accents = None if strip_accents is None else bool(strip_accents)
        self.unk_token = unk_token
        self.max_chars_per_word = max_chars_per_word
        self.special_tokens = {t: self.token_to_id[t] for t in specials}
        self._cache = {}

    # ----- ids of the special tokens ----------------------------------------
    @property
    def pad_id(self):
        return self.token_to_id["[PAD]"]

    @property
    def unk_id(self):
        return self.token_to_id[self.unk_token]

    @property
    def cls_id(self):
        return self.token_to_id["[CLS]"]

    @property
    def sep_id(self):
        return self.token_to_id["[SEP]"]

    @property
    def mask_id(self):
        return self.token_to_id["[MASK]"]

    @property
    def special_ids(self):
        """The ids of [PAD] [UNK] [CLS] [SEP] [MASK], sorted."""
        return sorted(self.special_tokens.values())

    @property
    def vocab_size(self):
        return len(self.vocab)

    # ----- text -> tokens -> ids ---------------------------------------------
    def _check_text(self, text, who="encode"):
        if not isinstance(text, str):
            raise TypeError(f"WordPieceTokenizer.{who} expects a str, got {type(text).__name__}")

    def basic_tokenize(self, text):
        """The words of ``text`` before WordPiece: ['hello', ',', 'world', '!']."""
        self._check_text(text, "basic_tokenize")
        return basic_tokenize(text, self.lowercase, self.strip_accents)

    def _pieces(self, word):
        pieces = self._cache.get(word)
        if pieces is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            pieces = self._cache[word] = wordpiece_word(
                word, self.token_to_id, self.unk_token, self.max_chars_per_word)
        return pieces

    def tokenize(self, text):
        """The WordPiece tokens of ``text``: ['un', '##aff', '##able', '!'].

        The special tokens' names written in the text (``"[MASK]"``) stay one
        token, as in Hugging Face's BertTokenizer, so "Paris is the [MASK]."
        can be typed.
        """
        self._check_text(text, "tokenize")
        tokens = []
        for part, is_special in self._split_specials(text):
            if is_special:
                tokens.append(part)
            else:
                for word in basic_tokenize(part, self.lowercase, self.strip_accents):
                    tokens.extend(self._pieces(word))
        return tokens

    def _split_specials(self, text):
        """[(piece, is_special)]: the text cut around exact special-token names."""
        parts = [(text, False)]
        for name in self.special_tokens:
            if name not in text:
                continue
            new_parts = []
            for part, is_special in parts:
                if is_special or name not in part:
                    new_parts.append((part, is_special))
                    continue
                chunks = part.split(name)
                for k, chunk in enumerate(chunks):
                    if k:
                        new_parts.append((name, True))
                    if chunk:
                        new_parts.append((chunk, False))
            parts = new_parts
        return parts

    def tokens_to_ids(self, tokens):
        """Token strings -> ids (a token not in the vocabulary is [UNK])."""
        unk = self.unk_id
        return [self.token_to_id.get(t, unk) for t in tokens]

    def ids_to_tokens(self, ids, skip_special_tokens=False):
        """Ids -> token strings, checking every id is in range."""
        ids = self._check_ids(ids)
        specials = set(self.special_tokens.values()) if skip_special_tokens else ()
        return [self.vocab[i] for i in ids.tolist() if i not in specials]

    def encode(self, text, add_special_tokens=False):
        """The ids of ``text`` as an int32 array (T,); with ``[CLS] ... [SEP]`` if asked."""
        ids = self.tokens_to_ids(self.tokenize(text))
        if add_special_tokens:
            ids = [self.cls_id] + ids + [self.sep_id]
        return np.array(ids, dtype=np.int32)                       # (T,)

    def _check_ids(self, ids):
        ids = np.asarray(ids)
        if ids.ndim == 0:
            ids = ids.reshape(1)
        if ids.ndim != 1:
            raise ValueError(f"WordPieceTokenizer.decode expects a 1-D sequence of ids, "
                             f"got shape {ids.shape}")
        if ids.size == 0:
            return ids.astype(np.int64)  # np.asarray([]) is float64: an empty list is fine
        return check_ids(ids, self.vocab_size, who="WordPieceTokenizer.decode")

    def decode(self, ids, skip_special_tokens=False):
        """Tokens joined by spaces, each ``##`` piece glued to the one before.

        decode(encode("Un-affable!")) == "un - affable !"
        """
        text = " ".join(self.ids_to_tokens(ids, skip_special_tokens))
        return text.replace(" " + CONTINUATION, "").strip()

    def decode_bytes(self, ids):
        """``decode(ids)`` as UTF-8 bytes (the protocol every npfm tokenizer offers)."""
        return self.decode(ids).encode("utf-8")

    def stream_decoder(self, skip_special_tokens=False):
        """A decoder that takes one id at a time (for printing while generating)."""
        return WordPieceStreamDecoder(self, skip_special_tokens)

    # ----- model inputs -------------------------------------------------------
    def _segment_ids(self, x, who):
        if isinstance(x, str):
            return self.encode(x)
        ids = np.asarray(x)
        if ids.ndim != 1:
            raise ValueError(f"WordPieceTokenizer.{who}: a segment must be a str or a 1-D "
                             f"sequence of ids, got shape {ids.shape}")
        if ids.size == 0:
            return ids.astype(np.int32)
        return check_ids(ids, self.vocab_size, who=f"WordPieceTokenizer.{who}").astype(np.int32)

    def encode_pair(self, a, b=None, max_len=128):
        """BERT's input for one or two segments, padded to ``max_len``.

        a, b: str (or already-encoded ids); b=None gives ``[CLS] a [SEP]``.
        Returns (ids, segment_ids, attention_mask), int32 arrays (T,), T = max_len.
        Too long a pair is cut longest-first (see ``truncate_longest_first``).
        """
        n_special = 2 if b is None else 3
        if not isinstance(max_len, (int, np.integer)) or max_len < n_special:
            raise ValueError(f"WordPieceTokenizer.encode_pair: max_len must be an int >= "
                             f"{n_special} (room for the special tokens), got {max_len!r}")
        a_ids = self._segment_ids(a, "encode_pair")
        b_ids = None if b is None else self._segment_ids(b, "encode_pair")
        a_ids, b_ids = truncate_longest_first(a_ids, b_ids, max_len - n_special)
        return pack_pair(a_ids, b_ids, max_len, self.cls_id, self.sep_id, self.pad_id)

    def encode_batch(self, texts_or_pairs, max_len=128):
        """``encode_pair`` of each item (a str or an (a, b) pair), stacked to (B, T) arrays."""
        if isinstance(texts_or_pairs, str):
            raise TypeError("WordPieceTokenizer.encode_batch expects a list of texts or pairs, "
                            "got a single str")
        rows = []
        for item in texts_or_pairs:
            if isinstance(item, (tuple, list)):
                if len(item) != 2:
                    raise ValueError(f"WordPieceTokenizer.encode_batch: a pair must have 2 texts, "
                                     f"got {len(item)}")
                rows.append(self.encode_pair(item[0], item[1], max_len))
            else:
                rows.append(self.encode_pair(item, None, max_len))
        if not rows:
            empty = np.zeros((0, max_len), dtype=np.int32)
            return empty, empty.copy(), empty.copy()
        ids, segments, masks = zip(*rows)
        return np.stack(ids), np.stack(segments), np.stack(masks)  # (B, T) each

    # ----- files ---------------------------------------------------------------
    @classmethod
    def from_vocab_file(cls, path, **kwargs):
        """Read a BERT ``vocab.txt``: one token per line, the id is the line number."""
        with open(path, encoding="utf-8") as f:
            vocab = [line.rstrip("\r\n") for line in f]
        while vocab and not vocab[-1]:
            vocab.pop()                       # a trailing empty line is no token
        return cls(vocab, **kwargs)

    def save_vocab(self, path):
        """Write the vocabulary as a BERT ``vocab.txt``."""
        with open(path, "w", encoding="utf-8") as f:
            for token in self.vocab:
                f.write(token + "\n")

    def to_dict(self):
        return {"type": self.type, "vocab": list(self.vocab), "lowercase": self.lowercase,
                "strip_accents": self.strip_accents, "unk_token": self.unk_token,
                "max_chars_per_word": self.max_chars_per_word}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise TypeError(f"WordPieceTokenizer.from_dict expects a dict, got {type(d).__name__}")
        if d.get("type") != cls.type:
            raise ValueError(f"WordPieceTokenizer.from_dict expects type {cls.type!r}, "
                             f"got {d.get('type')!r}")
        if "vocab" not in d:
            raise ValueError("WordPieceTokenizer.from_dict: the dict has no 'vocab'")
        return cls(d["vocab"], lowercase=d.get("lowercase", True),
                   strip_accents=d.get("strip_accents"), unk_token=d.get("unk_token", "[UNK]"),
                   max_chars_per_word=d.get("max_chars_per_word", 100))

    def save(self, path):
        """Write ``to_dict()`` as JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)

    @classmethod
    def load(cls, path):
        """Read a tokenizer written by ``save``."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    # ----- training -------------------------------------------------------------
    @classmethod
    def train(cls, texts, vocab_size, min_frequency=2, lowercase=True, max_chars_per_word=100):
        """Learn a vocabulary of at most ``vocab_size`` tokens from ``texts`` (str or list of str).

        vocab = the 5 special tokens, every character seen as ``c`` and ``##c``,
        then merged pieces in the order learned (see ``learn_wordpiece_vocab``).
        It may come out smaller when fewer pairs occur ``min_frequency`` times.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool):
            raise TypeError(f"WordPieceTokenizer.train: vocab_size must be an int, "
                            f"got {vocab_size!r}")
        if min_frequency < 1:
            raise ValueError(f"WordPieceTokenizer.train: min_frequency must be >= 1, "
                             f"got {min_frequency}")
        word_counts = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"WordPieceTokenizer.train expects str texts, "
                                f"got {type(text).__name__}")
            word_counts.update(basic_tokenize(text, lowercase))
        word_counts = {w: c for w, c in word_counts.items() if len(w) <= max_chars_per_word}
        vocab = learn_wordpiece_vocab(word_counts, vocab_size, min_frequency)
        return cls(vocab, lowercase=lowercase, max_chars_per_word=max_chars_per_word)

    def __repr__(self):
        return (f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase})")
