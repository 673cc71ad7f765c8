"""SwiGLU: gradients of the pair and the Module, values, dtype, errors, torch autograd."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.silu import silu_forward
from npfm.functional.swiglu import swiglu_backward, swiglu_forward
from npfm.nn.swiglu import SwiGLU

lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@settings(max_examples=25, deadline=None)
@given(lead=lead_shapes, C=st.integers(1, 5), F=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_swiglu_pair_gradients(lead, C, F, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, C))
    W1, W3, W2 = rng.standard_normal((C, F)), rng.standard_normal((C, F)), rng.standard_normal((F, C))
    errors = check_pair(swiglu_forward, swiglu_backward, [x, W1, W3, W2], seed=seed)
    assert len(errors) == 4 and max(errors.values()) < TOLERANCE, errors


@settings(max_examples=15, deadline=None)
@given(lead=lead_shapes, C=st.integers(1, 4), F=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_swiglu_module_gradients(lead, C, F, seed):
    rng = np.random.default_rng(seed)
    ffn = SwiGLU(C, F, std=0.7, rng=rng)
    report = check_module(ffn, rng.standard_normal((*lead, C)), seed=seed)
    assert report.passed and len(report.rows) == 4, str(report)


def test_swiglu_values_and_one_row():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4))                      # one row
    W1, W3, W2 = rng.standard_normal((4, 6)), rng.standard_normal((4, 6)), rng.standard_normal((6, 4))
    y, _ = swiglu_forward(x, W1, W3, W2)
    expected = ((x @ W1) / (1 + np.exp(-(x @ W1))) * (x @ W3)) @ W2
    np.testing.assert_allclose(y, expected, rtol=1e-13)
    np.testing.assert_allclose(swiglu_forward(x[0], W1, W3, W2)[0], y[0], rtol=1e-14)
    y0, _ = swiglu_forward(x, W1, np.zeros((4, 6)), W2)   # the "up" branch gates to zero
    np.testing.assert_array_equal(y0, 0)
    assert np.allclose(silu_forward(x @ W1)[0], (x @ W1) / (1 + np.exp(-(x @ W1))))


def test_swiglu_keeps_float32_and_accumulates():
    rng = np.random.default_rng(2)
    ffn = SwiGLU(4, 6, rng=rng)
    assert [name for name, _ in ffn.named_parameters()] == ["W_gate", "W_up", "W_down"]
    assert all(p.dtype == np.float32 and p.decay for p in ffn.parameters())
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 4)).astype(np.float32)
    y = ffn(x)
    dx = ffn.backward(dy)
    assert y.dtype == dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in ffn.parameters())
    first = [p.grad.copy() for p in ffn.parameters()]
    ffn(x)
    ffn.backward(dy)
    for p, g in zip(ffn.parameters(), first):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-6)


def test_swiglu_errors():
    with pytest.raises(ValueError, match=r"SwiGLU\(4, 6\): x has last dimension 3"):
        SwiGLU(4, 6)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        SwiGLU(4, 0)
    with pytest.raises(ValueError, match="std must be a finite number"):
        SwiGLU(4, 2, std=float("nan"))
    with pytest.raises(ValueError, match="backward called before forward"):
        SwiGLU(4, 6).backward(np.ones((2, 4)))


def test_swiglu_against_torch():
    torch = pytest.importorskip("torch")
    F_ = torch.nn.functional
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 4))
    W = [rng.standard_normal(s) for s in ((4, 6), (4, 6), (6, 4))]
    xt, *Wt = (torch.tensor(a, requires_grad=True) for a in (x, *W))
    yt = (F_.silu(xt @ Wt[0]) * (xt @ Wt[1])) @ Wt[2]
    yt.backward(torch.tensor(dy))
    y, cache = swiglu_forward(x, *W)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    for ours, t in zip(swiglu_backward(dy, cache), (xt, *Wt)):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-11, atol=1e-12)


def test_swiglu_matches_hugging_face_llama_mlp():
    """LlamaMLP: down_proj(silu(gate_proj(x)) * up_proj(x)); torch weights are (out, in)."""
    torch = pytest.importorskip("torch")
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig
    C, F = 8, 12
    mlp = llama.LlamaMLP(LlamaConfig(hidden_size=C, intermediate_size=F, num_attention_heads=2,
                                         num_key_value_heads=2)).double()
    rng = np.random.default_rng(7)
    ffn = SwiGLU(C, F, std=0.3, rng=rng, dtype=np.float64)
    with torch.no_grad():
        mlp.gate_proj.weight.copy_(torch.tensor(ffn.W_gate.data.T))
        mlp.up_proj.weight.copy_(torch.tensor(ffn.W_up.data.T))
        mlp.down_proj.weight.copy_(torch.tensor(ffn.W_down.data.T))
    x = rng.standard_normal((2, 3, C))
    np.testing.assert_allclose(ffn(x), mlp(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-13)
