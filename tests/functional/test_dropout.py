"""Dropout: identity cases, kept fraction and mean, the mask in backward, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_pair
from npfm.functional.dropout import dropout_backward, dropout_forward
from npfm.nn.dropout import Dropout

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, p=st.sampled_from([0.0, 0.1, 0.5, 0.9]), seed=st.integers(0, 2**16))
def test_dropout_gradient_with_a_fixed_mask(shape, p, seed):
    def forward(x):      # a fresh generator with one seed: every call draws the same mask
        return dropout_forward(x, p, np.random.default_rng(seed))

    x = np.random.default_rng(seed + 1).standard_normal(shape)
    errors = check_pair(forward, dropout_backward, [x], seed=seed)
    assert errors[0] < TOLERANCE, errors


def test_backward_uses_the_forward_mask():
    x = np.random.default_rng(0).standard_normal((50, 40))
    y, cache = dropout_forward(x, 0.3, np.random.default_rng(1))
    dx = dropout_backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(dx == 0, y == 0)
    np.testing.assert_allclose(dx[dx != 0], 1 / 0.7)
    np.testing.assert_allclose(y, x * dx)


def test_p_zero_and_eval_are_the_identity():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    y, cache = dropout_forward(x, 0.0, rng)
    assert y is x and dropout_backward(x, cache) is x
    assert rng.bit_generator.state == state                   # p = 0 draws nothing
    drop = Dropout(0.5, rng=rng).eval()
    assert drop(x) is x and drop.backward(x) is x
    assert rng.bit_generator.state == state
    drop.train()
    assert not np.array_equal(drop(x), x)


def test_kept_fraction_and_mean_are_preserved():
    x = np.ones((200, 500), np.float32)
    drop = Dropout(0.25, rng=np.random.default_rng(3))
    y = drop(x)
    assert y.dtype == drop.backward(y).dtype == np.float32
    assert abs((y != 0).mean() - 0.75) < 0.01
    assert abs(y.mean() - 1.0) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)


def test_shared_generator_can_be_swapped_and_replayed():
    x = np.ones((4, 6))
    drop = Dropout(0.5)
    drop.rng = np.random.default_rng(7)
    first = drop(x)
    drop.rng = np.random.default_rng(7)
    np.testing.assert_array_equal(drop(x), first)
    assert not np.array_equal(drop(x), first)                 # the generator moves on


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), "0.1", True])
def test_bad_p(p):
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\)"):
        Dropout(p)


def test_dropout_float64_p_keeps_float32():
    x = np.ones((4, 4), np.float32)
    y, cache = dropout_forward(x, np.float64(0.5), np.random.default_rng(0))
    assert y.dtype == dropout_backward(x, cache).dtype == np.float32
