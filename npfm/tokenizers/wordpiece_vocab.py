"""A WordPiece vocabulary: the special tokens it must hold, the ``##`` that marks
a piece continuing a word, and how a vocabulary is learned from a corpus.

Learning starts from the special tokens and every character seen (as a word
start ``c`` and as a continuation ``##c``), then adds pieces made by merging
the most frequent adjacent pair of pieces, as in BPE. (Google's WordPiece
picks the pair that most raises the corpus likelihood, freq(ab) / (freq(a)
freq(b)); Hugging Face's ``WordPieceTrainer`` merges by frequency, as here.)
Only the vocabulary is kept: encoding uses WordPiece's greedy longest match,
not the merges.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTINUATION = "##"


def learn_wordpiece_vocab(word_counts, vocab_size, min_frequency=2):
    """A WordPiece vocabulary learned by frequency merges over word pieces.

    word_counts: {word: count} after basic tokenization.

    Each word starts as its characters, the first plain and the rest with
    ``##`` ("low" -> l ##o ##w). Then, repeatedly, the adjacent pair (x, y)
    that occurs most often in the corpus (ties: the smallest pair as strings)
    is merged into the piece xy (x ##y -> x + y without its ##): it joins the
    vocabulary and replaces each occurrence of the pair. This stops when the
    vocabulary is full or no pair occurs ``min_frequency`` times.

    Fast because it works on unique words with their counts, and after a merge
    recounts only the words that held the merged pair (an index maps each pair
    to its words); a heap yields the most frequent pair, skipping stale entries.
    """
    chars = sorted({c for word in word_counts for c in word})
    alphabet = chars + [CONTINUATION + c for c in chars]
    n_base = len(SPECIAL_TOKENS) + len(alphabet)
    if vocab_size < n_base:
        raise ValueError(f"learn_wordpiece_vocab: vocab_size={vocab_size} is smaller than the "
                         f"{len(SPECIAL_TOKENS)} special tokens plus the {len(alphabet)} "
                         f"characters seen (as c and ##c)")
    vocab = list(SPECIAL_TOKENS) + alphabet
    in_vocab = set(vocab)

    words = [[w[0]] + [CONTINUATION + c for c in w[1:]] for w in word_counts]
    counts = list(word_counts.values())
    pair_counts = defaultdict(int)        # (x, y) -> occurrences in the corpus
    pair_words = defaultdict(set)         # (x, y) -> indices of the words holding it
    for k, (pieces, count) in enumerate(zip(words, counts)):
        for pair in zip(pieces, pieces[1:]):
            pair_counts[pair] += count
            pair_words[pair].add(k)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg_count:
            continue                                   # a stale entry: the count changed
        if -neg_count < min_frequency:
            break
        x, y = pair
        merged = x + y[len(CONTINUATION):]
        if merged not in in_vocab:                     # other pairs may spell the same piece
            vocab.append(merged)
            in_vocab.add(merged)
        changed = set()
        for k in pair_words.pop(pair):
            pieces, count = words[k], counts[k]
            new_pieces, i = [], 0
            while i < len(pieces):
                if i + 1 < len(pieces) and pieces[i] == x and pieces[i + 1] == y:
                    new_pieces.append(merged)
                    i += 2
                else:
                    new_pieces.append(pieces[i])
                    i += 1
            for old in zip(pieces, pieces[1:]):          # take the word's old pairs out ...
                pair_counts[old] -= count
                changed.add(old)
            for new in zip(new_pieces, new_pieces[1:]):  # ... and put its new ones in
                pair_counts[new] += count
                pair_words[new].add(k)
                changed.add(new)
            words[k] = new_pieces
        for p in changed:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
            else:
                del pair_counts[p]
        pair_counts.pop(pair, None)
    return vocab
