"""Grouped-query attention: k and v with H_kv heads, each shared by H / H_kv query heads."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npfm.functional import attention_backward, attention_forward, causal_mask
from npfm.gradcheck import check_module, check_pair
from npfm.nn import MultiHeadAttention


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 2), H_kv=st.integers(1, 3), group=st.integers(1, 3),
       Tq=st.integers(1, 4), D=st.integers(1, 4), seed=st.integers(0, 2**16), masked=st.booleans())
def test_gqa_pair_gradients(B, H_kv, group, Tq, D, seed, masked):
    rng = np.random.default_rng(seed)
    H = H_kv * group
    q = rng.standard_normal((B, H, Tq, D))
    k, v = rng.standard_normal((2, B, H_kv, Tq, D))
    mask = causal_mask(Tq) if masked else None
    if masked and Tq > 1:
        mask = np.broadcast_to(mask, (B, H, Tq, Tq)).copy()
        mask[0, 0, -1] = False                               # a fully masked row
    errors = check_pair(attention_forward, attention_backward, [q, k, v], mask=mask)
    assert max(errors.values()) < 1e-6, errors


def test_gqa_equals_attention_with_the_kv_heads_repeated():
    """Sharing a KV head is the same as giving each query head its own copy, and the
    shared head's gradient is the sum of the copies' gradients."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 6, 5, 4))
    k, v = rng.standard_normal((2, 2, 2, 5, 4))
    y, cache = attention_forward(q, k, v, causal_mask(5))
    k_rep, v_rep = np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1)
    y_rep, cache_rep = attention_forward(q, k_rep, v_rep, causal_mask(5))
    np.testing.assert_allclose(y, y_rep, rtol=1e-12, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    dq, dk, dv = attention_backward(dy, cache)
    dq_r, dk_r, dv_r = attention_backward(dy, cache_rep)
    np.testing.assert_allclose(dq, dq_r, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dk, dk_r.reshape(2, 2, 3, 5, 4).sum(axis=2), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dv, dv_r.reshape(2, 2, 3, 5, 4).sum(axis=2), rtol=1e-12, atol=1e-14)


def test_gqa_module_gradients_and_kv_cache_holds_only_kv_heads():
    rng = np.random.default_rng(2)
    attn = MultiHeadAttention(12, 6, causal=True, n_kv_heads=2, rng=rng).astype(np.float64)
    assert attn.W_qkv.shape == (12, 12 + 2 * 2 * 2)
    x = rng.standard_normal((2, 4, 12))
    report = check_module(attn, x)
    assert report.passed, str(report)
    from npfm.nn import KVCache
    cache = KVCache(2, 2, 8, 2, np.float64)
    full = attn.forward(x)
    attn.forward(x[:, :3], kv_cache=cache)
    assert cache.kT.shape == (2, 2, 2, 8)                   # (B, H_kv, D, max_len)
    last = attn.decode(x[:, 3], cache)
    np.testing.assert_allclose(last, full[:, 3], rtol=1e-12, atol=1e-13)


def test_gqa_against_torch_sdpa():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 4, 5, 3))
    k, v = rng.standard_normal((2, 2, 2, 5, 3))
    y, cache = attention_forward(q, k, v, causal_mask(5))
    dy = rng.standard_normal(y.shape)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    ty = TF.scaled_dot_product_attention(tq, tk, tv, is_causal=True, enable_gqa=True)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(attention_backward(dy, cache), (tq, tk, tv)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
