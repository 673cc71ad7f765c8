"""LayerNorm: gradients, normalisation, state, dtype, width errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.layernorm import layernorm_backward, layernorm_forward
from npfm.nn.layernorm import LayerNorm

lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


# C >= 3: with C = 2 the normalised row is (+-1, -+1) whatever x is, so dx is of
# the order of eps (1e-5) and the central difference cannot resolve it to 1e-6.
@settings(max_examples=25, deadline=None)
@given(lead=lead_shapes, C=st.integers(3, 7), seed=st.integers(0, 2**16))
def test_layernorm_pair_gradients(lead, C, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, C)) * 3 + 1
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    errors = check_pair(layernorm_forward, layernorm_backward, [x, gamma, beta], seed=seed)
    assert max(errors.values()) < TOLERANCE, errors


@settings(max_examples=15, deadline=None)
@given(lead=lead_shapes, C=st.integers(3, 6), seed=st.integers(0, 2**16))
def test_layernorm_module_gradients(lead, C, seed):
    rng = np.random.default_rng(seed)
    ln = LayerNorm(C)
    ln.gamma.data[:] = rng.standard_normal(C)
    ln.beta.data[:] = rng.standard_normal(C)
    report = check_module(ln, rng.standard_normal((*lead, C)), seed=seed)
    assert report.passed, str(report)


@pytest.mark.parametrize("C, eps", [(1, 1e-5), (2, 1.0)])
def test_layernorm_narrow_rows(C, eps):
    """C = 1 normalises to 0 (dx = 0 exactly); C = 2 is checkable with a large eps."""
    x = np.random.default_rng(0).standard_normal((3, C))
    errors = check_pair(layernorm_forward, layernorm_backward,
                        [x, np.full(C, 1.5), np.full(C, 0.5)], eps=eps)
    assert max(errors.values()) < TOLERANCE, errors


def test_layernorm_normalises_each_row():
    x = np.random.default_rng(1).standard_normal((4, 5, 16)) * 10 + 3
    y, _ = layernorm_forward(x, np.ones(16), np.zeros(16), eps=0.0)
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-12)
    y2, _ = layernorm_forward(x, np.full(16, 2.0), np.full(16, -1.0), eps=0.0)
    np.testing.assert_allclose(y2, 2 * y - 1, atol=1e-12)
    one_d, _ = layernorm_forward(x[0, 0], np.ones(16), np.zeros(16))
    np.testing.assert_allclose(one_d, layernorm_forward(x, np.ones(16), np.zeros(16))[0][0, 0])


def test_layernorm_used_twice_state_and_dtype():
    rng = np.random.default_rng(2)
    ln = LayerNorm(4)
    assert not ln.gamma.decay and not ln.beta.decay
    x1, x2 = rng.standard_normal((2, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    y1 = ln(x1)
    dx = ln.backward(np.ones_like(y1))
    y2 = ln(x2)
    ln.backward(2 * np.ones_like(y2))
    assert y1.dtype == dx.dtype == ln.gamma.grad.dtype == np.float32
    np.testing.assert_allclose(ln.beta.grad, np.full(4, 2 + 6), rtol=1e-6)
    ln.gamma.data[:] = [1, 2, 3, 4]
    other = LayerNorm(4)
    other.load_state_dict(ln.state_dict())
    np.testing.assert_array_equal(other(x1), ln(x1))
    _, cache = layernorm_forward(x1, ln.gamma.data, ln.beta.data, eps=np.float64(1e-5))
    assert all(g.dtype == np.float32 for g in layernorm_backward(y1, cache))


def test_layernorm_bad_input():
    with pytest.raises(ValueError, match=r"LayerNorm: x has last dimension 3.*expected 4"):
        LayerNorm(4)(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="float array"):
        LayerNorm(4)(np.zeros((2, 4), np.int32))
