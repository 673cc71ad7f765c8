"""Row blocks on every core: how npfm keeps NumPy's one-core operations busy.

A NumPy ufunc (``x * y``, ``np.exp``) runs on one core, and on arrays of a
few megabytes it spends much of its time waiting for memory: each of the
eight passes of a GELU streams 8 MB in and out. Two facts help:

- Many of our computations treat the rows of their inputs independently
  (LayerNorm normalises each row, GELU acts on each element, attention treats
  each sequence of the batch alone). Splitting the rows into blocks and
  running every pass on one block before moving on keeps the block in the
  core's cache between passes.
- NumPy releases Python's global interpreter lock inside ufunc loops and
  matrix products, so blocks handed to Python threads run truly in parallel.

``map_rows(fn, *arrays)`` does both. It cuts axis 0 of every array into the
same blocks of rows and calls ``fn`` once per block; each thread takes the
next block left until none is (a thread that starts late does fewer).
``fn`` writes its results into blocks of arrays it was given (output arrays
are passed like inputs); whatever it returns is taken to be sums over the
block's rows (a bias gradient), and ``map_rows`` returns their totals,
added in block order. The blocks depend only on the shapes,
never on the number of threads, so results are the same bit for bit with
one thread or eight.

Calls nest: a task may call ``map_rows`` or ``run_in_parallel`` again (each
micro-batch of ``npfm.nn.data_parallel`` runs a whole forward and backward
as one task). A nested call asks only the threads that run no task yet,
and cancels any helper that has not started once its own thread has run
every block, so it never waits for a busy thread; the blocks, and so the
bits, are those of the same call made alone.

Threads: ``NPFM_NUM_THREADS`` in the environment, else the cores this
process may use (at most 8); ``set_num_threads(n)`` changes it at run time
(1 = no threads; the blocks are still used).

Sharing the cores with NumPy's BLAS. Matrix products run on OpenBLAS's own
threads, and two things make them collide with ours:

- a block that calls a matrix product (attention does) from each of our
  threads asks OpenBLAS for its threads too: four busy threads on two
  cores. While its tasks run, on our threads or on the calling thread
  alone, ``map_rows`` asks OpenBLAS for one thread
  (``openblas_set_num_threads``, found in NumPy's own OpenBLAS library), and
  restores the number afterwards (always, not only with threads of ours:
  OpenBLAS may round a product differently on one thread and on two, and a
  block's results must not depend on how many threads run it);
- after a product, OpenBLAS's threads spin for about 0.1 s before they
  sleep, taking the cores our threads need. ``import npfm`` shortens that
  spin (``OPENBLAS_THREAD_TIMEOUT``) when it runs before NumPy is loaded.

Without OpenBLAS (another BLAS under NumPy) both are skipped: the results
are the same, only the speed differs.

The spin (``OPENBLAS_THREAD_TIMEOUT``, in units of 2^n cycles) is read by
OpenBLAS once, when NumPy loads it, so it is the one setting that cannot live
here: ``npfm/__init__.py`` sets it to 20 (2^20 cycles, ~0.4 ms instead of
0.1 s) before anything imports NumPy, keeping a value you set yourself. 2^20
still keeps the threads awake between the back-to-back products of sampling;
a shorter spin trains a few percent faster but slows recomputing generation.
It only helps when npfm is imported before NumPy (the ``npfm`` command and
the benchmarks do; set the variable yourself otherwise).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


BLOCK_ELEMENTS = 1 << 18     # elements of the widest array per block: 1 MB of float32
_state = threading.local()   # .inside: this thread is running a task already
_busy = 0                    # threads running tasks now (nested calls use only the others)
_busy_lock = threading.Lock()
_pool = None
_pool_lock = threading.Lock()


def _default_threads():
    env = os.environ.get("NPFM_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"NPFM_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                                 # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


_num_threads = _default_threads()


def num_threads():
    """How many threads ``map_rows`` uses, the calling thread included."""
    return _num_threads


def set_num_threads(n):
    """Use n threads (n >= 1) from now on; returns the previous number."""
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    previous, _num_threads = _num_threads, int(n)
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None
    return previous


def _get_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_num_threads - 1, thread_name_prefix="npfm")
        return _pool


def _forget_pool_after_fork():
    """A forked child inherits no pool threads; it starts its own when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _find_openblas_threads():
    """(get, set) for the number of threads of NumPy's OpenBLAS, or None.

    NumPy's wheels carry OpenBLAS in a folder beside the package (numpy.libs,
    numpy/.libs, numpy/.dylibs); on Linux /proc/self/maps lists every loaded
    library as well. OpenBLAS names the two functions with a prefix and a
    suffix that depend on how it was built.
    """
    import ctypes
    import glob

    here = os.path.dirname(np.__file__)
    paths = []
    for folder in (os.path.join(here, os.pardir, "numpy.libs"), os.path.join(here, ".libs"),
                   os.path.join(here, ".dylibs")):
        paths += sorted(glob.glob(os.path.join(folder, "*openblas*")))
    try:
        with open("/proc/self/maps") as maps:
            paths += sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        pass
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, set_
    return None


