"""Byte-level byte-pair encoding (BPE), in the manner of GPT-2.

Training starts from the 256 byte values and repeatedly *merges* the most
frequent adjacent pair of tokens into a new token:

    vocabulary  = 256 bytes + merges (in the order learned) + special tokens
    merge k     : (a, b) -> 256 + k    the k-th most useful pair, given merges 0..k-1

Text is first cut into chunks by a regular expression (words with their
leading space, numbers, runs of punctuation, runs of whitespace), and merges
never cross a chunk boundary, so " the" becomes one token but "e t" never
does. Encoding cuts the text the same way and, inside each chunk, applies the
learned merges in the order they were learned (lowest rank first), which
reproduces the tokens training saw.

Training is fast because it works on *unique* chunks with their counts, and
after each merge it updates the pair counts of only the chunks that contain
the merged pair (an index maps each pair to those chunks), instead of
counting every pair again.

Special tokens (for example ``"<|endoftext|>"``) get the last ids. They are
never produced by ``encode`` (the text "<|endoftext|>" is encoded as ordinary
bytes); a program inserts one by its id, ``tokenizer.special_tokens[name]``,
and ``decode`` writes it back as its name.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter, defaultdict

import numpy as np

from .bytes import ByteLevelTokenizer

# GPT-2 splits with \p{L} (letters) and \p{N} (numbers), which Python's ``re``
# lacks. Here a letter is [^\W\d_] (a word character that is neither a digit
# nor "_"), a number is \d, and punctuation is anything else that is not
# whitespace, "_" included. Every character falls in exactly one class, so the
# chunks always join back to the text.
SPLIT_PATTERN = (
    r"""'(?:s|t|re|ve|m|ll|d)"""   # English contractions: 's 't 're 've 'm 'll 'd
    r"""| ?[^\W\d_]+"""            # a word, with its leading space
    r"""| ?\d+"""                  # a number, with its leading space
    r"""| ?(?:[^\s\w]|_)+"""       # a run of punctuation, with its leading space
    r"""|\s+(?!\S)"""              # spaces, leaving the last one for the next word
    r"""|\s+"""                    # trailing spaces
)

# Encoding remembers the tokens of chunks it has seen; past this many the
# memory is cleared, so encoding a huge text cannot grow it without bound.
CACHE_SIZE = 100_000


