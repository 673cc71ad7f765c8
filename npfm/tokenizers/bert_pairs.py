"""BERT's inputs: one or two segments laid out with [CLS] and [SEP], padded.

    [CLS] a1 a2 a3 [SEP] b1 b2 [SEP] [PAD] [PAD]
    segment   0  0  0  0   0  1  1   1     0     0
    attention 1  1  1  1   1  1  1   1     0     0

When the pair is longer than the budget, tokens are cut from the end of the
longer segment, one at a time ("longest first", as Hugging Face does).
"""

from __future__ import annotations

import numpy as np


def truncate_longest_first(a, b, budget):
    """Cut tokens from the end of the longer of ``a`` and ``b`` until len(a) + len(b) <= budget.

    On a tie the second sequence loses a token (as Hugging Face does). Works
    on lists or 1-D arrays; ``b`` may be None. Returns (a, b).
    """
    if budget < 0:
        raise ValueError(f"truncate_longest_first: budget must be >= 0, got {budget}")
    n_a = len(a)
    n_b = 0 if b is None else len(b)
    while n_a + n_b > budget:
        if n_a > n_b:
            n_a -= 1
        else:
            n_b -= 1
    return a[:n_a], (None if b is None else b[:n_b])


def pack_pair(a, b, max_len, cls_id, sep_id, pad_id):
    """Lay out ``[CLS] a [SEP] b [SEP]`` (or ``[CLS] a [SEP]``) padded to ``max_len``.

    a, b: sequences of ids, already short enough (b may be None).
    Returns (ids, segment_ids, attention_mask), each an int32 array (T,)
    with T = max_len: segment 0 through the first [SEP], 1 after it;
    attention 1 on real tokens, 0 on padding.
    """
    n_a = len(a)
    n_b = 0 if b is None else len(b)
    n = n_a + 2 + (0 if b is None else n_b + 1)
    if n > max_len:
        raise ValueError(f"pack_pair: {n} tokens do not fit in max_len={max_len}; truncate first")
    ids = np.full(max_len, pad_id, dtype=np.int32)                 # (T,)
    ids[0] = cls_id
    ids[1:1 + n_a] = a
    ids[1 + n_a] = sep_id
    segments = np.zeros(max_len, dtype=np.int32)                   # (T,)
    if b is not None:
        ids[2 + n_a:2 + n_a + n_b] = b
        ids[2 + n_a + n_b] = sep_id
        segments[2 + n_a:n] = 1
    attention_mask = np.zeros(max_len, dtype=np.int32)             # (T,)
    attention_mask[:n] = 1
    return ids, segments, attention_mask
