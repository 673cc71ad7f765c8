"""Linear: gradients, tied use, state, dtype, input errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.linear import linear_backward, linear_forward
from npfm.nn.linear import Linear

lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@settings(max_examples=25, deadline=None)
@given(lead=lead_shapes, n_in=st.integers(1, 5), n_out=st.integers(1, 5),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_pair_gradients(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, n_in))
    W = rng.standard_normal((n_in, n_out))
    b = rng.standard_normal(n_out) if bias else None
    errors = check_pair(linear_forward, linear_backward, [x, W, b], seed=seed)
    assert set(errors) == ({0, 1, 2} if bias else {0, 1})
    assert max(errors.values()) < TOLERANCE, errors


@settings(max_examples=15, deadline=None)
@given(lead=lead_shapes, n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_module_gradients(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    layer = Linear(n_in, n_out, bias=bias, std=1.0, rng=rng)
    report = check_module(layer, rng.standard_normal((*lead, n_in)), seed=seed)
    assert report.passed, str(report)


def test_linear_values_and_no_bias():
    x = np.arange(6.0).reshape(2, 3)
    W = np.ones((3, 2))
    y, cache = linear_forward(x, W, np.array([1.0, -1.0]))
    np.testing.assert_array_equal(y, [[4.0, 2.0], [13.0, 11.0]])
    _, _, db = linear_backward(np.ones((2, 2)), linear_forward(x, W)[1])
    assert db is None


def test_linear_used_twice_collects_both_gradients():
    rng = np.random.default_rng(0)
    layer = Linear(3, 2, rng=rng).astype(np.float64)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 5, 3))
    dy1, dy2 = rng.standard_normal((4, 2)), rng.standard_normal((2, 5, 2))
    layer.zero_grad()
    layer(x1)
    layer.backward(dy1)
    layer(x2)
    layer.backward(dy2)
    expected_dW = x1.T @ dy1 + x2.reshape(-1, 3).T @ dy2.reshape(-1, 2)
    np.testing.assert_allclose(layer.W.grad, expected_dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.b.grad, dy1.sum(0) + dy2.sum((0, 1)), rtol=1e-12)


def test_linear_init_state_dict_and_decay():
    layer = Linear(64, 32, std=0.02, rng=np.random.default_rng(1))
    assert layer.W.shape == (64, 32) and layer.W.decay and not layer.b.decay
    assert abs(layer.W.data.std() - 0.02) < 0.002 and not layer.b.data.any()
    np.testing.assert_array_equal(Linear(4, 3).W.data, Linear(4, 3).W.data)   # rng=None is seeded
    other = Linear(64, 32, rng=np.random.default_rng(2))
    other.load_state_dict(layer.state_dict())
    for (n1, p1), (n2, p2) in zip(layer.named_parameters(), other.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)
    assert [n for n, _ in Linear(2, 2, bias=False).named_parameters()] == ["W"]


def test_linear_float32_stays_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    layer = Linear(4, 5)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == layer.W.grad.dtype == layer.b.grad.dtype == np.float32
    _, cache = linear_forward(x, layer.W.data, layer.b.data)
    assert all(g.dtype == np.float32 for g in linear_backward(y, cache))


def test_linear_bad_input():
    with pytest.raises(ValueError, match=r"Linear\(8, 4\): x has last dimension 5.*expected 8"):
        Linear(8, 4)(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="float array"):
        Linear(2, 2)(np.zeros((1, 2), dtype=np.int64))
    layer = Linear(3, 2)
    layer(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 5\), expected a last dimension of 2"):
        layer.backward(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="backward called before forward"):
        Linear(2, 2).backward(np.zeros((1, 2)))
