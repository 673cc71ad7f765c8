"""npfm: transformer foundation models from scratch in NumPy.

Two floors, one contract. The textbook floor (``npfm.functional``) holds
every concept as a pure pair, the math alone:

    y, cache = thing_forward(x, *params, ...)
    dx, *dparams = thing_backward(dy, cache)

The fast floor (``npfm.fast``) holds kernels with the same names, signatures
and results, only where a profile says they pay; each is tested against its
textbook twin. The Modules (``npfm.nn``) check their inputs, own the
Parameters and call the fast kernel if there is one, else the textbook pair;
``npfm.use_reference()`` (or ``NPFM_REFERENCE=1``, or ``--reference`` on the
commands) runs everything on the textbook floor. Models (``npfm.models``) are
Modules whose backward is written out by hand in reverse order of forward.

Shape letters used in every docstring and comment:

    B  batch                    T  sequence length (Tq queries, Tk keys)
    C  channels (model width)   H  attention heads (H_kv key/value heads)
    D  head size (C // H)       V  vocabulary size
    F  feed-forward width       N  rows of a flattened batch (B * T)
"""

__version__ = "0.2.0"

import os as _os
import sys as _sys

if "numpy" not in _sys.modules:   # before NumPy loads OpenBLAS: see npfm/fast/threads.py
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

from .core import Module, Parameter  # noqa: E402,F401
from .fast import reference, reference_enabled, use_reference  # noqa: E402,F401
