"""Position information added to a (B, T, C) sequence of vectors.

Attention by itself ignores order, so each position t gets a vector P[t]
added to its input:

    y[b, t, :] = x[b, t, :] + P[offset + t, :]        dx = dy

``offset`` is the position of the first of the T inputs: 0 for a whole
sequence, the number of tokens already decoded when a KV cache feeds one new
token at a time.

Two tables:

* learned (GPT-2, BERT): P is a Parameter W (max_len, C); its gradient is dy
  summed over the batch, landing on rows offset ... offset + T - 1:
  dW[offset + t] = sum_b dy[b, t].
* sinusoidal ("Attention is all you need"), fixed, with no parameters:
  P[t, 2i] = sin(t / 10000^(2i / C)),   P[t, 2i + 1] = cos(t / 10000^(2i / C)).
"""

import math

import numpy as np


def sinusoidal_positions(T, C, dtype=np.float32):
    """The (T, C) sinusoidal table: sin on even channels, cos on odd ones.

    Channel pair (2i, 2i + 1) turns at the angular frequency 10000^(-2i / C),
    from 1 radian per position down to 1 / 10000. Odd C works: the last
    channel is a sine without its cosine partner.
    """
    if T < 0 or C < 1:
        raise ValueError(f"sinusoidal_positions: need T >= 0 and C >= 1, got T={T}, C={C}")
    positions = np.arange(T, dtype=np.float64)[:, None]                  # (T, 1)
    freqs = np.exp(np.arange(0, C, 2) * (-math.log(10000.0) / C))        # (ceil(C/2),)
    angles = positions * freqs                                           # (T, ceil(C/2))
    table = np.empty((T, C))                                             # (T, C)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : C // 2])
    return table.astype(dtype)


def positional_embedding_forward(x, W, offset=0):
    """y = x + W[offset : offset + T], a learned position table.

    x: (..., T, C)   W: (max_len, C)   ->   y: (..., T, C), cache
    """
    T = x.shape[-2]
    y = x + W[offset:offset + T]                                         # (..., T, C)
    return y, (W.shape, W.dtype, offset, T)


def positional_embedding_backward(dy, cache):
    """dy: (..., T, C) -> dx = dy, dW (max_len, C) nonzero on rows offset ... offset + T - 1."""
    shape, dtype, offset, T = cache
    dW = np.zeros(shape, dtype)                                          # (max_len, C)
    dW[offset:offset + T] = dy.reshape(-1, T, shape[1]).sum(axis=0)      # sum over the batch
    return dy, dW
