"""Cross-entropy of logits against integer targets.

For one row of logits z (V entries) and its target class c:

    log p_c = z_c - logsumexp(z),   logsumexp(z) = m + log sum_j exp(z_j - m),  m = max(z)
    loss_row = -log p_c

Subtracting the row max m keeps every exp <= 1, so logits of size 1000 are
fine. The loss is the mean over the n rows whose target is not
``ignore_index`` (padding, unmasked BERT positions). Its gradient is

    dloss/dz = (softmax(z) - onehot(c)) / n    on counted rows,   0 on ignored rows

If every target is ignored (n = 0) the loss is 0 and the gradient is all
zeros: there is nothing to learn from, and 0 / 0 = NaN would poison training.
(PyTorch returns NaN here.)
"""

from __future__ import annotations

import numpy as np

from .core import Module, check_array
from .parallel import map_rows


def cross_entropy_forward(logits, targets, ignore_index=-100):
    """Mean over counted rows of -log softmax(logits)[target].

    logits: (..., V) float   targets: (...) integers in [0, V) or ignore_index
    ->   loss: a 0-d scalar of the logits' dtype, cache
    """
    logits = check_array(logits, "logits", who="cross_entropy")
    targets = np.asarray(targets)
    if targets.dtype == bool or not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets have shape {targets.shape}, expected "
                         f"{logits.shape[:-1]} (the logits' shape {logits.shape} without the last axis)")
    V = logits.shape[-1]
    z = logits.reshape(-1, V)                                          # (N, V)
    t = targets.reshape(-1)                                            # (N,)
    counted = t != ignore_index                                        # (N,)
    bad = counted & ((t < 0) | (t >= V))
    if bad.any():
        raise ValueError(f"cross_entropy: target {int(t[bad][0])} is outside the classes [0, {V}) "
                         f"and is not ignore_index ({ignore_index})")
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


class CrossEntropyLoss(Module):
    """forward(logits, targets) -> mean loss; backward(dloss=1.0) -> dlogits."""

    def __init__(self, ignore_index=-100):
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        loss, self._cache = cross_entropy_forward(logits, targets, self.ignore_index)
        return loss

    def backward(self, dloss=1.0):
        return cross_entropy_backward(dloss, self._saved())
