"""Timing helpers shared by the benchmark scripts (never used by tests)."""

import time


def best_of(fn, repeat=5, warmup=2):
    """Best wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def row(name, ours, ref=None):
    """One line of the table: our time, the reference's, and the ratio."""
    if ref is None:
        return f"{name:<34} {ours * 1e3:9.1f} ms   {'-':>9}      {'-':>6}"
    return f"{name:<34} {ours * 1e3:9.1f} ms {ref * 1e3:9.1f} ms  {ours / ref:6.2f}x"
