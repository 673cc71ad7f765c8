"""Optimizers, schedule and clipping, without torch (see test_torch_optim.py for torch)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npfm.core import Module, Parameter
from npfm.optim import SGD, AdamW, Optimizer, clip_grad_norm, param_groups, warmup_cosine


def make_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal((3, 4)).astype(dtype)),
            Parameter(rng.standard_normal(4).astype(dtype)),
            Parameter(rng.standard_normal((2, 2, 3)).astype(dtype), decay=False)]


def set_random_grads(params, rng):
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape)


class Tiny(Module):
    def __init__(self):
        self.W = Parameter(np.ones((2, 3)))
        self.b = Parameter(np.zeros(3))
        self.gamma = Parameter(np.ones(3), decay=False)


# ----- AdamW ------------------------------------------------------------------

def test_adamw_converges_on_a_quadratic():
    rng = np.random.default_rng(0)
    target = rng.standard_normal((5, 3))
    p = Parameter(np.zeros((5, 3)))
    opt = AdamW([p], lr=0.05, weight_decay=0.0)
    for _ in range(500):
        p.grad[...] = p.data - target            # gradient of 0.5 * |w - target|^2
        opt.step()
    np.testing.assert_allclose(p.data, target, atol=1e-3)


def test_adamw_first_step_moves_each_weight_by_lr():
    # at t = 1, m^ = g and sqrt(v^) = |g|, so the step is lr * sign(g) (up to eps)
    p = Parameter(np.array([1.0, -2.0, 3.0]))
    p.grad[...] = [0.5, -4.0, 1e-3]
    AdamW([p], lr=0.1, weight_decay=0.0).step()
    np.testing.assert_allclose(p.data, [0.9, -1.9, 2.9], rtol=0, atol=1e-5)


def test_adamw_weight_decay_is_decoupled():
    # with a zero gradient m = v = 0, so only the decay acts: p *= 1 - lr * wd
    p = Parameter(np.array([[1.0, -2.0], [3.0, 4.0]]))
    start = p.data.copy()
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    opt.step()
    np.testing.assert_allclose(p.data, start * (1 - 0.1 * 0.5), rtol=1e-12)
    opt.step()
    np.testing.assert_allclose(p.data, start * (1 - 0.1 * 0.5) ** 2, rtol=1e-12)


def test_groups_override_defaults_and_param_groups_split_by_decay():
    model = Tiny()
    groups = param_groups(model, weight_decay=0.3)
    assert [len(g["params"]) for g in groups] == [1, 2]
    assert groups[0]["params"][0] is model.W
    assert groups[0]["weight_decay"] == 0.3 and groups[1]["weight_decay"] == 0.0
    opt = AdamW(groups, lr=0.1, weight_decay=0.01)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.0]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
    opt.step()                                  # zero grads: only the decayed group moves
    np.testing.assert_allclose(model.W.data, 1 - 0.1 * 0.3)
    np.testing.assert_array_equal(model.gamma.data, 1.0)
    opt.set_lr(0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]


def test_param_groups_drops_empty_groups_and_accepts_named_pairs():
    model = Tiny()
    only_no_decay = [(n, p) for n, p in model.named_parameters() if not p.decay]
    groups = param_groups(only_no_decay, 0.1)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda ps: AdamW(ps, weight_decay=0.1),
                                  lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1)])
def test_dtype_is_kept(dtype, make):
    params = make_params(dtype=dtype)
    opt = make(params)
    rng = np.random.default_rng(1)
    for _ in range(3):
        set_random_grads(params, rng)
        opt.step()
    for p in params:
        assert p.data.dtype == dtype and p.grad.dtype == dtype
    for buffers in opt.buffers:
        assert all(b.dtype == dtype for b in buffers.values())


def test_buffers_follow_a_model_cast_after_the_optimizer():
    params = make_params(dtype=np.float32)
    opt = AdamW(params)
    for p in params:
        p.astype(np.float64)
        p.grad[...] = 1.0
    opt.step()
    assert all(p.dtype == np.float64 for p in params)
    assert all(b.dtype == np.float64 for bufs in opt.buffers for b in bufs.values())


def test_step_updates_in_place():
    params = make_params()
    arrays = [p.data for p in params]
    opt = SGD(params, lr=0.1)
    set_random_grads(params, np.random.default_rng(0))
    opt.step()
    assert all(p.data is a for p, a in zip(params, arrays))


# ----- SGD --------------------------------------------------------------------

def test_sgd_momentum_by_hand():
    p = Parameter(np.array([1.0, 2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    p.grad[...] = [1.0, -1.0]
    opt.step()                       # g = grad + 0.5 w = [1.5, 0.0]; b = g; w -= 0.1 b
    np.testing.assert_allclose(p.data, [0.85, 2.0])
    opt.step()                       # g = [1.425, 0.0]; b = 0.9 * [1.5, 0] + g
    np.testing.assert_allclose(p.data, [0.85 - 0.1 * (1.35 + 1.425), 2.0])
    np.testing.assert_array_equal(p.grad, [1.0, -1.0])     # the grad itself is untouched


# ----- state_dict ---------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda ps: AdamW(param_groups(ps, 0.1), lr=0.01),
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    lambda ps: SGD(ps, lr=0.05),
])
def test_state_dict_round_trip_continues_identically(make):
    grads_rng = np.random.default_rng(42)
    grads = [[grads_rng.standard_normal(p.shape) for p in make_params()] for _ in range(10)]

    def run(params, opt, steps):
        for s in steps:
            for p, g in zip(params, grads[s]):
                p.grad[...] = g
            opt.step()

    straight = make_params()
    opt = make(straight)
    opt.set_lr(0.02)                 # restored by load_state_dict below
    run(straight, opt, range(10))

    resumed = make_params()
    opt = make(resumed)
    opt.set_lr(0.02)
    run(resumed, opt, range(5))
    state = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert state["t"].shape == () and int(state["t"]) == 5
    saved = [p.data.copy() for p in resumed]

    fresh = make_params()
    for p, s in zip(fresh, saved):
        p.data[...] = s
    opt2 = make(fresh)
    opt2.load_state_dict(state)
    assert opt2.t == 5 and all(g["lr"] == 0.02 for g in opt2.param_groups)
    run(fresh, opt2, range(5, 10))
    for a, b in zip(straight, fresh):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_is_a_copy():
    params = make_params()
    opt = AdamW(params)
    set_random_grads(params, np.random.default_rng(0))
    opt.step()
    state = opt.state_dict()
    state["m.0"][...] = 123.0
    assert not np.any(opt.buffers[0]["m"] == 123.0)


def test_load_state_dict_rejects_a_bad_state():
    opt = AdamW(make_params())
    state = opt.state_dict()

    fewer = AdamW(make_params()[:2])
    with pytest.raises(ValueError, match="unexpected key 'm.2'"):
        fewer.load_state_dict(state)

    more = AdamW(make_params() + [Parameter(np.zeros(2))])
    with pytest.raises(ValueError, match="missing key 'm.3'"):
        more.load_state_dict(state)

    bad = dict(state)
    bad["v.1"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"'v.1' has shape \(5,\), expected \(4,\)"):
        opt.load_state_dict(bad)

    with pytest.raises(ValueError, match="unexpected key 'm.0'"):
        SGD(make_params(), momentum=0.9).load_state_dict(state)      # another optimizer's state

    with pytest.raises(TypeError, match="dict of arrays"):
        opt.load_state_dict([1, 2])


def test_failed_load_changes_nothing():
    params = make_params()
    opt = AdamW(params)
    before = opt.state_dict()
    bad = dict(before)
    bad["t"] = np.array(7)
    bad["v.2"] = np.zeros(3)
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert opt.t == 0
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


# ----- bad arguments --------------------------------------------------------------

def test_bad_arguments_raise_clear_errors():
    params = make_params()
    with pytest.raises(ValueError, match="lr must be"):
        AdamW(params, lr=-1.0)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        AdamW(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([])
    with pytest.raises(TypeError, match="not the Module itself"):
        AdamW(Tiny())
    with pytest.raises(TypeError, match="named_parameters"):
        AdamW(list(Tiny().named_parameters()))
    with pytest.raises(ValueError, match="appears twice"):
        SGD([params[0], params[0]])
    with pytest.raises(ValueError, match="unknown keys"):
        AdamW([{"params": params, "decay": 0.1}])
    with pytest.raises(ValueError, match="lr must be"):
        AdamW(params).set_lr(float("nan"))
    with pytest.raises(NotImplementedError):
        Optimizer(params, 0.1, 0.0).step()


# ----- clip_grad_norm -------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), max_norm=st.floats(0.01, 10.0),
       scale=st.floats(0.01, 10.0))
def test_clip_grad_norm(seed, max_norm, scale):
    params = make_params(seed)
    set_random_grads(params, np.random.default_rng(seed))
    for p in params:
        p.grad *= scale
    before = [p.grad.copy() for p in params]
    expected = math.sqrt(sum(float(np.sum(g * g)) for g in before))
    total = clip_grad_norm(params, max_norm)
    assert isinstance(total, float)
    assert total == pytest.approx(expected, rel=1e-12)
    after = math.sqrt(sum(float(np.sum(p.grad * p.grad)) for p in params))
    factor = max_norm / (expected + 1e-6)
    if factor < 1:
        assert after == pytest.approx(max_norm * expected / (expected + 1e-6), rel=1e-12)
        for p, g in zip(params, before):
            np.testing.assert_allclose(p.grad, g * factor, rtol=1e-12)
    else:
        for p, g in zip(params, before):
            np.testing.assert_array_equal(p.grad, g)


def test_clip_grad_norm_float32_and_non_finite():
    params = make_params(dtype=np.float32)
    for p in params:
        p.grad[...] = 1e3
    total = clip_grad_norm(params, 1.0)
    assert total == pytest.approx(1e3 * math.sqrt(sum(p.size for p in params)), rel=1e-6)
    assert all(p.grad.dtype == np.float32 for p in params)

    params[1].grad[0] = np.nan
    kept = [p.grad.copy() for p in params]
    assert math.isnan(clip_grad_norm(params, 1.0))
    for p, g in zip(params, kept):
        np.testing.assert_array_equal(p.grad, g)         # nothing scaled
    params[1].grad[0] = np.inf
    assert clip_grad_norm(params, 1.0) == math.inf


# ----- warmup_cosine ----------------------------------------------------------------

def test_warmup_cosine_landmarks():
    lr = lambda s: warmup_cosine(s, 1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    assert lr(0) == pytest.approx(0.1)
    assert lr(4) == pytest.approx(0.5)
    assert lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0)                 # the cosine starts at base_lr
    assert lr(60) == pytest.approx(0.55)                # halfway down: (1 + 0.1) / 2
    assert lr(110) == pytest.approx(0.1) and lr(10_000) == pytest.approx(0.1)
    values = [lr(s) for s in range(120)]
    assert all(a <= b for a, b in zip(values[:10], values[1:11]))       # rises
    assert all(a >= b for a, b in zip(values[10:], values[11:]))        # then falls
    assert warmup_cosine(0, 3e-4, 0, 100) == pytest.approx(3e-4)         # no warmup


def test_warmup_cosine_bad_arguments():
    with pytest.raises(ValueError, match="step"):
        warmup_cosine(-1, 1.0, 10, 100)
    with pytest.raises(ValueError, match="must not exceed"):
        warmup_cosine(0, 1.0, 200, 100)
    with pytest.raises(ValueError, match="base_lr"):
        warmup_cosine(0, -1.0, 10, 100)
