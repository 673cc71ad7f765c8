"""Numerical gradient checks by central differences, in float64.

For a function y = f(x) and a random upstream gradient dy, the fake loss

    L(x) = sum(f(x) * dy)

has dL/dx equal to what ``backward(dy)`` must return. Central differences
estimate it entry by entry:

    dL/dx[i] ~= (L(x + h e_i) - L(x - h e_i)) / (2 h)       error O(h^2)

The error we report is the *relative* error of the whole array,

    rel_error(a, n) = max|a - n| / max(max|a|, max|n|, 1e-8)

the largest absolute disagreement measured against the gradient's own scale
(per-element relative error explodes on entries that are zero up to rounding;
the 1e-8 floor treats an array whose every entry is below it as zero: with
T = 1 a softmax is constant and the gradients of q and k are exactly zero,
which the two methods find up to rounding, 1e-16 against 1e-20).
In float64 with h = 1e-6 a correct backward gives about 1e-9 or less; a
wrong one gives 1e-2 and more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .core import Module

TOLERANCE = 1e-6


def rel_error(analytic, numeric):
    """max|a - n| / max(max|a|, max|n|, 1e-8): 0 for equal arrays, ~1 for unrelated ones."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {n.shape}")
    if a.size == 0:
        return 0.0
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(n))):
        return float("inf")
    scale = max(np.abs(a).max(), np.abs(n).max(), 1e-8)
    return float(np.abs(a - n).max() / scale)


