"""The fast attention (npfm/fast/attention.py) against the textbook pair.

Each backward is fed its own floor's cache. The fast floor has paths the
textbook does not: the softmax without the max shift, and its fallback to the
shifted form when a score exceeds 60 (exp would overflow) or a row's exps
underflow (all its scores very negative, or no allowed key at all); one
sequence (q 2-D) skips map_rows; blocks of sequences run on two threads.
Every path is run here, on both floors, and compared.

Tolerances, relative to the largest entry of the textbook's result:

- float64: 1e-12. The floors round in a different order (q scaled before
  the product instead of the scores after it, exp(s) / sum against
  exp(s - max) / sum). A score s carries a rounding error of ~|s| eps, which
  exp turns into a relative error of P; the scores here stay below ~150 in
  size, so that is < 1e-13.
- float32: 2e-5. The same argument with eps = 6e-8: scores up to ~150 give
  ~1e-5 relative error in P (measured: 4e-6 at scores of ~120, 3e-7 at
  scores of order 1); the products over Tk and D add sqrt(T) eps.

The error is inherent to the scores, not to either floor: with scores of
size 2500 both floors are right only to ~2500 eps, and so is this comparison.

One more scale: a query with a single allowed key (T = 1, the first row of a
causal mask) has dS = P * (dP - r) = dP - dP = 0, exactly 0 on the textbook
floor, rounding noise of the size of dP on the fast one (dP - r comes out of
one product there). So dq and dk are compared relative to the larger of the
textbook's largest entry and the size of the terms that cancel in them,
|P * dP| |k| / sqrt(D) and |P * dP| |q| / sqrt(D).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npfm.fast.attention as fast_attention
import npfm.fast.threads as threads
import npfm.functional as F
from floor_compare import floor_error

TOLERANCE = {np.float64: 1e-12, np.float32: 2e-5}


def compare(q, k, v, mask, dy, block=None):
    """The largest errors of y, dq, dk, dv between the floors (two threads, given blocks)."""
    dtype = q.dtype.type
    saved_block, saved_threads = threads.BLOCK_ELEMENTS, threads.set_num_threads(2)
    threads.BLOCK_ELEMENTS = block or saved_block
    try:
        y_fast, cache_fast = fast_attention.attention_forward(q, k, v, mask)
        grads_fast = fast_attention.attention_backward(dy, cache_fast)
    finally:
        threads.BLOCK_ELEMENTS = saved_block
        threads.set_num_threads(saved_threads)
    y_text, cache_text = F.attention_forward(q, k, v, mask)
    grads_text = F.attention_backward(dy, cache_text)
    errors = {"y": floor_error(y_fast, y_text, dtype)}
    terms = cancelling_terms(q, k, v, mask, dy)
    for name, a, b, like in zip(("dq", "dk", "dv"), grads_fast, grads_text, (q, k, v)):
        assert a.shape == like.shape
        errors[name] = floor_error(a, b, dtype, terms.get(name, 0.0))
    return errors


def cancelling_terms(q, k, v, mask, dy):
    """The size of the terms P * dP summed in dq and dk (see the module docstring)."""
    q, k, v, dy = (a.astype(np.float64) for a in (q, k, v, dy))
    n_rep = q.shape[-3] // k.shape[-3] if q.ndim >= 3 else 1
    P = F.attention_weights(q, k, mask)                               # (..., Tq, Tk)
    dP = dy @ (np.repeat(v, n_rep, axis=-3) if n_rep > 1 else v).swapaxes(-1, -2)
    PdP = float(np.abs(P * dP).max(initial=0.0)) / np.sqrt(q.shape[-1])
    return {"dq": PdP * float(np.abs(k).max(initial=0.0)),
            "dk": PdP * float(np.abs(q).max(initial=0.0))}


def count_fallbacks(monkeypatch):
    """A list that grows by one each time the fast floor falls back to the shifted softmax."""
    calls, shifted = [], fast_attention._masked_softmax_inplace

    def counted(scores):
        calls.append(scores.shape)
        return shifted(scores)

    monkeypatch.setattr(fast_attention, "_masked_softmax_inplace", counted)
    return calls


def scores(q, k):
    """The largest |score| of q against k (their heads matched as in the pair)."""
    n_rep = q.shape[-3] // k.shape[-3] if q.ndim >= 3 else 1
    k = np.repeat(k, n_rep, axis=-3) if n_rep > 1 else k
    return float(np.abs(q.astype(np.float64) @ k.swapaxes(-1, -2)).max() / np.sqrt(q.shape[-1]))


def draw(rng, lead, H, H_kv, Tq, Tk, D, dtype, scale=1.0):
    q = rng.standard_normal((*lead, H, Tq, D)) * scale
    k = rng.standard_normal((*lead, H_kv, Tk, D)) * scale
    v = rng.standard_normal((*lead, H_kv, Tk, D))
    dy = rng.standard_normal((*lead, H, Tq, D))
    return [a.astype(dtype) for a in (q, k, v, dy)]


@st.composite
def problems(draw_, max_lead=2):
    """Random attention shapes, heads (grouped too) and masks, fully masked rows included."""
    lead = tuple(draw_(st.lists(st.integers(1, 3), min_size=0, max_size=max_lead)))
    H_kv = draw_(st.sampled_from([1, 2]))
    H = H_kv * draw_(st.sampled_from([1, 2, 3]))
    Tq, Tk, D = draw_(st.integers(1, 7)), draw_(st.integers(1, 9)), draw_(st.integers(1, 8))
    mask_kind = draw_(st.sampled_from(["none", "random", "causal", "padding"]))
    return dict(lead=lead, H=H, H_kv=H_kv, Tq=Tq, Tk=Tk, D=D, mask_kind=mask_kind,
                seed=draw_(st.integers(0, 2**16)), scale=draw_(st.sampled_from([0.3, 1.0, 3.0])))


def make_mask(rng, kind, lead, Tq, Tk):
    if kind == "none":
        return None
    if kind == "causal":
        return F.causal_mask(Tq, Tk)                                  # (Tq, Tk) broadcast
    if kind == "padding":
        return rng.random((*lead, 1, 1, Tk)) < 0.7                    # some sequences fully masked
    mask = rng.random((*lead, 1, Tq, Tk)) < 0.6                       # shared by the heads
    mask.reshape(-1, Tk)[0] = False                                   # one fully masked row
    return mask


@settings(max_examples=60, deadline=None)
@given(p=problems(), dtype=st.sampled_from([np.float64, np.float32]),
       block=st.sampled_from([None, 30, 200]))
def test_fast_attention_equals_textbook(p, dtype, block):
    """Random shapes (T = 1, one head, grouped-query heads), masks, block sizes."""
    rng = np.random.default_rng(p["seed"])
    q, k, v, dy = draw(rng, p["lead"], p["H"], p["H_kv"], p["Tq"], p["Tk"], p["D"], dtype, p["scale"])
    mask = make_mask(rng, p["mask_kind"], p["lead"], p["Tq"], p["Tk"])
    errors = compare(q, k, v, mask, dy, block)
    assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("Tq, Tk", [(1, 1), (1, 6), (5, 5), (3, 8)])
def test_fast_attention_one_sequence(dtype, Tq, Tk):
    """q 2-D (Tq, D): the fast floor calls its kernel directly, without map_rows."""
    rng = np.random.default_rng(Tq * 10 + Tk)
    q, k, v, dy = (a[0, 0] for a in draw(rng, (1,), 1, 1, Tq, Tk, 5, dtype))
    for mask in (None, F.causal_mask(Tq, Tk), rng.random((Tq, Tk)) < 0.5):
        errors = compare(q, k, v, mask, dy)
        assert max(errors.values()) <= TOLERANCE[dtype], errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_attention_one_row_three_dimensional(dtype):
    """q (H, 1, D): one query per head, with grouped key/value heads; T = 1 everywhere."""
    rng = np.random.default_rng(0)
    for Tk in (1, 4):
        q, k, v, dy = (a[0] for a in draw(rng, (1,), 4, 2, 1, Tk, 3, dtype))
        errors = compare(q, k, v, None, dy)
        assert max(errors.values()) <= TOLERANCE[dtype], errors


def _overflow_problem(dtype, one_sequence=False):
    """Scores up to ~120: exp(s) would overflow float32 without the max shift."""
    rng = np.random.default_rng(1)
    q, k, v, dy = draw(rng, (2,), 2, 2, 6, 7, 4, dtype, scale=4.0)
    q[0, 0, 2] = k[0, 0, 3] * 3.0                   # one score of ~|k|^2 * 3 / 2
    if one_sequence:
        q, k, v, dy = q[0, 0], k[0, 0], v[0, 0], dy[0, 0]
    return q, k, v, dy


@pytest.mark.parametrize("one_sequence", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_attention_scores_that_would_overflow_an_unshifted_softmax(dtype, one_sequence, monkeypatch):
    q, k, v, dy = _overflow_problem(dtype, one_sequence)
    assert 60 < scores(q, k) < 150
    for mask in (None, F.causal_mask(6, 7)):
        calls = count_fallbacks(monkeypatch)
        errors = compare(q, k, v, mask, dy)
        assert max(errors.values()) <= TOLERANCE[dtype], errors
        assert len(calls) == 1                        # the fast floor took its fallback


def _underflow_problem(dtype):
    """One query whose scores are all near -70: exp(s) sums to ~1e-30, below 1e-20."""
    rng = np.random.default_rng(2)
    q, k, v, dy = draw(rng, (3,), 2, 1, 5, 6, 4, dtype, scale=0.5)
    k[1, 0] += 5.0                                   # every key of sequence 1 near (5, 5, 5, 5)
    q[1, 1, 3] = -7.0                                # that query scores ~ -7 * 5 * 4 / 2 = -70
    return q, k, v, dy


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_attention_a_row_whose_exps_underflow(dtype, monkeypatch):
    q, k, v, dy = _underflow_problem(dtype)
    row_scores = q[1, 1, 3].astype(np.float64) @ k[1, 0].T.astype(np.float64) / 2
    assert row_scores.max() < -50 and np.exp(row_scores).sum() < 1e-20
    assert scores(q, k) < 150
    for mask in (None, F.causal_mask(5, 6)):
        calls = count_fallbacks(monkeypatch)
        errors = compare(q, k, v, mask, dy)
        assert max(errors.values()) <= TOLERANCE[dtype], errors
        assert len(calls) == 1                        # the fast floor took its fallback


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_attention_fully_masked_rows_give_zeros_on_both_floors(dtype, monkeypatch):
    rng = np.random.default_rng(3)
    q, k, v, dy = draw(rng, (2,), 2, 2, 4, 5, 3, dtype)
    mask = rng.random((2, 1, 4, 5)) < 0.6
    mask[0, 0, 1] = False                            # one row with no allowed key
    mask[1] = False                                  # a whole sequence with none
    calls = count_fallbacks(monkeypatch)
    errors = compare(q, k, v, mask, dy)
    assert max(errors.values()) <= TOLERANCE[dtype], errors
    assert len(calls) == 1                            # a row sums to 0: the fallback
    for floor in (fast_attention, F):
        y, cache = floor.attention_forward(q, k, v, mask)
        dq, dk, dv = floor.attention_backward(dy, cache)
        assert (y[0, :, 1] == 0).all() and (y[1] == 0).all()
        assert (dq[1] == 0).all() and (dk[1] == 0).all() and (dv[1] == 0).all()


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_attention_many_blocks_on_two_threads(dtype, chunked, monkeypatch):
    """Scores of (16, 4, 128, 128), four times BLOCK_ELEMENTS: four blocks of four
    sequences (eight when the causal queries run in two chunks of 64: the widest
    array per sequence is then the last chunk's P, (4, 64, 128)), some with the
    overflow fallback, some with underflowing rows."""
    if not chunked:
        monkeypatch.setattr(fast_attention, "CAUSAL_CHUNK", 128)
    assert fast_attention.CAUSAL_CHUNK == (64 if chunked else 128)
    rng = np.random.default_rng(4)
    q, k, v, dy = draw(rng, (16,), 4, 2, 128, 128, 16, dtype)
    assert 16 * 4 * 128 * 128 >= 4 * threads.BLOCK_ELEMENTS
    key = k[5, 0, 3]
    q[5, 1, 7] = key * (90.0 * 4 / float(key @ key))   # query 7 scores key 3 at 90: over 60
    k[11, 1] += 4.0
    q[11, 2, 0] = -4.0                               # a row scoring ~ -4 * 4 * 16 / 4 = -64
    mask = F.causal_mask(128)
    assert 60 < scores(q, k) < 150
    calls = count_fallbacks(monkeypatch)
    errors = compare(q, k, v, mask, dy)
    assert max(errors.values()) <= TOLERANCE[dtype], errors
    assert len(calls) == 2                            # only the blocks of sequences 5 and 11
    per_block = 8 if chunked else 4                   # sequences per block, not the batch
    assert all(shape[0] == per_block for shape in calls)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_attention_backward_into_given_arrays(dtype):
    """MultiHeadAttention asks the fast backward to fill views of one buffer."""
    q, k, v, dy = _overflow_problem(dtype)
    mask = F.causal_mask(6, 7)
    _, cache_fast = fast_attention.attention_forward(q, k, v, mask)
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    buffer = np.empty((B, H, Tq + 2 * Tk, D), dtype)                  # dq, dk, dv side by side
    given = buffer[:, :, :Tq], buffer[:, :, Tq:Tq + Tk], buffer[:, :, Tq + Tk:]
    out = fast_attention.attention_backward(dy, cache_fast, out=given)
    _, cache_text = F.attention_forward(q, k, v, mask)
    for given_, a, b in zip(given, out, F.attention_backward(dy, cache_text)):
        assert np.shares_memory(given_, a)
        assert floor_error(a, b, dtype) <= TOLERANCE[dtype]


causal_problems = st.fixed_dictionaries(dict(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
    H_kv=st.sampled_from([1, 2]), group=st.sampled_from([1, 2]), T=st.integers(1, 12),
    D=st.integers(1, 6), chunk=st.integers(1, 5), seed=st.integers(0, 2**16),
    scale=st.sampled_from([0.3, 1.0, 3.0])))


@settings(max_examples=60, deadline=None)
@given(p=causal_problems, dtype=st.sampled_from([np.float64, np.float32]),
       block=st.sampled_from([None, 30, 200]))
def test_fast_causal_attention_by_chunks_of_queries_equals_textbook(p, dtype, block):
    """causal_mask(T) with T over CAUSAL_CHUNK: the queries in chunks, each against
    the keys it may see; chunks of 1 query, a last chunk shorter than the others."""
    saved, fast_attention.CAUSAL_CHUNK = fast_attention.CAUSAL_CHUNK, p["chunk"]
    try:
        check_causal_chunks(p, dtype, block)
    finally:
        fast_attention.CAUSAL_CHUNK = saved


def check_causal_chunks(p, dtype, block):
    rng = np.random.default_rng(p["seed"])
    H = p["H_kv"] * p["group"]
    q, k, v, dy = draw(rng, p["lead"], H, p["H_kv"], p["T"], p["T"], p["D"], dtype, p["scale"])
    mask = F.causal_mask(p["T"])
    assert (fast_attention._causal_chunks(mask, p["T"], p["T"]) is not None) == (p["T"] > p["chunk"])
    errors = compare(q, k, v, mask, dy, block)
    assert max(errors.values()) <= TOLERANCE[dtype], errors
    if q.ndim > 2:
        q2, k2, v2, dy2 = (a.reshape(-1, *a.shape[-2:])[0] for a in (q, k, v, dy))
        errors = compare(q2, k2, v2, mask, dy2)                      # one sequence (q 2-D)
        assert max(errors.values()) <= TOLERANCE[dtype], errors


def test_fast_causal_chunks_only_for_exactly_the_causal_mask(monkeypatch):
    monkeypatch.setattr(fast_attention, "CAUSAL_CHUNK", 2)
    chunks = fast_attention._causal_chunks
    assert chunks(F.causal_mask(5), 5, 5) == ((0, 2), (2, 4), (4, 5))
    assert chunks(F.causal_mask(2), 2, 2) is None                    # one chunk: the plain path
    assert chunks(F.causal_mask(5, 7), 5, 7) is None                 # Tq != Tk (a KV cache)
    assert chunks(None, 5, 5) is None
    almost = F.causal_mask(5)
    almost[4, 0] = False                                             # one more masked key
    assert chunks(almost, 5, 5) is None
    assert chunks(F.causal_mask(5)[None], 5, 5) is None              # not a shared (T, T) mask


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_causal_chunks_fall_back_on_their_own(dtype, monkeypatch):
    """A score over 60 in one chunk: that chunk alone takes the shifted softmax."""
    monkeypatch.setattr(fast_attention, "CAUSAL_CHUNK", 3)
    rng = np.random.default_rng(5)
    q, k, v, dy = draw(rng, (2,), 2, 2, 8, 8, 4, dtype)
    key = k[1, 0, 1]
    q[1, 0, 4] = key * (90.0 * 2 / float(key @ key))                 # query 4 (chunk 1) at 90
    assert 60 < scores(q, k) < 150
    calls = count_fallbacks(monkeypatch)
    errors = compare(q, k, v, F.causal_mask(8), dy)
    assert max(errors.values()) <= TOLERANCE[dtype], errors
    assert calls == [(2, 2, 3, 6)]                                   # chunk [3, 6): keys [0, 6)
