"""Softmax cross-entropy with ``ignore_index`` as a Module (the pair:
npfm/functional/cross_entropy.py), and the checks every caller shares."""

import numpy as np

from ..core import Module, check_array
from ..fast import pair


def check_targets(logits, targets, ignore_index, who="cross_entropy"):
    """logits as a float array (..., V) and targets as integers of shape (...)
    in [0, V) or ignore_index; a clear error otherwise."""
    logits = check_array(logits, "logits", who=who)
    targets = np.asarray(targets)
    if targets.dtype == bool or not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"{who}: targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"{who}: targets have shape {targets.shape}, expected "
                         f"{logits.shape[:-1]} (the logits' shape {logits.shape} without the last axis)")
    V = logits.shape[-1]
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= V))
    if bad.any():
        raise ValueError(f"{who}: target {int(targets[bad][0])} is outside the classes [0, {V}) "
                         f"and is not ignore_index ({ignore_index})")
    return logits, targets


class CrossEntropyLoss(Module):
    """forward(logits, targets) -> mean loss over counted targets;
    backward(dloss=1.0) -> dlogits. ``count`` holds the number of counted
    targets of the last forward (for averaging over several batches)."""

    def __init__(self, ignore_index=-100):
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        logits, targets = check_targets(logits, targets, self.ignore_index)
        forward, self._backward = pair("cross_entropy")
        loss, self._cache = forward(logits, targets, self.ignore_index)
        self.count = int((targets != self.ignore_index).sum())
        return loss

    def backward(self, dloss=1.0):
        cache = self._saved()
        return self._backward(dloss, cache)
