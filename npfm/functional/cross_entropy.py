"""Cross-entropy of logits against integer targets.

For one row of logits z (V entries) and its target class c:

    log p_c = log softmax(z)_c = z_c - logsumexp(z)
    loss_row = -log p_c

(``log_softmax`` subtracts the row max first, so logits of size 1000 are
fine.) The loss is the mean over the n rows whose target is not
``ignore_index`` (padding, unmasked BERT positions). Its gradient is

    dloss/dz = (softmax(z) - onehot(c)) / n    on counted rows,   0 on ignored rows

If every target is ignored (n = 0) the loss is 0 and the gradient is all
zeros: there is nothing to learn from, and 0 / 0 = NaN would poison training.
(PyTorch returns NaN here.)
"""

import numpy as np

from .softmax import log_softmax


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
    log_p = log_softmax(z)                                             # (N, V)
    rows = np.flatnonzero(counted)                                     # (n,)
    loss = -log_p[rows, t[rows]].sum() / n if n else 0.0                # nothing counted: 0
    return logits.dtype.type(loss), (np.exp(log_p), t, counted, n, logits.shape)


def cross_entropy_backward(dloss, cache):
    """dloss: scalar (1.0 for the loss itself) -> dlogits (..., V).

    dlogits = dloss * (softmax - onehot(target)) / n on counted rows, 0 on ignored ones.
    """
    probs, t, counted, n, shape = cache
    rows = np.flatnonzero(counted)                                     # (n,)
    dz = probs * counted[:, None]                                      # (N, V) 0 on ignored rows
    dz[rows, t[rows]] -= 1.0
    return (dz * (float(dloss) / max(n, 1))).reshape(shape)            # (..., V)
