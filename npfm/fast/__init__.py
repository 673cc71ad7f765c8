"""The fast floor: the textbook pairs' contracts, faster, and proven equal.

Each kernel here has the name, signature and results of its twin in
``npfm.functional`` (its cache may be laid out differently: a cache belongs
to its pair) and exists only because a profile showed it pays:

    layernorm      rows in cache-sized blocks on every core, row means as
                   matrix-vector products (fast/layernorm.py)
    gelu           the tanh form as x sigmoid(2u) (one exp, faster than tanh), its
                   backward from the sigmoid kept; in place, blocks on every core
    attention      q scaled instead of the scores, the mask added as 0/-inf,
                   a causal mask by chunks of queries against the keys they see,
                   a softmax that skips the max shift when nothing can
                   overflow, dP - r from one product, blocks of sequences;
                   one new position against a KV cache in a few calls
                   (fast/decode.py, ``fast_kernel("attention", "decode")``)
    cross_entropy  softmax and log p of the target in one pass per row block
    embedding      the duplicate-summing scatter on the flattened table
    linear         the bias added in place, its gradient as a product with ones,
                   the backward's dx and dW products at once, one per core
    swiglu         every product on flattened rows (one BLAS call, not NumPy's
                   stacked loop), the sigmoid kept, buffers reused
    lora           the same: products on flattened rows, the low-rank term in place

Everything about threads and BLAS lives in ``fast/threads.py``.

The Modules ask ``pair(name)`` which (forward, backward) to run: the fast
kernel when the fast floor is on and has one, else the textbook pair, looked
up at call time (so a pair patched into ``npfm.functional``, a student's for
instance, is the one that runs). The switch: ``use_reference()``, the
``reference()`` context manager, or ``NPFM_REFERENCE=1`` in the environment.
"""

import os
from contextlib import contextmanager

from .. import functional
from . import activations, attention, cross_entropy, decode, embedding, layernorm, linear, lora, swiglu

KERNELS = {                      # name -> the module holding name_forward / name_backward
    "layernorm": layernorm,
    "gelu": activations,
    "attention": attention,
    "cross_entropy": cross_entropy,
    "embedding": embedding,
    "linear": linear,
    "swiglu": swiglu,
    "lora": lora,
}

_reference = os.environ.get("NPFM_REFERENCE", "").strip() not in ("", "0")


def use_reference(on=True):
    """Run every Module on the textbook floor alone (on=True) or on the fast
    floor where it has a kernel (on=False). Returns the previous setting."""
    global _reference
    previous, _reference = _reference, bool(on)
    return previous


def reference_enabled():
    """True when the Modules run the textbook pairs only."""
    return _reference


@contextmanager
def reference(on=True):
    """``with npfm.reference(): ...`` runs the block on the textbook floor."""
    previous = use_reference(on)
    try:
        yield
    finally:
        use_reference(previous)


def pair(name):
    """(forward, backward) of concept ``name`` as the Modules run it now."""
    where = functional if _reference or name not in KERNELS else KERNELS[name]
    return getattr(where, f"{name}_forward"), getattr(where, f"{name}_backward")


def fast_kernel(name, part="forward"):
    """The fast floor's ``name_part`` when it is in use, else None (for the
    extras a fast kernel offers beyond the contract, such as ``out=``)."""
    if _reference or name not in KERNELS:
        return None
    return getattr(KERNELS[name], f"{name}_{part}")
