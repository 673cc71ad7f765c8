"""The fast SwiGLU and LoRA (npfm/fast/swiglu.py, lora.py) against their textbook twins."""

import numpy as np
from hypothesis import given, settings, strategies as st

from npfm import functional
from npfm.fast import pair, reference
from npfm.fast import swiglu as fast
from floor_compare import TOLERANCE, floor_error


@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=3), C=st.integers(1, 9),
       F=st.integers(1, 11), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_fast_swiglu_equals_the_textbook(lead, C, F, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((*lead, C)) * 3).astype(dtype)      # large |a|: the sigmoid's tails
    W1, W3 = (rng.standard_normal((C, F)).astype(dtype) for _ in range(2))
    W2 = rng.standard_normal((F, C)).astype(dtype)
    dy = rng.standard_normal((*lead, C)).astype(dtype)
    y, cache = fast.swiglu_forward(x, W1, W3, W2)
    y_ref, cache_ref = functional.swiglu_forward(x, W1, W3, W2)
    # the floors' measure (tests/fast/floor_compare.py), relative to the size of the terms
    # each result sums (the same pair on |x|, |W|, |dy| in float64): a float32 sum of large
    # cancelling products is only that accurate, whichever order it is added in
    ab = [np.abs(a).astype(np.float64) for a in (x, W1, W3, W2)]
    y_terms, terms_cache = functional.swiglu_forward(*ab)
    grad_terms = functional.swiglu_backward(np.abs(dy).astype(np.float64), terms_cache)
    assert floor_error(y, y_ref, dtype, terms=y_terms.max()) <= TOLERANCE[dtype]
    for got, want, terms in zip(fast.swiglu_backward(dy, cache),
                                functional.swiglu_backward(dy, cache_ref), grad_terms):
        assert floor_error(got, want, dtype, terms=np.abs(terms).max()) <= TOLERANCE[dtype]


def test_the_modules_choose_it_unless_the_reference_is_on():
    assert pair("swiglu")[0] is fast.swiglu_forward
    with reference():
        assert pair("swiglu")[0] is functional.swiglu_forward


@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=3), C_in=st.integers(1, 9),
       C_out=st.integers(1, 9), r=st.integers(1, 4), bias=st.booleans(),
       seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_fast_lora_equals_the_textbook(lead, C_in, C_out, r, bias, seed, dtype):
    from npfm.fast import lora as fast_lora
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, C_in)).astype(dtype)
    W = rng.standard_normal((C_in, C_out)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype) if bias else None
    A = rng.standard_normal((C_in, r)).astype(dtype)
    B = rng.standard_normal((r, C_out)).astype(dtype)
    dy = rng.standard_normal((*lead, C_out)).astype(dtype)
    y, cache = fast_lora.lora_forward(x, W, b, A, B, 0.75)
    y_ref, cache_ref = functional.lora_forward(x, W, b, A, B, 0.75)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **tol)
    for got, want in zip(fast_lora.lora_backward(dy, cache), functional.lora_backward(dy, cache_ref)):
        if want is None:
            assert got is None
            continue
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)
