"""The fast embedding and linear kernels (npfm/fast/embedding.py, npfm/fast/linear.py)
against their textbook twins.

Each backward is fed its own floor's cache. Tolerances, relative to the
largest entry of the textbook's result:

- float64: 1e-12. The embedding's scatter adds the same numbers in the same
  order (one index per element instead of one per row); linear's bias
  gradient is a product with a vector of ones instead of a sum over rows,
  a different order of ~N roundings of 1e-16.
- float32: 1e-5. The same, with eps = 6e-8: a sum of N <= 500 float32 rows
  in a different order drifts by ~sqrt(N) eps (measured: below 1e-6).

Sums of rows of dy (dW of the embedding, db) can cancel: they are compared
relative to the larger of their largest entry and max |dy|.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npfm.fast.embedding as fast_embedding
import npfm.fast.linear as fast_linear
import npfm.fast.threads as threads
import npfm.functional as F
from floor_compare import TOLERANCE, floor_error



lead_shapes = st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple)
dtypes = st.sampled_from([np.float64, np.float32])


def compare_embedding(ids, W, dy):
    dtype = W.dtype.type
    y_fast, cache_fast = fast_embedding.embedding_forward(ids, W)
    y_text, cache_text = F.embedding_forward(ids, W)
    return {"y": floor_error(y_fast, y_text, dtype),
            "dW": floor_error(fast_embedding.embedding_backward(dy, cache_fast),
                              F.embedding_backward(dy, cache_text), dtype,
                              terms=float(np.abs(dy).max(initial=0.0)))}


@settings(max_examples=40, deadline=None)
@given(lead=lead_shapes, V=st.integers(1, 12), C=st.integers(1, 9), dtype=dtypes,
       seed=st.integers(0, 2**16))
def test_fast_embedding_equals_textbook(lead, V, C, dtype, seed):
    """Random shapes (0-d ids, one row, V = 1: every id repeated), duplicates summed."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, lead)
    W = rng.standard_normal((V, C)).astype(dtype)
    dy = rng.standard_normal((*lead, C)).astype(dtype)
    errors = compare_embedding(ids, W, dy)
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_embedding_many_repeated_ids(dtype):
    """(64, 128) positions over 50 ids: every row of dW a sum of ~160 rows of dy."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (64, 128))
    ids[0] = 7                                          # one id 128 times more
    W = rng.standard_normal((60, 32)).astype(dtype)     # ids 50..59 never used: zero rows
    dy = rng.standard_normal((64, 128, 32)).astype(dtype)
    errors = compare_embedding(ids, W, dy)
    assert max(errors.values()) <= TOLERANCE[dtype], errors
    _, cache = fast_embedding.embedding_forward(ids, W)
    assert (fast_embedding.embedding_backward(dy, cache)[50:] == 0).all()


def compare_linear(x, W, b, dy):
    dtype = x.dtype.type
    y_fast, cache_fast = fast_linear.linear_forward(x, W, b)
    y_text, cache_text = F.linear_forward(x, W, b)
    errors = {"y": floor_error(y_fast, y_text, dtype)}
    grads_fast = fast_linear.linear_backward(dy, cache_fast)
    grads_text = F.linear_backward(dy, cache_text)
    terms = {"db": float(np.abs(dy).max(initial=0.0))}   # a sum of rows of dy: it may cancel
    for name, a, c in zip(("dx", "dW", "db"), grads_fast, grads_text):
        if c is None:
            assert a is None                              # no bias, no bias gradient
        else:
            errors[name] = floor_error(a, c, dtype, terms.get(name, 0.0))
    return errors


@settings(max_examples=40, deadline=None)
@given(lead=lead_shapes, n_in=st.integers(1, 9), n_out=st.integers(1, 9), dtype=dtypes,
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_fast_linear_equals_textbook(lead, n_in, n_out, dtype, bias, seed):
    """Random shapes (a 1-D x, one row), with and without a bias."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    dy = rng.standard_normal((*lead, n_out)).astype(dtype)
    errors = compare_linear(x, W, b, dy)
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_linear_many_rows(dtype):
    """(4, 128, 96) -> 200: the bias gradient a product over 512 rows."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 128, 96)).astype(dtype)
    W = rng.standard_normal((96, 200)).astype(dtype)
    b = rng.standard_normal(200).astype(dtype)
    dy = rng.standard_normal((4, 128, 200)).astype(dtype)
    errors = compare_linear(x, W, b, dy)
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_linear_backward_products_in_parallel(dtype, monkeypatch):
    """dx and dW on two threads at once: the same bits as one after the other."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 70, 40)).astype(dtype)
    W = rng.standard_normal((40, 30)).astype(dtype)
    b = rng.standard_normal(30).astype(dtype)
    dy = rng.standard_normal((3, 70, 30)).astype(dtype)
    saved = threads.set_num_threads(2)
    try:
        results = {}
        for pair_work in (0, 1 << 40):                     # in parallel, then in turn
            monkeypatch.setattr(fast_linear, "PAIR_WORK", pair_work)
            results[pair_work] = fast_linear.linear_backward(dy, fast_linear.linear_forward(x, W, b)[1])
            errors = compare_linear(x, W, b, dy)
            assert max(errors.values()) <= TOLERANCE[dtype], errors
    finally:
        threads.set_num_threads(saved)
    for a, c in zip(*results.values()):
        np.testing.assert_array_equal(a, c)
