"""Cross-entropy, fast: the textbook pair (npfm/functional/cross_entropy.py) in row blocks.

The softmax and the log-probability of each row's target come out of one
pass per block of rows, on every core (``npfm.fast.threads.map_rows``); the
probabilities are kept for the backward instead of being made again.
"""

import numpy as np

from .threads import map_rows

def cross_entropy_forward(logits, targets, ignore_index=-100):
    """Mean over counted rows of -log softmax(logits)[target].

    logits: (..., V) float   targets: (...) integers in [0, V) or ignore_index
    ->   loss: a 0-d scalar of the logits' dtype, cache
    """
    V = logits.shape[-1]
    z = logits.reshape(-1, V)                                          # (N, V)
    t = targets.reshape(-1)                                            # (N,)
    counted = t != ignore_index                                        # (N,)
    n = int(counted.sum())
    rows = np.flatnonzero(counted)                                     # (n,)
    probs = np.empty(z.shape, z.dtype)                                 # (N, V) softmax
    log_p = np.empty(len(z), z.dtype)                                  # (N,) log p_target
    # rows are independent: blocks of them on every core
    map_rows(_softmax_log_p_rows, z, np.where(counted, t, 0), probs, log_p)
    loss = -log_p[rows].sum() / n if n else 0.0
    return logits.dtype.type(loss), (probs, t, counted, rows, n, logits.shape)


def _softmax_log_p_rows(z, t, probs, log_p):
    """Fills probs = softmax(z) and log_p = log probs[t] for a block of rows z (n, V)."""
    np.subtract(z, z.max(axis=-1, keepdims=True), out=probs)           # (n, V) shifted logits
    target_logit = probs[np.arange(len(z)), t]                         # (n,)
    np.exp(probs, out=probs)
    row_sum = np.einsum("nv->n", probs)                                # (n,)
    np.subtract(target_logit, np.log(row_sum), out=log_p)              # z_t - m - log sum exp
    probs /= row_sum[:, None]


def cross_entropy_backward(dloss, cache):
    """dloss: scalar (1.0 for the loss itself) -> dlogits (..., V).

    dlogits = dloss * (softmax - onehot(target)) / n on counted rows, 0 on ignored ones.
    """
    probs, t, counted, rows, n, shape = cache
    scale = float(dloss) / max(n, 1)     # a Python float keeps the logits' dtype
    row_weight = counted.astype(probs.dtype) * scale                   # (N,) 0 on ignored rows
    dlogits = probs * row_weight[:, None]                              # (N, V)
    dlogits[rows, t[rows]] -= scale
    return dlogits.reshape(shape)
