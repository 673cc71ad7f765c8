"""Attention: the pair, its masks, and MultiHeadAttention (self, causal, padded, cross)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npfm.functional import attention_backward, attention_forward, causal_mask
from npfm.gradcheck import check_module, check_pair
import npfm.fast.attention as fast_attention
from npfm.nn import KVCache, MultiHeadAttention, Module

TOL = 1e-6


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 2), H=st.integers(1, 3), Tq=st.integers(1, 5), Tk=st.integers(1, 5),
       D=st.integers(1, 4), seed=st.integers(0, 2**16), kind=st.sampled_from(["none", "random", "causal"]))
def test_attention_pair_gradients(B, H, Tq, Tk, D, seed, kind):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, H, Tq, D))
    k, v = rng.standard_normal((B, H, Tk, D)), rng.standard_normal((B, H, Tk, D))
    mask = None
    if kind == "random":
        mask = rng.random((B, 1, Tq, Tk)) < 0.5
        mask[0, 0, 0] = False                            # always one fully masked row
    elif kind == "causal":
        mask = causal_mask(Tq, Tk)
    errors = check_pair(attention_forward, attention_backward, [q, k, v], mask=mask, seed=seed)
    assert max(errors.values()) < TOL, errors


def test_fully_masked_row_gives_zeros_not_nan():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 3, 4)) for _ in range(3))
    mask = np.ones((3, 3), bool)
    mask[1] = False
    y, cache = attention_forward(q, k, v, mask)
    assert np.all(np.isfinite(y)) and np.all(y[0, 1] == 0)
    dq, dk, dv = attention_backward(np.ones_like(y), cache)
    assert np.all(dq[0, 1] == 0)
    assert all(np.all(np.isfinite(g)) for g in (dq, dk, dv))


def test_attention_rows_are_convex_combinations_of_values():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 6, 3))
    v = np.ones((2, 6, 3))
    y, _ = attention_forward(q, k, v)
    np.testing.assert_allclose(y, 1.0, atol=1e-12)


def test_causal_output_ignores_the_future():
    rng = np.random.default_rng(2)
    attn = MultiHeadAttention(8, 2, causal=True, rng=rng).astype(np.float64)
    x = rng.standard_normal((2, 6, 8))
    y1 = attn(x)
    x2 = x.copy()
    x2[:, 4:] = rng.standard_normal((2, 2, 8))           # change the tokens after t = 3
    y2 = attn(x2)
    np.testing.assert_allclose(y1[:, :4], y2[:, :4], atol=1e-12)
    assert not np.allclose(y1[:, 4:], y2[:, 4:])


def test_padded_keys_do_not_change_unpadded_outputs():
    rng = np.random.default_rng(3)
    attn = MultiHeadAttention(8, 4, rng=rng).astype(np.float64)
    x = rng.standard_normal((2, 5, 8))
    pad = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)
    y1 = attn(x, mask=pad)
    x2 = np.where(pad[:, :, None], x, rng.standard_normal(x.shape) * 10)   # garbage in the padding
    y2 = attn(x2, mask=pad)
    np.testing.assert_allclose(y1[pad], y2[pad], atol=1e-12)


@settings(max_examples=12, deadline=None)
@given(B=st.integers(1, 2), T=st.integers(1, 4), H=st.sampled_from([1, 2, 3]), D=st.integers(1, 3),
       causal=st.booleans(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_multihead_attention_gradients(B, T, H, D, causal, padded, seed):
    rng = np.random.default_rng(seed)
    attn = MultiHeadAttention(H * D, H, causal=causal, std=0.5, rng=rng)
    attn.b_qkv.data[:] = rng.standard_normal(attn.b_qkv.shape)
    x = rng.standard_normal((B, T, H * D))
    mask = rng.random((B, T)) < 0.7 if padded else None
    report = check_module(attn, x, mask=mask, seed=seed)
    assert report.passed, str(report)


def test_cross_attention_gradients_and_shapes():
    rng = np.random.default_rng(4)

    class Cross(Module):
        def __init__(self):
            self.attn = MultiHeadAttention(6, 3, std=0.5, rng=rng)

        def forward(self, x, context, mask=None):
            return self.attn(x, mask=mask, context=context)

        def backward(self, dy):
            return self.attn.backward(dy)

    x, ctx = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 7, 6))
    pad = np.ones((2, 7), bool)
    pad[1, 5:] = False
    report = check_module(Cross(), x, ctx, mask=pad)
    assert report.passed, str(report)
    assert {r.name for r in report.rows} >= {"input[0]", "input[1]", "attn.W_qkv"}


def test_kv_cache_matches_full_recompute():
    rng = np.random.default_rng(5)
    attn = MultiHeadAttention(8, 2, causal=True, rng=rng, std=0.3).astype(np.float64).eval()
    x = rng.standard_normal((2, 7, 8))
    full = attn(x)
    cache = KVCache(2, 2, 7, 4, np.float64)
    steps = [attn(x[:, :3], kv_cache=cache)] + [attn(x[:, t:t + 1], kv_cache=cache) for t in range(3, 7)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-12)


def test_float32_stays_float32():
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3))
    y, cache = attention_forward(q, k, v, causal_mask(3))
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in attention_backward(np.ones_like(y), cache))
    attn = MultiHeadAttention(8, 2)
    x = rng.standard_normal((1, 3, 8)).astype(np.float32)
    assert attn(x).dtype == np.float32 and attn.backward(np.ones_like(x)).dtype == np.float32


def test_bad_input_errors():
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(10, 3)
    attn = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="last dimension 5"):
        attn(np.zeros((1, 3, 5), np.float32))
    with pytest.raises(ValueError, match="padding mask"):
        attn(np.zeros((2, 3, 8), np.float32), mask=np.ones((2, 4), bool))
    x = np.zeros((2, 3, 8), np.float32)
    with pytest.raises(ValueError, match="does not broadcast"):
        attn(x, mask=np.ones((2, 5, 3), bool))
    with pytest.raises(TypeError, match="boolean"):
        attn(x, mask=np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="n_heads must be a positive integer"):
        MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="n_heads must be a positive integer"):
        MultiHeadAttention(8, -2)
    with pytest.raises(ValueError, match="not divisible by n_kv_heads"):
        MultiHeadAttention(8, 4, n_kv_heads=3)
    with pytest.raises(ValueError, match="before forward"):
        MultiHeadAttention(8, 2).backward(np.zeros((1, 3, 8), np.float32))


def test_fast_backward_fills_given_arrays():
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    y, cache = attention_forward(q, k, v, causal_mask(4))
    dy = rng.standard_normal(y.shape)
    expected = attention_backward(dy, cache)
    buffer = np.zeros((2, 4, 3, 3, 5))                        # (B, T, [q k v], H, D)
    out = [buffer[:, :, i].transpose(0, 2, 1, 3) for i in range(3)]   # strided (B, H, T, D) views
    y_fast, fast_cache = fast_attention.attention_forward(q, k, v, causal_mask(4))
    returned = fast_attention.attention_backward(dy, fast_cache, out=out)
    for a, b, o in zip(expected, returned, out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        assert b is o


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_right_where_skipping_the_max_shift_is_unsafe(dtype):
    # scores far above 60 (exp would overflow float32) and a row whose scores
    # are all far below zero (its exps underflow): both must take the shifted path
    rng = np.random.default_rng(8)
    q = rng.standard_normal((2, 4, 6))
    k, v = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 5, 6))
    q[0] *= 80.0                                              # huge scores, both signs
    k[1] = np.abs(k[1])
    q[1, 2] = -80.0 * np.abs(q[1, 2])                          # one row: every score << 0
    y, cache = attention_forward(q.astype(dtype), k.astype(dtype), v.astype(dtype))
    S = q @ k.swapaxes(-1, -2) / np.sqrt(6)                   # float64 reference
    assert S.max() > 200 and S[1, 2].max() < -100
    P_ref = np.exp(S - S.max(-1, keepdims=True))
    P_ref /= P_ref.sum(-1, keepdims=True)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(cache[3], P_ref, atol=tol)
    np.testing.assert_allclose(y, P_ref @ v, atol=10 * tol)
