"""erf/erfc accuracy, GELU (tanh and exact) and ReLU: gradients, values, dtype, errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.activations import gelu_backward, gelu_forward, relu_backward, relu_forward
from npfm.functional.erf import erf, erfc
from npfm.nn.activations import GELU, ReLU

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


def dense_grid():
    """Every range of Cody's approximation, its boundaries, tiny and huge values."""
    x = np.concatenate([np.linspace(-30, 30, 120_001), np.geomspace(1e-300, 1, 2000),
                        [0.46875, np.nextafter(0.46875, 1), 4.0, np.nextafter(4.0, 5),
                         26.5, 27.2, 5e-324, 1e300]])
    return np.concatenate([x, -x, [0.0]])


def test_erf_matches_math_erf_to_float64_rounding():
    x = dense_grid()
    ours, ref = erf(x), np.array([math.erf(v) for v in x])
    nonzero = ref != 0
    assert np.max(np.abs(ours[nonzero] - ref[nonzero]) / np.abs(ref[nonzero])) < 1e-14
    assert not ours[~nonzero].any()


def test_erfc_matches_math_erfc_including_tails():
    x = dense_grid()
    ours, ref = erfc(x), np.array([math.erfc(v) for v in x])
    normal = ref > 1e-300                        # below that the subnormals carry few digits
    assert np.max(np.abs(ours[normal] - ref[normal]) / ref[normal]) < 1e-14
    assert np.max(np.abs(ours[~normal] - ref[~normal])) < 1e-300
    assert erfc(np.array(10.0)) == pytest.approx(2.088487583762545e-45, rel=1e-14)


def test_erf_special_values_and_dtype():
    np.testing.assert_array_equal(erf(np.array([np.inf, -np.inf, 0.0])), [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(erfc(np.array([np.inf, -np.inf])), [0.0, 2.0])
    assert np.isnan(erf(np.array([np.nan]))).all() and np.isnan(erfc(np.array([np.nan]))).all()
    assert erf(np.array(0.3)).shape == () and erf(0.3) == pytest.approx(math.erf(0.3), rel=1e-15)
    x32 = np.linspace(-6, 6, 1001, dtype=np.float32)
    assert erf(x32).dtype == erfc(x32).dtype == np.float32
    ref = np.array([math.erf(v) for v in x32.astype(np.float64)])
    np.testing.assert_allclose(erf(x32), ref, atol=3e-7)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, approximate=st.sampled_from(["tanh", "none"]), scale=st.sampled_from([0.5, 3.0]),
       seed=st.integers(0, 2**16))
def test_gelu_pair_and_module_gradients(shape, approximate, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    errors = check_pair(gelu_forward, gelu_backward, [x], approximate=approximate, seed=seed)
    assert errors[0] < TOLERANCE, errors
    report = check_module(GELU(approximate), x, seed=seed)
    assert report.passed, str(report)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_relu_pair_and_module_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    x[np.abs(x) < 1e-3] += 0.01                  # keep central differences off the kink
    errors = check_pair(relu_forward, relu_backward, [x], seed=seed)
    assert errors[0] < TOLERANCE, errors
    assert check_module(ReLU(), x, seed=seed).passed


def test_gelu_values():
    x = np.linspace(-8, 8, 801)
    exact, _ = gelu_forward(x, "none")
    Phi = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    # rtol 1e-13, not 1e-14: rounding x / sqrt(2) moves erfc by up to 2 y^2 ulps (~120 at x = -8)
    np.testing.assert_allclose(exact, x * Phi, rtol=1e-13, atol=1e-300)
    approx, _ = gelu_forward(x, "tanh")
    assert np.max(np.abs(approx - exact)) < 1e-3             # the tanh form is a close fit
    k = math.sqrt(2 / math.pi)
    np.testing.assert_allclose(approx, 0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x**3))), rtol=1e-13)
    tail, _ = gelu_forward(np.array([-40.0, -1e6, 40.0]), "none")
    np.testing.assert_array_equal(tail, [-0.0, -0.0, 40.0])   # no NaN far out
    np.testing.assert_array_equal(relu_forward(np.array([-1.0, 0.0, 2.0]))[0], [0, 0, 2])
    assert relu_backward(np.ones(3), relu_forward(np.array([-1.0, 0.0, 2.0]))[1]).tolist() == [0, 0, 1]


@pytest.mark.parametrize("make", [lambda: GELU("tanh"), lambda: GELU("none"), ReLU])
def test_activations_float32_stay_float32(make):
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    module = make()
    y = module(x)
    assert y.dtype == module.backward(np.ones_like(y)).dtype == np.float32


def test_gelu_bad_approximate():
    with pytest.raises(ValueError, match="approximate must be 'tanh' or 'none', got 'erf'"):
        GELU("erf")
    with pytest.raises(ValueError, match="approximate must be 'tanh' or 'none'"):
        GELU(approximate=None)
    with pytest.raises(TypeError, match="GELU: x must be a float array"):
        GELU()(np.arange(3))


def test_tanh_pair():
    from npfm.functional import tanh_backward, tanh_forward
    from npfm.nn import Tanh
    from npfm.gradcheck import check_pair
    x = np.random.default_rng(0).standard_normal((3, 4)) * 2
    errors = check_pair(tanh_forward, lambda dy, c: (tanh_backward(dy, c),), [x])
    assert errors[0] < 1e-8
    assert tanh_forward(x.astype(np.float32))[0].dtype == np.float32
    assert tanh_backward(np.ones((3, 4), np.float32), tanh_forward(x.astype(np.float32))[1]).dtype \
        == np.float32
    assert isinstance(Tanh()(x), np.ndarray)