def merge_pair(tokens, pair, new_id):
    """Replace each non-overlapping occurrence of ``pair``, left to right, by ``new_id``.

    merge_pair([1, 2, 2, 2], (2, 2), 9) = [1, 9, 2]
    """
    a, b = pair
    out = []
    i, n = 0, len(tokens)
    while i < n:
        if i + 1 < n and tokens[i] == a and tokens[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def learn_merges(chunk_counts, n_merges, min_frequency=2):
    """The merges of BPE trained on chunks with their counts.

    chunk_counts: dict of byte string -> how often it occurs in the corpus.
    Returns a list of (a, b) id pairs; merge k makes id 256 + k. Stops early
    when no pair occurs ``min_frequency`` times. Among equally frequent pairs
    the one with the smallest (a, b) wins, so training is deterministic.
    """
    words = [list(chunk) for chunk in chunk_counts]        # each chunk as a list of ids
    freqs = list(chunk_counts.values())
    pair_counts = defaultdict(int)                          # (a, b) -> occurrences in the corpus
    where = defaultdict(set)                                # (a, b) -> ids of words holding it
    for w, (word, f) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += f
            where[pair].add(w)

    # A max-heap of (-count, pair). Counts change after every merge; instead of
    # updating entries in place, a pair whose count grew is pushed again, and a
    # stale entry is recognised when popped (its count differs from
    # pair_counts) and pushed back with the right count.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    while len(merges) < n_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg_count:
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < min_frequency:
            break
        new_id = 256 + len(merges)
        merges.append(pair)

        grown = set()
        for w in where.pop(pair):
            word = words[w]
            merged = merge_pair(word, pair, new_id)
            if len(merged) == len(word):
                continue  # an old index entry: an earlier merge already took the pair apart
            f = freqs[w]
            for p in zip(word, word[1:]):
                pair_counts[p] -= f
            for p in zip(merged, merged[1:]):
                pair_counts[p] += f
                where[p].add(w)
                grown.add(p)
            words[w] = merged
        del pair_counts[pair]
        for p in grown:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
    return merges


class BPETokenizer(ByteLevelTokenizer):
    """Byte-level BPE: 256 bytes, then merged byte strings, then special tokens.

    Train one with ``BPETokenizer.train(texts, vocab_size)``; ``encode`` and
    ``decode`` as in every npfm tokenizer.
    """

    type = "bpe"

    def __init__(self, merges=(), special_tokens=(), pattern=SPLIT_PATTERN):
        self.merges = [tuple(int(i) for i in pair) for pair in merges]
        self.special_tokens = {}
        self.pattern = pattern
        self._split = re.compile(pattern)

        self.token_bytes = [bytes([i]) for i in range(256)]
        self.ranks = {}                                      # (a, b) -> rank k (lower: merged first)
        for k, (a, b) in enumerate(self.merges):
            new_id = 256 + k
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"BPETokenizer: merge {k} is {(a, b)}, but a merge may only "
                                 f"use ids made before it, in [0, {new_id})")
            if (a, b) in self.ranks:
                raise ValueError(f"BPETokenizer: merge {k} repeats the pair {(a, b)}")
            self.ranks[(a, b)] = k
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        for name in special_tokens:
            if not isinstance(name, str) or not name:
                raise ValueError(f"BPETokenizer: a special token must be a non-empty str, got {name!r}")
            if name in self.special_tokens:
                raise ValueError(f"BPETokenizer: special token {name!r} given twice")
            self.special_tokens[name] = len(self.token_bytes)
            self.token_bytes.append(name.encode("utf-8"))
        self._cache = {}

    @classmethod
    def train(cls, texts, vocab_size, min_frequency=2, special_tokens=()):
        """Learn merges on ``texts`` (a str or an iterable of str) up to ``vocab_size``.

        vocab_size counts the 256 bytes, the merges and the special tokens; it
        may come out smaller when fewer pairs occur ``min_frequency`` times.
        """
        if isinstance(texts, str):
            texts = [texts]
        special_tokens = list(special_tokens)
        if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool):
            raise TypeError(f"BPETokenizer.train: vocab_size must be an int, got {vocab_size!r}")
        if vocab_size < 256 + len(special_tokens):
            raise ValueError(f"BPETokenizer.train: vocab_size={vocab_size} is smaller than the "
                             f"256 bytes plus {len(special_tokens)} special tokens")
        if min_frequency < 1:
            raise ValueError(f"BPETokenizer.train: min_frequency must be >= 1, got {min_frequency}")
        split = re.compile(SPLIT_PATTERN)
        chunk_counts = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"BPETokenizer.train expects str texts, got {type(text).__name__}")
            chunk_counts.update(split.findall(text))
        chunk_counts = {chunk.encode("utf-8"): count for chunk, count in chunk_counts.items()}
        n_merges = vocab_size - 256 - len(special_tokens)
        merges = learn_merges(chunk_counts, n_merges, min_frequency)
        return cls(merges, special_tokens)

    def _encode_chunk(self, chunk):
        """The ids of one chunk: merge the lowest-ranked pair present until none is left."""
        tokens = list(chunk.encode("utf-8"))
        ranks = self.ranks
        while len(tokens) > 1:
            pair = min(zip(tokens, tokens[1:]), key=lambda p: ranks.get(p, math.inf))
            if pair not in ranks:
                break
            tokens = merge_pair(tokens, pair, 256 + ranks[pair])
        return tokens

    def encode(self, text):
        """The ids of ``text`` as an int32 array of shape (T,).

        Special-token names in the text are encoded as ordinary text.
        """
        self._check_text(text)
        cache = self._cache
        ids = []
        for chunk in self._split.findall(text):
            tokens = cache.get(chunk)
            if tokens is None:
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
                tokens = cache[chunk] = self._encode_chunk(chunk)
            ids.extend(tokens)
        return np.array(ids, dtype=np.int32)  # (T,)

    def to_dict(self):
        return {"type": self.type,
                "merges": [list(pair) for pair in self.merges],
                "special_tokens": list(self.special_tokens),
                "pattern": self.pattern}

    @classmethod
    def from_dict(cls, d):
        cls._check_dict(d)
        if "merges" not in d:
            raise ValueError("BPETokenizer.from_dict: the dict has no 'merges'")
        merges = d["merges"]
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in merges):
            raise ValueError("BPETokenizer.from_dict: 'merges' must be a list of [a, b] id pairs")
        return cls(merges, d.get("special_tokens", ()), d.get("pattern", SPLIT_PATTERN))

    def __repr__(self):
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={list(self.special_tokens)})")