def numerical_gradient(f, x, dy, h=1e-6, entries=None):
    """Central-difference gradient of sum(f(x) * dy) with respect to ``x``.

    f: callable of no argument that reads ``x`` (changed in place here) and
       returns an array shaped like ``dy``; or a callable of one argument,
       then called as f(x).
    x: float64 array, perturbed in place and restored.
    entries: optional flat indices to estimate; the others stay 0.
    Returns an array shaped like x.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient needs float64 (got {x.dtype}): "
                        "float32 rounding swamps the central difference")
    call = _as_thunk(f, x)
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)                 # a view: writing it writes x
    flat_g = grad.reshape(-1)
    indices = range(x.size) if entries is None else entries
    for i in indices:
        old = flat_x[i]
        flat_x[i] = old + h
        plus = np.sum(np.asarray(call(), dtype=np.float64) * dy)
        flat_x[i] = old - h
        minus = np.sum(np.asarray(call(), dtype=np.float64) * dy)
        flat_x[i] = old
        flat_g[i] = (plus - minus) / (2 * h)
    return grad


def _dy_rng(seed):
    """The generator of the upstream gradient: a stream of its own, so that dy
    never equals an input the caller drew with the same seed (dy = x makes
    LayerNorm's true input gradient nearly vanish, a useless check)."""
    return np.random.default_rng([seed, 0x6772])


def _as_thunk(f, x):
    try:
        import inspect
        n_args = len(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        n_args = 1
    return f if n_args == 0 else (lambda: f(x))


@dataclass
class CheckRow:
    """One checked array: which, its shape, its error and whether it passed."""
    name: str
    shape: tuple
    error: float
    passed: bool


@dataclass
class CheckReport:
    """The result of ``check_module``: a row per input and per Parameter."""
    title: str
    rows: list = field(default_factory=list)
    tolerance: float = TOLERANCE

    @property
    def passed(self):
        return all(r.passed for r in self.rows)

    @property
    def max_error(self):
        return max((r.error for r in self.rows), default=0.0)

    def errors(self):
        return {r.name: r.error for r in self.rows}

    def __str__(self):
        lines = [f"{self.title}"]
        for r in self.rows:
            lines.append(f"  {r.name:<28} {str(r.shape):<18} {r.error:9.2e}  "
                         f"{'ok' if r.passed else 'FAIL'}")
        return "\n".join(lines)


def _split_grads(grads, inputs):
    """Match what backward returned to the positional inputs that are float arrays."""
    if not isinstance(grads, tuple):
        grads = (grads,)
    float_positions = [i for i, x in enumerate(inputs)
                       if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)]
    if len(grads) == len(inputs):
        return {i: grads[i] for i in float_positions}
    if len(grads) == len(float_positions):
        return dict(zip(float_positions, grads))
    raise ValueError(f"backward returned {len(grads)} gradients for {len(inputs)} inputs "
                     f"({len(float_positions)} of them float arrays)")


def check_module(module: Module, *inputs, dy=None, seed=0, h=1e-6, tol=TOLERANCE,
                 max_entries=None, train=False, name=None, **kwargs):
    """Check ``module.backward`` against central differences for every float
    input and every Parameter, in float64.

    module: any Module; it is cast to float64 here (cast it back if needed).
    inputs: positional arguments of ``forward``. Float arrays are cast to
        float64 and checked; other arguments (token ids) are passed through.
    kwargs: keyword arguments of ``forward`` (masks, flags), not checked.
    dy: upstream gradient; default: standard normal of the output's shape.
    max_entries: check at most this many randomly chosen entries of each array
        (None: all of them) to keep whole-model checks fast.
    train: run in training mode (only for modules without randomness).
    Frozen Parameters (``p.trainable`` False) are not checked.
    Returns a CheckReport; ``report.passed`` tells whether every error < tol.
    """
    rng = _dy_rng(seed)
    module.astype(np.float64)
    module.train(train)
    inputs = [x.astype(np.float64) if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)
              else x for x in inputs]

    def run():
        return np.asarray(module.forward(*inputs, **kwargs), dtype=np.float64)

    y = run()
    if dy is None:
        dy = rng.standard_normal(y.shape)
    dy = np.asarray(dy, dtype=np.float64)
    module.zero_grad()
    y = run()
    grads = _split_grads(module.backward(dy.copy()), inputs)
    analytic = {name_: p.grad.copy() for name_, p in module.named_parameters()}

    def pick(size):
        if max_entries is None or size <= max_entries:
            return None
        return rng.choice(size, size=max_entries, replace=False)

    def compare(label, array, analytic_grad):
        entries = pick(array.size)
        numeric = numerical_gradient(run, array, dy, h=h, entries=entries)
        a = np.asarray(analytic_grad, dtype=np.float64)
        if a.shape != array.shape:
            raise ValueError(f"gradient of {label} has shape {a.shape}, expected {array.shape}")
        if entries is not None:
            a, numeric = a.reshape(-1)[entries], numeric.reshape(-1)[entries]
        err = rel_error(a, numeric)
        report.rows.append(CheckRow(label, tuple(array.shape), err, err < tol))

    report = CheckReport(name or type(module).__name__, tolerance=tol)
    for i, g in grads.items():
        compare(f"input[{i}]", inputs[i], g)
    for pname, p in module.named_parameters():
        if p.trainable:                  # a frozen Parameter gets no gradient by design
            compare(pname, p.data, analytic[pname])
    return report


def check_pair(forward, backward, inputs, dy=None, seed=0, h=1e-6, tol=TOLERANCE, **kwargs):
    """Check a pure pair: ``forward(*inputs, **kwargs) -> (y, cache)`` and
    ``backward(dy, cache) -> grads`` (one per float input, None allowed).

    Returns {input index: relative error}; raises nothing, compare with tol.
    """
    rng = _dy_rng(seed)
    inputs = [x.astype(np.float64) if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)
              else x for x in inputs]

    def run():
        return forward(*inputs, **kwargs)[0]

    y, cache = forward(*inputs, **kwargs)
    if dy is None:
        dy = rng.standard_normal(np.shape(y))
    dy = np.asarray(dy, dtype=np.float64)
    grads = _split_grads(backward(dy.copy(), cache), inputs)
    errors = {}
    for i, g in grads.items():
        if g is None:
            continue
        errors[i] = rel_error(g, numerical_gradient(run, inputs[i], dy, h=h))
    return errors
