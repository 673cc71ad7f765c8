"""benchmarks/bench_gpt.py: the batch-whole step it times beside the split one really runs whole."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import bench_gpt  # noqa: E402

from npfm.models.gpt import GPT, preset  # noqa: E402
from npfm.nn import data_parallel  # noqa: E402


def test_whole_batch_runs_the_step_unsplit_and_restores_the_split(monkeypatch):
    monkeypatch.setattr(data_parallel, "MIN_TOKENS", 1)          # the tiny batch would split
    model = GPT(preset("tiny"))
    ids = np.random.default_rng(0).integers(0, model.config.vocab_size, (4, model.config.context + 1))
    step = bench_gpt.npfm_step(model, ids)
    step()
    assert data_parallel.ran_split(model)
    bench_gpt.whole_batch(step)()
    assert not data_parallel.ran_split(model)
    assert data_parallel.MIN_TOKENS == 1
