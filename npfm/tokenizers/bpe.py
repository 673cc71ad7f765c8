"""Byte-level byte-pair encoding (BPE), in the manner of GPT-2.

Training starts from the 256 byte values and repeatedly *merges* the most
frequent adjacent pair of tokens into a new token:

    vocabulary  = 256 bytes + merges (in the order learned) + special tokens
    merge k     : (a, b) -> 256 + k    the k-th most useful pair, given merges 0..k-1

Text is first cut into chunks by a regular expression (words with their
leading space, numbers, runs of punctuation, runs of whitespace; see
``npfm.tokenizers.bpe_chunks``), and merges never cross a chunk boundary, so
" the" becomes one token but "e t" never does. Encoding cuts the text the
same way and, inside each chunk, applies the learned merges in the order they
were learned (lowest rank first), which reproduces the tokens training saw.

Training is fast because it works on *unique* chunks with their counts, and
after each merge it updates the pair counts of only the chunks that contain
the merged pair (an index maps each pair to those chunks), instead of
counting every pair again.

Special tokens (for example ``"<|endoftext|>"``) get the last ids. They are
never produced by ``encode`` (the text "<|endoftext|>" is encoded as ordinary
bytes); a program inserts one by its id, ``tokenizer.special_tokens[name]``,
and ``decode`` writes it back as its name.

GPT-2's own files: ``BPETokenizer.from_gpt2_files("vocab.json", "merges.txt")``
reads a Hugging Face GPT-2 tokenizer and ``save_gpt2_files(directory)`` writes
one (``npfm.tokenizers.gpt2_files``). Those files number tokens their own
way, kept here as a ``layout`` (which id each byte, each merge and each
special token has). With ``pattern=GPT2_PATTERN`` the text is cut exactly as
GPT-2 cuts it.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict

import numpy as np

from .bpe_chunks import GPT2_PATTERN, SPLIT_PATTERN, compile_pattern, gpt2_regex
from .bytes import ByteLevelTokenizer
from .gpt2_files import bytes_to_unicode, gpt2_spelling, read_gpt2_files, write_gpt2_files

__all__ = ["BPETokenizer", "CACHE_SIZE", "GPT2_PATTERN", "SPLIT_PATTERN", "bytes_to_unicode",
           "compile_pattern", "gpt2_regex", "learn_merges", "merge_pair"]


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

    def __init__(self, merges=(), special_tokens=(), pattern=SPLIT_PATTERN, layout=None):
        """merges: (a, b) id pairs in rank order; special_tokens: names.

        layout: None for npfm's own ids (byte b is id b, merge k makes id
        256 + k, special tokens follow), or a dict {"bytes": 256 ids,
        "merges": the id each merge makes, "special": the id of each special
        token}, for a vocabulary numbered by someone else (GPT-2's vocab.json).
        """
        self.merges = [tuple(int(i) for i in pair) for pair in merges]
        self.special_tokens = {}
        self.pattern = pattern
        self._split = compile_pattern(pattern)
        special_tokens = list(special_tokens)
        if layout is None:
            byte_ids = list(range(256))
            merge_ids = [256 + k for k in range(len(self.merges))]
            special_ids = [256 + len(self.merges) + k for k in range(len(special_tokens))]
        else:
            byte_ids = [int(i) for i in layout["bytes"]]
            merge_ids = [int(i) for i in layout["merges"]]
            special_ids = [int(i) for i in layout["special"]]
            if (len(byte_ids), len(merge_ids), len(special_ids)) != (
                    256, len(self.merges), len(special_tokens)):
                raise ValueError(f"BPETokenizer: the layout gives {len(byte_ids)} byte ids, "
                                 f"{len(merge_ids)} merge ids and {len(special_ids)} special ids "
                                 f"for 256 bytes, {len(self.merges)} merges and "
                                 f"{len(special_tokens)} special tokens")
        self.layout = layout
        self.byte_ids, self.merge_ids = byte_ids, merge_ids
        size = max([*byte_ids, *merge_ids, *special_ids]) + 1
        token_bytes = [None] * size

        def place(i, value, what):
            if not 0 <= i < size:
                raise ValueError(f"BPETokenizer: {what} has the negative id {i}")
            if token_bytes[i] is not None and token_bytes[i] != value:
                raise ValueError(f"BPETokenizer: id {i} is given to both {token_bytes[i]!r} "
                                 f"and {value!r} ({what})")
            token_bytes[i] = value

        for b, i in enumerate(byte_ids):
            place(i, bytes([b]), f"byte {b}")
        self.ranks = {}                                      # (a, b) -> rank k (lower: merged first)
        for k, (a, b) in enumerate(self.merges):
            made = merge_ids[k]
            if not (0 <= a < size and 0 <= b < size and token_bytes[a] is not None
                    and token_bytes[b] is not None):
                raise ValueError(f"BPETokenizer: merge {k} is {(a, b)}, but a merge may only "
                                 f"use ids made before it")
            if (a, b) in self.ranks:
                raise ValueError(f"BPETokenizer: merge {k} repeats the pair {(a, b)}")
            self.ranks[(a, b)] = k
            place(made, token_bytes[a] + token_bytes[b], f"merge {k}")
        for name, i in zip(special_tokens, special_ids):
            if not isinstance(name, str) or not name:
                raise ValueError(f"BPETokenizer: a special token must be a non-empty str, got {name!r}")
            if name in self.special_tokens:
                raise ValueError(f"BPETokenizer: special token {name!r} given twice")
            if token_bytes[i] is not None:
                raise ValueError(f"BPETokenizer: special token {name!r} has id {i}, "
                                 f"which {token_bytes[i]!r} already holds")
            self.special_tokens[name] = i
            token_bytes[i] = name.encode("utf-8")
        gaps = [i for i, t in enumerate(token_bytes) if t is None]
        if gaps:
            raise ValueError(f"BPETokenizer: ids {gaps[:5]} stand for no token "
                             f"(the ids must run from 0 to {size - 1} without a gap)")
        self.token_bytes = token_bytes
        self._cache = {}

    @classmethod
    def train(cls, texts, vocab_size, min_frequency=2, special_tokens=(), pattern=SPLIT_PATTERN):
        """Learn merges on ``texts`` (a str or an iterable of str) up to ``vocab_size``.

        vocab_size counts the 256 bytes, the merges and the special tokens; it
        may come out smaller when fewer pairs occur ``min_frequency`` times.
        pattern: how text is cut into chunks; GPT2_PATTERN makes a tokenizer
        that Hugging Face's GPT-2 tokenizer reproduces exactly from its files.
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
        split = compile_pattern(pattern)
        chunk_counts = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"BPETokenizer.train expects str texts, got {type(text).__name__}")
            chunk_counts.update(split.findall(text))
        chunk_counts = {chunk.encode("utf-8"): count for chunk, count in chunk_counts.items()}
        n_merges = vocab_size - 256 - len(special_tokens)
        merges = learn_merges(chunk_counts, n_merges, min_frequency)
        return cls(merges, special_tokens, pattern)

    def _encode_chunk(self, chunk):
        """The ids of one chunk: merge the lowest-ranked pair present until none is left."""
        byte_ids, merge_ids = self.byte_ids, self.merge_ids
        tokens = [byte_ids[b] for b in chunk.encode("utf-8")]
        ranks = self.ranks
        while len(tokens) > 1:
            pair = min(zip(tokens, tokens[1:]), key=lambda p: ranks.get(p, math.inf))
            if pair not in ranks:
                break
            tokens = merge_pair(tokens, pair, merge_ids[ranks[pair]])
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
        d = {"type": self.type,
             "merges": [list(pair) for pair in self.merges],
             "special_tokens": list(self.special_tokens),
             "pattern": self.pattern}
        if self.layout is not None:
            d["layout"] = {"bytes": list(self.byte_ids), "merges": list(self.merge_ids),
                           "special": list(self.special_tokens.values())}
        return d

    @classmethod
    def from_dict(cls, d):
        cls._check_dict(d)
        if "merges" not in d:
            raise ValueError("BPETokenizer.from_dict: the dict has no 'merges'")
        merges = d["merges"]
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in merges):
            raise ValueError("BPETokenizer.from_dict: 'merges' must be a list of [a, b] id pairs")
        return cls(merges, d.get("special_tokens", ()), d.get("pattern", SPLIT_PATTERN),
                   d.get("layout"))

    # ----- GPT-2's files: vocab.json and merges.txt ---------------------------------


    # ----- GPT-2's files: vocab.json and merges.txt ---------------------------------

    @classmethod
    def from_gpt2_files(cls, vocab_path, merges_path):
        """The tokenizer of a GPT-2 style ``vocab.json`` + ``merges.txt``.

        vocab.json maps each token, spelled in ``bytes_to_unicode``'s alphabet,
        to its id; merges.txt lists the merges by rank, one "a b" per line
        after a "#version" line. A token that is neither a byte nor made by a
        merge (GPT-2's "<|endoftext|>") is a special token: never produced by
        ``encode``, decoded as its name. Text is cut with GPT2_PATTERN, and
        each chunk merged by rank exactly as GPT-2's tokenizer does. Every
        problem raises a ValueError naming the file.
        """
        merges, special_tokens, layout = read_gpt2_files(vocab_path, merges_path)
        return cls(merges, special_tokens, GPT2_PATTERN, layout)

    def gpt2_token(self, i):
        """Token i as vocab.json spells it: its bytes in GPT-2's alphabet (a special
        token by its name)."""
        return gpt2_spelling(self.token_bytes[i])

    def save_gpt2_files(self, directory):
        """Write ``vocab.json`` and ``merges.txt`` into ``directory``; returns their paths.

        The ids are this tokenizer's own, so a model's embedding rows keep
        their meaning. Hugging Face's GPT-2 tokenizer then encodes as this one
        does when the pattern is GPT2_PATTERN (see ``from_gpt2_files``).
        """
        names = {i: name for name, i in self.special_tokens.items()}
        vocab = {}
        for i in range(self.vocab_size):
            token = names.get(i) or self.gpt2_token(i)
            if token in vocab:
                raise ValueError(f"BPETokenizer: ids {vocab[token]} and {i} are both spelled "
                                 f"{token!r}; vocab.json cannot hold both")
            vocab[token] = i
        merges = [(self.gpt2_token(a), self.gpt2_token(b)) for a, b in self.merges]
        return write_gpt2_files(directory, vocab, merges)

    def __repr__(self):
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={list(self.special_tokens)})")
