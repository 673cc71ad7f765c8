"""RMSNorm: gradients, unit RMS, dtype, errors, and torch.nn.RMSNorm."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.rmsnorm import rmsnorm_backward, rmsnorm_forward
from npfm.nn.rmsnorm import RMSNorm

lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


# C = 1 is left out here: the row normalises to +-1 whatever x is, so dx is of
# the order of eps and central differences cannot resolve it (tested below).
@settings(max_examples=30, deadline=None)
@given(lead=lead_shapes, C=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_rmsnorm_pair_gradients(lead, C, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, C)) * 3 + 1
    gamma = rng.standard_normal(C)
    errors = check_pair(rmsnorm_forward, rmsnorm_backward, [x, gamma], seed=seed)
    assert max(errors.values()) < TOLERANCE, errors


@settings(max_examples=15, deadline=None)
@given(lead=lead_shapes, C=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_rmsnorm_module_gradients(lead, C, seed):
    rng = np.random.default_rng(seed)
    norm = RMSNorm(C)
    norm.gamma.data[:] = rng.standard_normal(C)
    report = check_module(norm, rng.standard_normal((*lead, C)), seed=seed)
    assert report.passed, str(report)


def test_rmsnorm_one_channel_with_large_eps():
    x = np.random.default_rng(0).standard_normal((1, 1))      # one row, one channel
    errors = check_pair(rmsnorm_forward, rmsnorm_backward, [x, np.full(1, 1.5)], eps=1.0)
    assert max(errors.values()) < TOLERANCE, errors


def test_rmsnorm_unit_rms_and_scale_invariance():
    x = np.random.default_rng(1).standard_normal((4, 5, 16)) * 10 + 3
    y, _ = rmsnorm_forward(x, np.ones(16), eps=0.0)
    np.testing.assert_allclose(np.sqrt((y * y).mean(-1)), 1, rtol=1e-12)
    np.testing.assert_allclose(rmsnorm_forward(7.5 * x, np.ones(16), eps=0.0)[0], y, rtol=1e-12)
    gamma = np.linspace(-2, 2, 16)
    np.testing.assert_allclose(rmsnorm_forward(x, gamma, eps=0.0)[0], gamma * y, rtol=1e-12)
    assert y.mean(-1).std() > 0.01                            # not centred, unlike LayerNorm


def test_rmsnorm_used_twice_accumulates_and_keeps_float32():
    rng = np.random.default_rng(2)
    norm = RMSNorm(4)
    assert not norm.gamma.decay and norm.gamma.dtype == np.float32
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = norm(x)
    dx = norm.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == norm.gamma.grad.dtype == np.float32
    first = norm.gamma.grad.copy()
    norm(x)
    norm.backward(np.ones_like(y))
    np.testing.assert_allclose(norm.gamma.grad, 2 * first, rtol=1e-6)


def test_rmsnorm_errors():
    with pytest.raises(ValueError, match=r"RMSNorm\(4\): x has last dimension 3"):
        RMSNorm(4)(np.ones((2, 3)))
    with pytest.raises(TypeError, match="must be a float array"):
        RMSNorm(3)(np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        RMSNorm(0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        RMSNorm(3, eps=-1.0)
    with pytest.raises(ValueError, match="backward called before forward"):
        RMSNorm(3).backward(np.ones(3))


def test_rmsnorm_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, dy, gamma = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5, 8)), rng.standard_normal(8)
    ref = torch.nn.RMSNorm(8, eps=1e-6, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(gamma))
    xt = torch.tensor(x, requires_grad=True)
    ref(xt).backward(torch.tensor(dy))
    y, cache = rmsnorm_forward(x, gamma, eps=1e-6)
    dx, dgamma = rmsnorm_backward(dy, cache)
    np.testing.assert_allclose(y, ref(xt).detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(dgamma, ref.weight.grad.numpy(), rtol=1e-11, atol=1e-13)


def test_rmsnorm_matches_hugging_face_llama():
    """LlamaRMSNorm normalises in float32 whatever the input: agreement to float32 rounding."""
    torch = pytest.importorskip("torch")
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    rng = np.random.default_rng(8)
    x, gamma = rng.standard_normal((2, 3, 8)) * 5, rng.standard_normal(8)
    ref = llama.LlamaRMSNorm(8, eps=1e-5).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(gamma))
    ours, _ = rmsnorm_forward(x, gamma, eps=1e-5)
    np.testing.assert_allclose(ours, ref(torch.tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-6)
