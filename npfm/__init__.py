"""npfm: transformer foundation models from scratch in NumPy.

Every layer is a pure pair ``thing_forward(...) -> (y, cache)`` /
``thing_backward(dy, cache) -> grads`` (collected in ``npfm.functional``) and a
small Module over it (collected in ``npfm.nn``). Models are Modules whose
backward is written out by hand in reverse order of their forward.

Shape letters used in every docstring and comment:

    B  batch                    T  sequence length (Tq queries, Tk keys)
    C  channels (model width)   H  attention heads
    D  head size (C // H)       V  vocabulary size
    F  feed-forward width       N  rows of a flattened batch (B * T)
"""

__version__ = "0.1.0"

from .core import Module, Parameter  # noqa: E402,F401