_openblas_threads = False       # not looked for yet: found on the first threaded call


def _blas_threads():
    """(get, set) of OpenBLAS's thread count, or None; looked for once."""
    global _openblas_threads
    if _openblas_threads is False:
        try:
            _openblas_threads = _find_openblas_threads()
        except Exception:                                  # never let a speed-up break a run
            _openblas_threads = None
    return _openblas_threads


def _as_tuple(result):
    if result is None:
        return ()
    return result if isinstance(result, tuple) else (result,)


def in_task():
    """True while this thread runs a task of ``map_rows`` or ``run_in_parallel``."""
    return getattr(_state, "inside", False)


def _run_tasks(task, count):
    """[task(0), ..., task(count - 1)] computed on up to ``num_threads()``
    threads, this one included: each thread takes the next i left, and runs
    it with one BLAS thread (with one thread of ours as well).

    From inside a task (nested: a micro-batch's LayerNorm, say) only the
    threads that run no task yet are asked to help (none: this thread runs
    every task in turn), and a helper that has not started by the time this
    thread has run every task is cancelled: a nested call never waits for a
    busy thread."""
    results = [None] * count
    next_task = itertools.count()          # shared: each thread takes the next task left

    def run_tasks():
        global _busy
        was_inside = in_task()
        if not was_inside:
            with _busy_lock:
                _busy += 1
        _state.inside = True
        try:
            while (i := next(next_task)) < count:
                results[i] = task(i)
        finally:
            _state.inside = was_inside
            if not was_inside:
                with _busy_lock:
                    _busy -= 1

    threads = min(_num_threads, count)
    if in_task():
        threads = min(threads, 1 + _num_threads - _busy)   # this thread and the free ones
    # one BLAS thread for every task, however many threads run them: OpenBLAS
    # may round a product differently on one thread and on two (its edge
    # tiles fall elsewhere), so a task's products must not depend on that count
    blas = _blas_threads()
    blas_threads = blas[0]() if blas else None
    if blas_threads and blas_threads > 1:
        blas[1](1)                                         # our threads, one BLAS thread each
    else:
        blas_threads = None                                # nothing to restore
    try:
        futures = [_get_pool().submit(run_tasks) for _ in range(threads - 1)]
        try:
            run_tasks()
        finally:
            for f in futures:                              # every task done (or failed):
                if not f.cancel():                         # a helper that never started is
                    f.exception()                          # dropped, one that did is waited for
    finally:
        if blas_threads:
            blas[1](blas_threads)
    for f in futures:
        if not f.cancelled():
            f.result()                                     # re-raise a worker's error
    return results


def run_in_parallel(*calls):
    """[call() for call in calls], the calls shared among the threads, each
    call on one thread with one BLAS thread.

    For independent matrix products such as a Linear's dx and dW: each runs
    whole on one core, in parallel, where OpenBLAS would run them one after
    the other, each split over the cores and synchronised (which a busy
    machine slows badly). OpenBLAS may round a product differently on one
    BLAS thread and on two (it splits rows and columns, never the sum, but
    its edge tiles then fall elsewhere: seen on (128, 256) @ (256, 16)), so
    every call runs on one BLAS thread with one thread of ours too, and the
    results do not depend on the number of threads. From inside a task the
    calls go to the threads that are free (none: they run in turn here).
    """
    return _run_tasks(lambda i: calls[i](), len(calls))


def map_rows(fn, *arrays, block_elements=None):
    """Call fn(*blocks) on blocks of rows (axis 0) of ``arrays``, on every thread.

    arrays: the same length N on axis 0, any trailing shapes (a broadcast
    view is fine for inputs). fn writes its outputs into the blocks of the
    output arrays among ``arrays``, and returns None or partial sums over
    the block's rows (an array or a tuple of arrays).
    Returns the totals of those sums (None if fn returns None).
    """
    block = block_elements or BLOCK_ELEMENTS
    for a in arrays:
        if a.size > block:
            break
    else:
        return fn(*arrays)                                 # every array fits in one block
    n = len(arrays[0])
    widest = max(math.prod(a.shape[1:]) for a in arrays)   # elements per row
    if any(len(a) != n for a in arrays):
        raise ValueError(f"map_rows: the arrays have different lengths on axis 0: "
                         f"{[len(a) for a in arrays]}")
    rows = max(1, block // max(widest, 1))
    starts = range(0, n, rows)
    sums = _run_tasks(lambda i: _as_tuple(fn(*(a[starts[i]:starts[i] + rows] for a in arrays))),
                      len(starts))
    if not sums[0]:
        return None
    totals = [s.copy() for s in sums[0]]
    for block_sums in sums[1:]:
        for total, s in zip(totals, block_sums):
            total += s
    return tuple(totals) if len(totals) > 1 else totals[0]

