"""Timing helpers shared by the benchmark scripts (never used by tests)."""

import time


def best_of_pair(ours, ref=None, repeat=5, warmup=2):
    """Best wall-clock seconds of ``ours`` and of ``ref`` (None: not timed),
    called in turn: a machine that slows down or speeds up during the run
    affects both alike, so their ratio stays fair."""
    for _ in range(warmup):
        ours()
        if ref is not None:
            ref()
    best_ours = best_ref = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours()
        best_ours = min(best_ours, time.perf_counter() - t0)
        if ref is not None:
            t0 = time.perf_counter()
            ref()
            best_ref = min(best_ref, time.perf_counter() - t0)
    return best_ours, (best_ref if ref is not None else None)


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
