"""Cross-entropy: gradients with ignored targets, values, 1000x logits, dtype, errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.cross_entropy import cross_entropy_backward, cross_entropy_forward
from npfm.nn.cross_entropy import CrossEntropyLoss

lead_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)


def reference_loss(logits, targets, ignore_index=-100):
    """Row by row with math.fsum: slow and obviously right."""
    z = logits.reshape(-1, logits.shape[-1])
    losses = []
    for row, t in zip(z, targets.reshape(-1)):
        if t != ignore_index:
            m = row.max()
            losses.append(m + math.log(math.fsum(math.exp(v - m) for v in row)) - row[t])
    return math.fsum(losses) / len(losses) if losses else 0.0


@settings(max_examples=30, deadline=None)
@given(lead=lead_shapes, V=st.integers(1, 6), ignored=st.sampled_from(["none", "some", "all"]),
       seed=st.integers(0, 2**16))
def test_cross_entropy_gradients_and_value(lead, V, ignored, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((*lead, V)) * 2
    targets = rng.integers(0, V, lead)
    if ignored == "some":
        targets[rng.random(lead) < 0.5] = -100
    elif ignored == "all":
        targets[...] = -100
    errors = check_pair(cross_entropy_forward, cross_entropy_backward, [logits, targets], seed=seed)
    assert errors[0] < TOLERANCE, errors
    report = check_module(CrossEntropyLoss(), logits, targets, seed=seed)
    assert report.passed, str(report)
    loss, cache = cross_entropy_forward(logits, targets)
    assert float(loss) == pytest.approx(reference_loss(logits, targets), rel=1e-12, abs=1e-15)
    dlogits = cross_entropy_backward(1.0, cache)
    assert dlogits.shape == logits.shape
    assert not dlogits[targets == -100].any()
    np.testing.assert_allclose(dlogits.sum(-1), 0, atol=1e-12)    # softmax - onehot sums to 0


def test_all_ignored_is_zero_not_nan():
    logits = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    loss, cache = cross_entropy_forward(logits, np.full((2, 3), 7), ignore_index=7)
    assert loss == 0 and not np.signbit(loss) and loss.dtype == np.float32
    dlogits = cross_entropy_backward(1.0, cache)
    assert dlogits.dtype == np.float32 and not dlogits.any()


def test_large_logits_are_stable_and_correct():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 6, 10)) * 1000
    targets = rng.integers(0, 10, (4, 6))
    loss, cache = cross_entropy_forward(logits, targets)
    dlogits = cross_entropy_backward(1.0, cache)
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    assert float(loss) == pytest.approx(reference_loss(logits, targets), rel=1e-12)
    loss32, cache32 = cross_entropy_forward(logits.astype(np.float32), targets)
    assert np.isfinite(loss32) and float(loss32) == pytest.approx(float(loss), rel=1e-5)
    assert np.isfinite(cross_entropy_backward(1.0, cache32)).all()


def test_known_value_and_dloss_scaling():
    logits = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, np.log(3.0), 0.0, 0.0]])
    loss, cache = cross_entropy_forward(logits, np.array([2, 1]))
    assert float(loss) == pytest.approx((np.log(4) + np.log(2)) / 2, rel=1e-14)
    np.testing.assert_allclose(cross_entropy_backward(3.0, cache),
                               3.0 * cross_entropy_backward(1.0, cache), rtol=1e-14)
    ce = CrossEntropyLoss(ignore_index=0)
    assert float(ce(logits, np.array([0, 1]))) == pytest.approx(np.log(2), rel=1e-14)
    np.testing.assert_allclose(ce.backward(), [[0, 0, 0, 0], [1 / 6, -1 / 2, 1 / 6, 1 / 6]], atol=1e-15)


def test_float32_stays_float32():
    logits = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    loss, cache = cross_entropy_forward(logits, np.array([0, 4, -100]))
    assert loss.dtype == np.float32 and loss.shape == ()
    assert cross_entropy_backward(np.float64(1.0), cache).dtype == np.float32


def test_cross_entropy_bad_input():
    logits = np.zeros((2, 3, 5), np.float32)
    with pytest.raises(ValueError, match=r"targets have shape \(2, 4\), expected \(2, 3\)"):
        CrossEntropyLoss()(logits, np.zeros((2, 4), np.int64))
    with pytest.raises(TypeError, match="targets must be integer class ids, got dtype float64"):
        CrossEntropyLoss()(logits, np.zeros((2, 3)))
    with pytest.raises(TypeError, match="targets must be integer class ids, got dtype bool"):
        CrossEntropyLoss()(logits, np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match=r"target 5 is outside the classes \[0, 5\)"):
        CrossEntropyLoss()(logits, np.full((2, 3), 5))
    with pytest.raises(ValueError, match=r"target -1 is outside the classes \[0, 5\)"):
        CrossEntropyLoss()(logits, np.array([[0, 1, 2], [3, 4, -1]]))
    with pytest.raises(TypeError, match="logits must be a float array"):
        CrossEntropyLoss()(np.zeros((2, 3), np.int64), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="backward called before forward"):
        CrossEntropyLoss().backward()
