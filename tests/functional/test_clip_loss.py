"""CLIP's contrastive loss pair: gradients, values, stability, dtype and bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import check_pair, numerical_gradient, rel_error
from npfm.functional.clip_loss import clip_loss_backward, clip_loss_forward
from npfm.functional.l2_normalize import l2_normalize_backward, l2_normalize_forward
from npfm.nn.clip_loss import INIT_LOGIT_SCALE, MAX_LOGIT_SCALE, CLIPLoss, check_clip_inputs


def reference_loss(x, y, logit_scale):
    """The loss written the slow, obvious way: probabilities of the right partner."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    v = y / np.linalg.norm(y, axis=1, keepdims=True)
    Z = math.exp(logit_scale) * u @ v.T
    total = 0.0
    for i in range(len(Z)):
        total -= Z[i, i] - np.log(np.exp(Z[i]).sum())          # image i picks text i
        total -= Z[i, i] - np.log(np.exp(Z[:, i]).sum())       # text i picks image i
    return total / (2 * len(Z))


@settings(max_examples=30, deadline=None)
@given(B=st.integers(2, 6), E=st.integers(1, 5), scale=st.floats(-1.0, MAX_LOGIT_SCALE),
       seed=st.integers(0, 2**16), scale_shape=st.sampled_from([(), (1,)]))
