"""Softmax: gradients, rows summing to 1, shift invariance, masked rows, dtype."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.softmax import softmax_backward, softmax_forward
from npfm.nn.softmax import Softmax

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_softmax_pair_and_module_gradients(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape) * 2
    errors = check_pair(softmax_forward, softmax_backward, [x], seed=seed)
    assert errors[0] < TOLERANCE, errors
    assert check_module(Softmax(), x, seed=seed).passed


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_rows_sum_to_one_and_shift_invariance(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape) * 5
    y, _ = softmax_forward(x)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-12)
    assert (y >= 0).all()
    np.testing.assert_allclose(softmax_forward(x + 100)[0], y, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(softmax_forward(x - x.max(-1, keepdims=True) + 1000)[0], y,
                               rtol=1e-12, atol=1e-15)


def test_softmax_values_large_and_masked():
    y, _ = softmax_forward(np.array([[0.0, np.log(3.0)], [1000.0, -1000.0]]))
    np.testing.assert_allclose(y, [[0.25, 0.75], [1.0, 0.0]], rtol=1e-14)
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 0.0]])
    y, cache = softmax_forward(x)
    np.testing.assert_array_equal(y, [[0, 0, 0], [0.5, 0, 0.5]])
    dx = softmax_backward(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]), cache)
    assert np.isfinite(dx).all() and not dx[0].any()
    np.testing.assert_allclose(dx[1], [-0.5, 0.0, 0.5])


def test_softmax_float32_and_errors():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    y, cache = softmax_forward(x)
    assert y.dtype == softmax_backward(np.ones_like(y), cache).dtype == np.float32
    with pytest.raises(TypeError, match="softmax: x must be a float array"):
        Softmax()(np.arange(3))
    with pytest.raises(ValueError, match="softmax: x must have at least 1 dimensions"):
        Softmax()(np.array(1.0))
