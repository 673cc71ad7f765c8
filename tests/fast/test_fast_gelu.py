"""The fast GELU, tanh and exact forms (npfm/fast/activations.py), against the textbook pair.

Each backward is fed its own floor's cache. Tolerances, relative to the
largest entry of the textbook's result:

- float64: 1e-12. The in-place passes and the textbook's expressions round
  in a different order, ~1e-16 per operation.
- float32: 1e-5. About ten float32 roundings (eps = 6e-8) per element on
  each floor, in a different order; the fast tanh form goes through
  exp(-2u) and s (1 - s) where the textbook has tanh and 1 - t^2, whose
  roundings the chain rule's factors amplify a little (measured: 1.4e-6
  on the many-blocks case below, |x| up to 40).

dx = dy gelu'(x) is compared relative to the larger of its largest entry and
max |dy|: gelu' is a sum of terms of order 1 that cancel near x = -0.75.
y is compared relative to the larger of its largest entry and max |x|: the
textbook's tanh form computes x (1 + t) / 2, and where x is very negative t
is near -1 and 1 + t cancels, leaving an error of order eps |x| however small
y is (x = -4.42: 1.4e-11 of y on the textbook floor, 1.4e-17 on the fast
floor, which goes through exp(-2u) and does not cancel; measured against
long double).
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import npfm.fast.activations as fast_activations
import npfm.fast.threads as threads
import npfm.functional as F
from floor_compare import TOLERANCE, floor_error



def compare(x, dy, approximate):
    dtype = x.dtype.type
    y_fast, cache_fast = fast_activations.gelu_forward(x, approximate)
    y_text, cache_text = F.gelu_forward(x, approximate)
    return {"y": floor_error(y_fast, y_text, dtype, terms=float(np.abs(x).max(initial=0.0))),
            "dx": floor_error(fast_activations.gelu_backward(dy, cache_fast),
                              F.gelu_backward(dy, cache_text), dtype,
                              terms=float(np.abs(dy).max(initial=0.0)))}


def inputs(shape, dtype, seed, scale=3.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * scale).astype(dtype) for _ in range(2)]


shapes = st.lists(st.integers(1, 9), min_size=0, max_size=4).map(tuple)   # () is a 0-d x


@settings(max_examples=50, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float64, np.float32]),
       approximate=st.sampled_from(["tanh", "none"]), seed=st.integers(0, 2**16),
       block=st.sampled_from([None, 5, 40]))
@example(shape=(), dtype=np.float64, approximate="tanh", seed=241, block=None)   # x = -4.42
def test_fast_gelu_equals_textbook(shape, dtype, approximate, seed, block):
    saved_block, saved_threads = threads.BLOCK_ELEMENTS, threads.set_num_threads(2)
    threads.BLOCK_ELEMENTS = block or saved_block          # small blocks: many of them
    try:
        errors = compare(*inputs(shape, dtype, seed), approximate)
    finally:
        threads.BLOCK_ELEMENTS = saved_block
        threads.set_num_threads(saved_threads)
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_gelu_many_blocks_on_two_threads(dtype, approximate):
    """Larger than BLOCK_ELEMENTS, with the far tails (|x| up to 40: tanh and erfc saturate)."""
    x, dy = inputs((2, 400, 768), dtype, seed=1, scale=8.0)
    assert x.size > 2 * threads.BLOCK_ELEMENTS
    x[0, 0, :80] = np.linspace(-40, 40, 80)
    saved = threads.set_num_threads(2)
    try:
        errors = compare(x, dy, approximate)
    finally:
        threads.set_num_threads(saved)
    assert max(errors.values()) <= TOLERANCE[dtype], errors