def test_gradients_wrt_both_embeddings_and_the_scale(B, E, scale, seed, scale_shape):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((B, E)), rng.standard_normal((B, E))
    logit_scale = np.full(scale_shape, scale)
    dloss = np.array(rng.uniform(0.5, 2.0))                       # not 1: the scale must be used
    loss, cache = clip_loss_forward(x, y, logit_scale)
    grads = clip_loss_backward(dloss, cache)
    assert grads[2].shape == scale_shape
    for analytic, array in zip(grads, (x, y, logit_scale)):
        numeric = numerical_gradient(lambda: clip_loss_forward(x, y, logit_scale)[0], array, dloss)
        # atol: a loss near 0 (B = 2, well separated) has gradients at rounding level
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_gradients_are_not_trivially_zero():
    """The hypothesis test would pass a backward returning zeros when E = 1;
    here every gradient is large, and a broken backward is caught."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    scale = np.array(1.2)
    loss, cache = clip_loss_forward(x, y, scale)
    dx, dy_, dscale = clip_loss_backward(1.0, cache)
    for analytic, array in ((dx, x), (dy_, y), (dscale, scale)):
        assert np.abs(analytic).max() > 1e-3
        numeric = numerical_gradient(lambda: clip_loss_forward(x, y, scale)[0], array, np.array(1.0))
        assert rel_error(analytic, numeric) < 1e-7


def test_normalisation_pair():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5))
    u, _ = l2_normalize_forward(x)
    np.testing.assert_allclose(np.linalg.norm(u, axis=-1), 1.0, rtol=1e-12)
    errors = check_pair(l2_normalize_forward, lambda d, c: (l2_normalize_backward(d, c),), [x])
    assert errors[0] < 1e-7


def test_value_matches_the_obvious_formula():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((7, 6)), rng.standard_normal((7, 6))
    loss, _ = clip_loss_forward(x, y, 0.9)
    assert float(loss) == pytest.approx(reference_loss(x, y, 0.9), rel=1e-12)
    # normalisation is inside: the length of an embedding does not matter
    loss_scaled, _ = clip_loss_forward(x * 5.0, y * 0.1, 0.9)
    assert float(loss_scaled) == pytest.approx(float(loss), rel=1e-12)


@pytest.mark.parametrize("B", [2, 16, 128])
def test_loss_at_initialisation_is_about_log_batch_size(B):
    """Random high-dimensional embeddings are nearly orthogonal: Z ~ 0 and every
    softmax is nearly uniform over B, so the loss is ln B (plus a little).
    One batch of 2 is noisy: average 20 of them."""
    rng = np.random.default_rng(B)
    losses = [float(clip_loss_forward(rng.standard_normal((B, 2048)), rng.standard_normal((B, 2048)),
                                      INIT_LOGIT_SCALE)[0]) for _ in range(20 if B == 2 else 1)]
    assert abs(np.mean(losses) - math.log(B)) < 0.1 * math.log(B)


def test_perfect_pairs_give_near_zero_loss_and_shuffled_pairs_a_large_one():
    E = 8
    x = np.eye(E)                                                  # 8 orthogonal images
    loss, _ = clip_loss_forward(x, x.copy(), MAX_LOGIT_SCALE)
    assert float(loss) < 1e-6
    wrong, _ = clip_loss_forward(x, np.roll(x, 1, axis=0), MAX_LOGIT_SCALE)
    assert float(wrong) > 50


def test_stable_at_huge_logit_scale():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    loss, cache = clip_loss_forward(x, y, 12.0)                    # s = 162755: logits up to 1.6e5
    grads = clip_loss_backward(1.0, cache)
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_float32_in_float32_out():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = rng.standard_normal((4, 3)).astype(np.float32)
    loss, cache = clip_loss_forward(x, y, np.float32(INIT_LOGIT_SCALE))
    assert loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in clip_loss_backward(1.0, cache))


def test_module_owns_the_scale_accumulates_and_clamps():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss_fn = CLIPLoss(dtype=np.float64)
    assert float(loss_fn.logit_scale.data[0]) == pytest.approx(math.log(1 / 0.07))
    assert loss_fn.logit_scale.decay is False
    loss_fn(x, y)
    dx, _ = loss_fn.backward()
    once = loss_fn.logit_scale.grad.copy()
    loss_fn(x, y)
    loss_fn.backward()
    np.testing.assert_allclose(loss_fn.logit_scale.grad, 2 * once)
    _, _, dscale = clip_loss_backward(1.0, clip_loss_forward(x, y, loss_fn.logit_scale.data)[1])
    np.testing.assert_allclose(once, dscale)
    loss_fn.logit_scale.data[...] = 7.0
    loss_fn.clamp()
    assert float(loss_fn.logit_scale.data[0]) == pytest.approx(math.log(100))
    loss_fn.logit_scale.data[...] = 1.0
    loss_fn.clamp()
    assert float(loss_fn.logit_scale.data[0]) == 1.0


def test_bad_input():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match="at least two pairs"):
        check_clip_inputs(x[:1], x[:1], 1.0)
    with pytest.raises(ValueError, match="at least two pairs"):
        check_clip_inputs(x[:0], x[:0], 1.0)
    with pytest.raises(ValueError, match="same B and E"):
        check_clip_inputs(x, x[:2], 1.0)
    with pytest.raises(ValueError, match="same B and E"):
        check_clip_inputs(x, x[:, :3], 1.0)
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="text_emb contains NaN"):
        check_clip_inputs(x, bad, 1.0)
    with pytest.raises(ValueError, match="logit_scale contains NaN"):
        check_clip_inputs(x, x, float("nan"))
    with pytest.raises(TypeError, match="one number"):
        check_clip_inputs(x, x, np.ones(2))
    with pytest.raises(TypeError, match="float array"):
        check_clip_inputs(x.astype(int), x, 1.0)


def test_agrees_with_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    B, E = 6, 5
    x, y = rng.standard_normal((B, E)), rng.standard_normal((B, E))
    scale = 1.7
    loss, cache = clip_loss_forward(x, y, np.array(scale))
    dx, dy_, dscale = clip_loss_backward(0.8, cache)

    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, requires_grad=True)
    ts = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    u = torch.nn.functional.normalize(tx, dim=1)
    v = torch.nn.functional.normalize(ty, dim=1)
    logits = ts.exp() * u @ v.T
    target = torch.arange(B)
    t_loss = (torch.nn.functional.cross_entropy(logits, target)
              + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    (0.8 * t_loss).backward()
    assert float(loss) == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dy_, ty.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert float(dscale) == pytest.approx(ts.grad.item(), rel=1e-10)
