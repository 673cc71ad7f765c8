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

import os as _os
import sys as _sys

if "numpy" not in _sys.modules:
    # OpenBLAS's worker threads spin for about 2^28 cycles (0.1 s) after each
    # matrix product before they sleep, holding the cores that npfm.parallel's
    # threads need for the elementwise work between products (a GPT training
    # step is 20% slower). 2^20 cycles (~0.4 ms) still keeps them awake between the
    # back-to-back products of sampling.
    # OpenBLAS reads this once, when NumPy loads it, so it only helps when npfm
    # is imported first (the ``npfm`` command, the benchmarks); set it in the
    # environment yourself otherwise. A value you set is kept.
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

from .core import Module, Parameter  # noqa: E402,F401
