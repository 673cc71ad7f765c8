"""The fast one-position attention (npfm/fast/decode.py) against the textbook pair.

``attention_decode(q, k, v)`` is ``attention_forward(q, k, v)[0]`` for one
query per head and no mask, on the keys and values a KV cache holds. It
rounds in another order (q scaled before the product, the output divided by
the sum instead of the weights), so the floors agree to rounding:

- float64: 1e-12 relative to the largest entry of the textbook's output;
- float32: 1e-5, for scores of order 1 to 10 (a score s carries ~|s| eps of
  rounding, which exp turns into a relative error of the weights).

Both relative to the larger of the output's largest entry and the values'
largest entry |v|: the output is a weighted average of the values, and
its rounding is of their size, not of its own. An average of values of
mixed signs can cancel to far less than any of them (hypothesis found one:
one head of size 1, seven keys, y = 0.0017 from values up to 2.06, where
each floor is 6e-9 |v| from the float64 answer but 1.3e-5 of y from the
other).

Scores of several hundred would overflow an unshifted exp; both floors
subtract the row max, and they agree there too (checked in float64, where
the comparison is not itself the rounding of the scores).
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import npfm
import npfm.fast.decode as fast_decode
import npfm.functional as F
from floor_compare import TOLERANCE, floor_error
from npfm.nn import KVCache, MultiHeadAttention


def cached(rng, B, H_kv, Tk, D, dtype, max_len=None):
    """Keys and values of Tk positions as a KVCache hands them out (k a view of k^T)."""
    cache = KVCache(B, H_kv, max_len or Tk + 2, D, dtype)
    k = rng.standard_normal((B, H_kv, Tk, D)).astype(dtype)
    v = rng.standard_normal((B, H_kv, Tk, D)).astype(dtype)
    return cache.append(k, v)


@settings(max_examples=80, deadline=None)
@given(B=st.integers(1, 3), H_kv=st.integers(1, 3), R=st.sampled_from([1, 2, 4]),
       Tk=st.integers(1, 20), D=st.integers(1, 9), scale=st.sampled_from([0.3, 1.0, 3.0]),
       seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float64, np.float32]))
@example(B=1, H_kv=1, R=1, Tk=7, D=1, scale=0.3, seed=9521, dtype=np.float32)   # y cancels to |v| / 1200
def test_attention_decode_equals_textbook(B, H_kv, R, Tk, D, scale, seed, dtype):
    """One key (the first token), one head, grouped-query heads, odd head sizes."""
    rng = np.random.default_rng(seed)
    k, v = cached(rng, B, H_kv, Tk, D, dtype)
    q = (rng.standard_normal((B, H_kv * R, 1, D)) * scale).astype(dtype)
    y = fast_decode.attention_decode(q, k, v)
    assert y.shape == q.shape
    values = float(np.abs(v).max())                        # y averages them: its rounding is theirs
    assert floor_error(y, F.attention_forward(q, k, v)[0], dtype, values) <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_attention_decode_on_contiguous_keys(dtype):
    """Keys not from a cache (contiguous (B, H_kv, Tk, D), k^T then a strided view)."""
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal(shape).astype(dtype)
               for shape in ((2, 4, 1, 5), (2, 2, 7, 5), (2, 2, 7, 5)))
    y = fast_decode.attention_decode(q, k, v)
    assert floor_error(y, F.attention_forward(q, k, v)[0], dtype) <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_attention_decode_scores_that_would_overflow_an_unshifted_exp(dtype):
    rng = np.random.default_rng(4)
    k, v = cached(rng, 1, 2, 9, 4, dtype)
    q = (k[:, :, 3:4] * 25.0).astype(dtype)            # scores up to ~25 |k|^2 / 2: hundreds
    y = fast_decode.attention_decode(q, k, v)
    assert np.isfinite(y).all() and y.dtype == dtype
    if dtype == np.float64:
        assert floor_error(y, F.attention_forward(q, k, v)[0], dtype) <= TOLERANCE[dtype]


def test_a_wrong_decode_kernel_is_caught():
    """A 0.1% error in the output fails the comparison (the test can go red)."""
    rng = np.random.default_rng(5)
    k, v = cached(rng, 2, 2, 6, 4, np.float64)
    q = rng.standard_normal((2, 4, 1, 4))
    wrong = fast_decode.attention_decode(q, k, v) * 1.001
    assert floor_error(wrong, F.attention_forward(q, k, v)[0], np.float64) > TOLERANCE[np.float64]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_decode_run_the_same_one_position_attention(dtype, monkeypatch):
    """With a KV cache, one new position goes through ``attention_decode`` from
    forward and from decode alike (so the two agree bit for bit), and through the
    textbook pair with the switch on."""
    calls = []
    kernel = fast_decode.attention_decode

    def counted(q, k, v):
        calls.append(q.shape)
        return kernel(q, k, v)

    monkeypatch.setattr("npfm.fast.attention.attention_decode", counted)   # fast_kernel("attention", "decode")
    attn = MultiHeadAttention(8, 4, causal=True, dtype=dtype, n_kv_heads=2)
    x = np.random.default_rng(6).standard_normal((2, 4, 8)).astype(dtype)
    cache_f, cache_d = KVCache(2, 2, 5, 2, dtype), KVCache(2, 2, 5, 2, dtype)
    attn(x[:, :3], kv_cache=cache_f)
    attn(x[:, :3], kv_cache=cache_d)
    assert calls == []                                 # three positions: the masked pair
    y_f = attn(x[:, 3:], kv_cache=cache_f)[:, 0]
    y_d = attn.decode(x[:, 3], cache_d)
    assert calls == [(2, 4, 1, 2)] * 2
    np.testing.assert_array_equal(y_f, y_d)
    with npfm.reference():
        cache_r = KVCache(2, 2, 5, 2, dtype)
        attn(x[:, :3], kv_cache=cache_r)
        y_r = attn.decode(x[:, 3], cache_r)
    assert len(calls) == 2                             # the textbook floor: not the kernel
    assert floor_error(y_r, y_d, dtype) <= TOLERANCE[dtype]
