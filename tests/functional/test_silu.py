"""SiLU: gradients, values, extreme inputs, dtype, and PyTorch's F.silu."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.silu import silu_backward, silu_forward
from npfm.nn.silu import SiLU

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, scale=st.sampled_from([0.5, 3.0, 10.0]), seed=st.integers(0, 2**16))
def test_silu_pair_and_module_gradients(shape, scale, seed):
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    errors = check_pair(silu_forward, silu_backward, [x], seed=seed)
    assert errors[0] < TOLERANCE, errors
    report = check_module(SiLU(), x, seed=seed)
    assert report.passed, str(report)


def test_silu_values_and_extremes():
    x = np.linspace(-700, 700, 14001)
    y, cache = silu_forward(x)
    np.testing.assert_allclose(y, x / (1 + np.exp(-x)), rtol=1e-14, atol=1e-300)
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # huge |x|: no overflow, no NaN
        y, cache = silu_forward(np.array([-1e4, -800.0, 0.0, 800.0, 1e4]))
        dx = silu_backward(np.ones(5), cache)
    np.testing.assert_array_equal(y, [-0.0, -0.0, 0.0, 800.0, 1e4])
    np.testing.assert_array_equal(dx, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_silu_keeps_float32():
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    y, cache = silu_forward(x)
    assert y.dtype == np.float32 and silu_backward(np.ones_like(x), cache).dtype == np.float32
    m = SiLU()
    assert m(x).dtype == np.float32 and m.backward(np.ones_like(x)).dtype == np.float32


def test_silu_module_errors():
    with pytest.raises(TypeError, match="SiLU: x must be a float array"):
        SiLU()(np.array([1, 2]))
    with pytest.raises(ValueError, match="backward called before forward"):
        SiLU().backward(np.ones(3))


def test_silu_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7)) * 4
    dy = rng.standard_normal((4, 7))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.silu(xt)
    yt.backward(torch.tensor(dy))
    y, cache = silu_forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(silu_backward(dy, cache), xt.grad.numpy(), rtol=1e-12, atol=1e-15)
