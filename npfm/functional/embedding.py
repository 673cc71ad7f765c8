"""Token embedding: a lookup table of learned vectors, one row per token id.

Forward picks rows:

    y[..., :] = W[ids[...], :]           ids: (...) integers   W: (V, C)   y: (..., C)

Backward sends each row of dy back to the row of W it came from. A token that
appears k times receives the *sum* of its k gradients, so the scatter must
add duplicates rather than overwrite them (``dW[ids] += dy`` would keep only
one of them; ``np.add.at`` is the unbuffered add that sums them):

    dW[v, :] = sum over positions p with ids[p] = v of dy[p, :]
"""

import numpy as np


def embedding_forward(ids, W):
    """y = W[ids].

    ids: (...) integers in [0, V)   W: (V, C)   ->   y: (..., C), cache
    """
    y = W[ids]                                                    # (..., C)
    return y, (ids, W.shape, W.dtype)


def embedding_backward(dy, cache):
    """dy: (..., C) -> dW: (V, C), the rows of dy summed by token id."""
    ids, shape, dtype = cache
    dW = np.zeros(shape, dtype)                                   # (V, C)
    np.add.at(dW, ids.reshape(-1), dy.reshape(-1, shape[1]))      # duplicates add up
    return dW
