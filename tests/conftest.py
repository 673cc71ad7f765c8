"""The suite on every core: pytest-xdist workers, each on one thread.

``pip install -e ".[test]"`` brings pytest-xdist, and a plain ``pytest`` then
runs as ``pytest -n auto --dist worksteal``: one worker process per core;
each worker starts on its own contiguous share of the tests (so a module's
expensive fixture is mostly built once) and, when its share is done, takes
tests from the end of another's (the notebook runs are long and come
last). Say ``-n 0`` (or ``-p no:xdist``) for one process, as when debugging
with ``--pdb``; an explicit ``-n N`` is kept as given.

Each worker runs NumPy's OpenBLAS and npfm's row blocks on one thread
(``OPENBLAS_NUM_THREADS=1``, ``NPFM_NUM_THREADS=1``): two workers that each
asked for both cores would spend the time fighting over them. OpenBLAS reads
its variable once, when NumPy loads, so it is set here, in the controlling
process, before the workers start (they inherit it); a value you set
yourself is kept. The tests that compare thread counts still do so: they set
``npfm.fast.threads.set_num_threads`` themselves.

The workers share Hypothesis's example database (``.hypothesis/``): each
test runs in one worker, its examples are files of their own under the
test's key, and Hypothesis writes each by an atomic rename, so a failing
example found by one run is still replayed first by the next.
"""

import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Add ``-n auto --dist worksteal`` when xdist is active and no -n was given (before xdist reads it)."""
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return
    if config.option.numprocesses is None and not config.getoption("usepdb", False):
        if config.hook.pytest_xdist_auto_num_workers(config=config) > 1:
            config.option.numprocesses = "auto"
            if config.option.dist == "no":
                config.option.dist = "worksteal"


def pytest_configure(config):
    """In the controlling process of a run on several workers: one thread per worker."""
    if hasattr(config, "workerinput"):
        return
    if (getattr(config.option, "numprocesses", None) or 0) > 1:
        os.environ.setdefault("NPFM_NUM_THREADS", "1")
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
