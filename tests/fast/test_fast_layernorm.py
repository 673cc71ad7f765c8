"""The fast LayerNorm (npfm/fast/layernorm.py) against its textbook twin.

Both floors get the same inputs; each backward is fed its own floor's cache.
Tolerances, relative to the largest entry of the textbook's result:

- float64: 1e-12. The floors differ only in the order of their roundings
  (row means as BLAS products against pairwise sums), ~1e-16 each.
- float32: 1e-5. Each operation rounds to float32 (eps = 6e-8), in a
  different order on each floor; a row reduction over C <= 1000 channels
  drifts by ~sqrt(C) eps ~ 2e-6 at most in these tests (measured: 8e-7 at
  C = 700). A real mistake (a missed term, a wrong factor) is >= 1e-3.

dx is compared relative to the larger of its largest entry and its terms'
size, rstd * gamma * dy: with C = 2 it cancels to ~0 (xhat = +-1 whatever x).

The second half shows the suite goes red when the fast kernel is wrong.
"""

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npfm.fast.layernorm as fast_layernorm
import npfm.fast.threads as threads
import npfm.functional as F
from npfm.gradcheck import check_module
from npfm.nn.layernorm import LayerNorm
from floor_compare import TOLERANCE, floor_error



@contextmanager
def row_blocks(block_elements=None, n_threads=2):
    """map_rows on n_threads threads, with blocks of at most block_elements."""
    saved_block, saved_threads = threads.BLOCK_ELEMENTS, threads.set_num_threads(n_threads)
    threads.BLOCK_ELEMENTS = block_elements or saved_block
    try:
        yield
    finally:
        threads.BLOCK_ELEMENTS = saved_block
        threads.set_num_threads(saved_threads)


def compare(x, gamma, beta, dy, eps=1e-5):
    """The largest error of y, dx, dgamma, dbeta between the floors."""
    dtype = x.dtype.type
    y_fast, cache_fast = fast_layernorm.layernorm_forward(x, gamma, beta, eps)
    y_text, cache_text = F.layernorm_forward(x, gamma, beta, eps)
    errors = {"y": floor_error(y_fast, y_text, dtype)}
    grads_fast = fast_layernorm.layernorm_backward(dy, cache_fast)
    grads_text = F.layernorm_backward(dy, cache_text)
    # dx = rstd (g - mean(g) - xhat mean(g xhat)) cancels to ~0 when C = 2 (xhat = +-1):
    # its terms are of the size of rstd * g
    rstd = 1.0 / np.sqrt(x.astype(np.float64).var(-1, keepdims=True) + eps)
    terms = {"dx": float(np.abs(rstd * gamma * dy).max(initial=0.0))}
    for name, a, b in zip(("dx", "dgamma", "dbeta"), grads_fast, grads_text):
        errors[name] = floor_error(a, b, dtype, terms.get(name, 0.0))
    return errors


def inputs(shape, dtype, seed, scale=3.0, shift=1.0):
    rng = np.random.default_rng(seed)
    C = shape[-1]
    x = rng.standard_normal(shape) * scale + shift
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    dy = rng.standard_normal(shape)
    return [a.astype(dtype) for a in (x, gamma, beta, dy)]


shapes = st.tuples(st.lists(st.integers(1, 5), min_size=0, max_size=3),
                   st.integers(1, 40)).map(lambda s: (*s[0], s[1]))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**16), block=st.sampled_from([None, 7, 64]))
def test_fast_layernorm_equals_textbook(shape, dtype, seed, block):
    """Random shapes (one row, C = 1, a 1-D x), in one block or many small ones."""
    with row_blocks(block):
        errors = compare(*inputs(shape, dtype, seed))
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_layernorm_many_blocks_on_two_threads(dtype):
    """Larger than BLOCK_ELEMENTS: map_rows really splits, and sums dgamma, dbeta by block."""
    shape = (3, 500, 700)
    assert np.prod(shape) > 4 * threads.BLOCK_ELEMENTS
    with row_blocks():
        errors = compare(*inputs(shape, dtype, seed=1))
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_layernorm_rows_far_from_zero_and_constant_rows(dtype):
    """Rows with a large mean (cancellation in x - mean) and rows that are constant."""
    x, gamma, beta, dy = inputs((6, 33), dtype, seed=2, scale=0.5, shift=100.0)
    x[2] = x.dtype.type(7.0)                          # var = 0: rstd = 1 / sqrt(eps)
    errors = compare(x, gamma, beta, dy)
    assert max(errors.values()) <= TOLERANCE[dtype], errors


# ----- a wrong fast kernel turns the suite red ---------------------------------------------


def wrong_backward(dy, cache):
    """The fast backward with dx 1% too large: the kind of slip a kernel can make."""
    dx, dgamma, dbeta = right_backward(dy, cache)
    return dx * 1.01, dgamma, dbeta


right_backward = fast_layernorm.layernorm_backward


def test_a_wrong_fast_kernel_fails_the_floor_comparison_and_the_gradient_check(monkeypatch):
    import npfm
    x, gamma, beta, dy = inputs((4, 9), np.float64, seed=3)
    ln = LayerNorm(9)
    ln.gamma.data[:], ln.beta.data[:] = gamma, beta
    assert not npfm.fast.reference_enabled()
    assert max(compare(x, gamma, beta, dy).values()) <= TOLERANCE[np.float64]
    assert check_module(ln, x, seed=3).passed                     # the right kernel passes

    monkeypatch.setattr(fast_layernorm, "layernorm_backward", wrong_backward)
    errors = compare(x, gamma, beta, dy)
    assert errors["dx"] > 1e-3, errors                            # the floors now disagree
    for dtype in (np.float64, np.float32):                        # this file's own tests fail
        with pytest.raises(AssertionError):
            test_fast_layernorm_many_blocks_on_two_threads(dtype)
    with pytest.raises(AssertionError):
        test_fast_layernorm_equals_textbook()
    report = check_module(ln, x, seed=3)                          # the Module runs the fast kernel
    assert not report.passed, str(report)
    with npfm.fast.reference():                                        # the textbook is still right
        assert check_module(ln, x, seed=3).passed
