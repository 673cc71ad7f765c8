"""Embedding, fast: the textbook pair's backward (npfm/functional/embedding.py)
as one unbuffered add over the flattened table.

``np.add.at`` sums duplicate ids; applied to the flattened (V * C,) table
with one index per element it is ~3x faster here than the row form
``np.add.at(dW, ids, dy)`` (NumPy's 1-D fast path).
"""

import numpy as np

from ..functional.embedding import embedding_forward  # noqa: F401  (the lookup is one pass already)


def scatter_add_rows(table, ids, rows):
    """table[ids[n], :] += rows[n, :] for every n, duplicates summed (in place).

    table: (V, C)   ids: (N,) integers   rows: (N, C)
    """
    C = table.shape[1]
    ids = ids.astype(np.intp, copy=False)
    flat_index = (ids[:, None] * C + np.arange(C)).reshape(-1)   # (N * C,)
    np.add.at(table.reshape(-1), flat_index, rows.reshape(-1))
    return table


def embedding_backward(dy, cache):
    """dy: (..., C) -> dW: (V, C), the rows of dy summed by token id."""
    ids, shape, dtype = cache
    dW = np.zeros(shape, dtype)                                   # (V, C)
    return scatter_add_rows(dW, ids.reshape(-1), dy.reshape(-1, shape[1]))
