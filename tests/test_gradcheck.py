"""The checker itself: it must pass right gradients and fail wrong ones."""

import numpy as np

from npfm.core import Module, Parameter
from npfm.gradcheck import check_module, check_pair, numerical_gradient, rel_error


def test_numerical_gradient_of_a_known_function():
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    num = numerical_gradient(lambda: np.sin(x), x, dy)
    np.testing.assert_allclose(num, np.cos(x) * dy, rtol=1e-8, atol=1e-10)


def test_rel_error_scale():
    a = np.array([1.0, -2.0, 3.0])
    assert rel_error(a, a) == 0
    assert rel_error(a, a + 1e-9) < 1e-9
    assert rel_error(a, -a) > 0.5
    assert rel_error(a, np.array([1.0, np.nan, 3.0])) == float("inf")


class Square(Module):
    def __init__(self, wrong=False):
        self.w = Parameter(np.array([0.5, -1.5, 2.0]))
        self.wrong = wrong

    def forward(self, x):
        self._cache = x
        return self.w.data * x * x

    def backward(self, dy):
        x = self._saved()
        self.w.grad += (dy * x * x).sum(axis=0)
        return dy * self.w.data * x * (1.0 if self.wrong else 2.0)


def test_check_module_passes_right_and_fails_wrong():
    x = np.random.default_rng(1).standard_normal((4, 3))
    good = check_module(Square(), x)
    assert good.passed and good.max_error < 1e-8
    bad = check_module(Square(wrong=True), x)
    assert not bad.passed
    assert bad.errors()["input[0]"] > 0.1 and bad.errors()["w"] < 1e-8
    assert "FAIL" in str(bad)


def test_check_pair_sampled_entries_and_none_grads():
    rng = np.random.default_rng(2)

    def fwd(x, ids):
        return x[ids], (x.shape, ids)

    def bwd(dy, cache):
        shape, ids = cache
        dx = np.zeros(shape)
        np.add.at(dx, ids, dy)
        return dx, None

    errors = check_pair(fwd, bwd, [rng.standard_normal((5, 2)), np.array([0, 3, 3])])
    assert set(errors) == {0} and errors[0] < 1e-8
