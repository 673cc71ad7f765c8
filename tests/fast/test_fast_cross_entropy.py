"""The fast cross-entropy (npfm/fast/cross_entropy.py) against the textbook pair.

Each backward is fed its own floor's cache. Tolerances, relative to the
textbook's loss and to the largest entry of its gradient:

- float64: 1e-12. Both floors subtract the row max, exponentiate and take
  one log per row; they differ in the order of the roundings (the fast
  floor sums the exps with einsum, takes log p_target from the shifted
  logit), ~1e-16 each.
- float32: 1e-5. The loss sums N rows of float32 logs (eps = 6e-8) in a
  different order on each floor, and each row's log-sum-exp sums V exps;
  both drift by ~sqrt(N or V) eps (measured: 7e-7 at V = 1000).

Where the results cancel, the scale is that of their terms: the loss is a
mean of log(sum of exps) - (z_target - max), the sum >= 1 and rounded to eps,
so the loss is compared to at least 1 nat (a confident row's loss is ~1e-13
and only known to eps); dlogits = (p - onehot) dloss / n is compared to at
least dloss / n (p - 1 for a confident row is such a difference).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npfm.fast.cross_entropy as fast_cross_entropy
import npfm.fast.threads as threads
import npfm.functional as F
from floor_compare import TOLERANCE, floor_error



def compare(logits, targets, dloss=1.0, ignore_index=-100, block=None):
    dtype = logits.dtype.type
    saved_block, saved_threads = threads.BLOCK_ELEMENTS, threads.set_num_threads(2)
    threads.BLOCK_ELEMENTS = block or saved_block
    try:
        loss_fast, cache_fast = fast_cross_entropy.cross_entropy_forward(logits, targets, ignore_index)
        dlogits_fast = fast_cross_entropy.cross_entropy_backward(dloss, cache_fast)
    finally:
        threads.BLOCK_ELEMENTS = saved_block
        threads.set_num_threads(saved_threads)
    loss_text, cache_text = F.cross_entropy_forward(logits, targets, ignore_index)
    assert type(loss_fast) is type(loss_text) is dtype                 # a scalar of the logits' dtype
    n = max(int((targets != ignore_index).sum()), 1)
    return {"loss": floor_error(loss_fast, loss_text, dtype, terms=1.0),
            "dlogits": floor_error(dlogits_fast, F.cross_entropy_backward(dloss, cache_text), dtype,
                                   terms=abs(dloss) / n)}


def draw(shape, V, dtype, seed, scale=3.0, ignored=0.3, ignore_index=-100):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((*shape, V)) * scale).astype(dtype)
    targets = rng.integers(0, V, shape)
    targets[rng.random(shape) < ignored] = ignore_index
    return logits, targets


@settings(max_examples=50, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
       V=st.integers(1, 30), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 3.0, 1000.0]),
       ignored=st.sampled_from([0.0, 0.4, 1.0]), dloss=st.sampled_from([1.0, 0.37]),
       block=st.sampled_from([None, 8, 50]))
def test_fast_cross_entropy_equals_textbook(shape, V, dtype, seed, scale, ignored, dloss, block):
    """Random shapes (one row, V = 1), logits up to 1000x, some, none or all rows ignored."""
    logits, targets = draw(shape, V, dtype, seed, scale, ignored)
    errors = compare(logits, targets, dloss, block=block)
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_cross_entropy_every_row_ignored(dtype):
    """Nothing counted: the loss is 0 and the gradient all zeros, on both floors."""
    logits, targets = draw((3, 5), 7, dtype, seed=0, ignored=1.0)
    assert (targets == -100).all()
    errors = compare(logits, targets)
    assert errors == {"loss": 0.0, "dlogits": 0.0}
    assert float(F.cross_entropy_forward(logits, targets)[0]) == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_cross_entropy_another_ignore_index(dtype):
    logits, targets = draw((4, 6), 9, dtype, seed=1, ignored=0.5, ignore_index=0)
    errors = compare(logits, targets, ignore_index=0)
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_cross_entropy_many_blocks_on_two_threads(dtype):
    """(8, 256, 1000) logits, eight blocks of 262 rows, with ignored rows in every block."""
    logits, targets = draw((8, 256), 1000, dtype, seed=2, scale=5.0, ignored=0.3)
    assert logits.size > 7 * threads.BLOCK_ELEMENTS
    errors = compare(logits, targets, dloss=0.5)
    assert max(errors.values()) <= TOLERANCE[dtype], errors
