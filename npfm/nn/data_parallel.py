"""Data parallelism on one machine: a training batch in micro-batches, run at once.

Each fast kernel spreads its own work over the cores (``npfm.fast.threads``),
so a training step hands work to its threads and waits for them a hundred
times, and OpenBLAS synchronises its own threads inside every product. Data
parallelism, what ``torch.nn.DataParallel`` and DDP do across devices, splits
the work once per step instead:

    ids (B, T)  ->  MICRO_BATCHES micro-batches of sequences, ids_k
    out_k = replica_k.forward(ids_k)        all k at once, one per thread
    out   = concat(out_k)                   the loss sees the whole batch
    replica_k.backward(dout_k)              all k at once
    grad  += sum_k grad_k                   in the order k = 0, 1, ...

The replicas share the model's weight arrays (``Parameter.data`` is the same
array, never copied) and own their gradients and caches. They are made on
the first split forward and made again when the model's Parameters change
(LoRA adapters added, a cast); before each split forward they are pointed at
the model's current arrays, trainable flags and modes.

The same numbers on any number of threads: the split depends only on the
batch's shape, each micro-batch runs on one BLAS thread (whatever thread
runs it), and the gradients are added in micro-batch order; with one thread
the micro-batches run in turn. They are the unsplit model's numbers within
float rounding (a weight's gradient is summed over two halves, then added).

Only where it is the same computation: on the fast floor (the textbook floor
runs the batch whole), in training mode, without KV caches, with no Dropout
drawing masks (the replicas would draw the same ones), and at least
MIN_TOKENS tokens in each micro-batch (below that, splitting costs more than
it saves). A model opts in at the top of its forward (``split_forward``) and
of its backward (``ran_split``, ``split_backward``); GPT does.
"""

import copy
from functools import partial

import numpy as np

from ..fast import reference_enabled
from ..fast.threads import in_task, run_in_parallel
from .dropout import Dropout

MICRO_BATCHES = 2       # fixed, never the number of threads: the numbers must not depend on it
MIN_TOKENS = 1024       # ids per micro-batch below which the batch runs whole (tests make it 1)


class _Split:
    """What a model keeps about its split forwards (not a Module: nothing in it is walked)."""

    def __init__(self):
        self.signature = None       # the model's Parameters when the replicas were made
        self.replicas = []
        self.replica_params = []    # replica k's Parameters, in the model's order
        self.sizes = None           # micro-batch lengths of the last forward, None: it ran whole
        self.shape = None           # the shape of its output


def _state(model):
    state = model.__dict__.get("_split")
    if state is None:
        state = model.__dict__["_split"] = _Split()
    return state


def _splits(model, x):
    """How many micro-batches ``model.forward(x)`` runs in (1: the batch whole)."""
    if reference_enabled() or in_task() or not model.training:
        return 1
    if len(x) < MICRO_BATCHES or np.size(x) < MICRO_BATCHES * MIN_TOKENS:
        return 1
    if any(isinstance(m, Dropout) and m.p > 0 for _, m in model.named_modules()):
        return 1
    return MICRO_BATCHES


def _replicas(model, state, params):
    """The replicas, made (again) if the model's Parameters changed, pointed at its arrays."""
    signature = tuple((id(p), p.data.dtype.str, p.data.shape) for p in params)
    if signature != state.signature:
        del model.__dict__["_split"]                   # not copied into the replicas
        try:
            state.replicas = [copy.deepcopy(model, {id(p.data): p.data for p in params})
                              for _ in range(MICRO_BATCHES)]
        finally:
            model.__dict__["_split"] = state
        state.replica_params = [r.parameters() for r in state.replicas]
        state.signature = signature
    modules = [m for _, m in model.named_modules()]
    for replica, replica_params in zip(state.replicas, state.replica_params):
        for p, q in zip(params, replica_params):
            q.data, q.trainable = p.data, p.trainable
        for m, n in zip(modules, (n for _, n in replica.named_modules())):
            n.training = m.training
    return state.replicas


def split_forward(model, x, whole=False):
    """``model.forward(x)`` in micro-batches on every core, or None where it does not apply.

    x: (B, ...) the batch (token ids); whole: the caller's own reason to run
    it whole (KV caches). Returns the replicas' outputs concatenated on
    axis 0, or None: then the model runs the batch whole itself.
    """
    state = _state(model)
    state.sizes = None
    k = 1 if whole else _splits(model, x)
    if k == 1:
        return None
    replicas = _replicas(model, state, model.parameters())
    parts = np.array_split(x, k)
    outs = run_in_parallel(*(partial(r.forward, part) for r, part in zip(replicas, parts)))
    out = np.concatenate(outs)
    state.sizes, state.shape = [len(part) for part in parts], out.shape
    return out


def ran_split(model):
    """True when the model's last forward ran in micro-batches (its backward must too)."""
    state = model.__dict__.get("_split")
    return state is not None and state.sizes is not None


def split_backward(model, dy):
    """``model.backward(dy)`` after a split forward.

    Each replica's backward gets its rows of dy; the replicas' gradients are
    added into the model's Parameters (``+=``, as a backward does), replica 0
    first. Returns the replicas' input gradients concatenated, or None if
    they return none (a model whose inputs are ids)."""
    state = model.__dict__["_split"]
    dy = model._check_dy(dy, shape=state.shape)
    parts = np.split(dy, np.cumsum(state.sizes)[:-1])

    def backward(i):
        for q in state.replica_params[i]:
            q.grad.fill(0)
        return state.replicas[i].backward(parts[i])

    dxs = run_in_parallel(*(partial(backward, i) for i in range(len(parts))))
    for j, p in enumerate(model.parameters()):
        for replica_params in state.replica_params:
            p.grad += replica_params[j].grad
    return None if all(dx is None for dx in dxs) else np.concatenate(dxs)
