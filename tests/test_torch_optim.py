"""npfm.optim against torch.optim: the same gradients must give the same weights."""

import math
import warnings

import numpy as np
import pytest

from npfm.core import Parameter
from npfm.optim import SGD, AdamW, clip_grad_norm, param_groups, warmup_cosine

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (3,), (2, 3, 2), (1,)]
STEPS = 100


def twins(seed):
    """The same random float64 weights as npfm Parameters and torch tensors."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    ours = [Parameter(a.copy(), decay=len(a.shape) >= 2) for a in arrays]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    return ours, theirs


def run_both(ours, theirs, opt, topt, seed, lr_at=None):
    rng = np.random.default_rng(seed + 1)
    for step in range(STEPS):
        if lr_at is not None:
            opt.set_lr(lr_at(step))
            for group in topt.param_groups:
                group["lr"] = lr_at(step)
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape) * 10.0 ** rng.uniform(-3, 1)
            p.grad[...] = g
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-6, atol=1e-6)
        assert np.abs(p.data - t.detach().numpy()).max() < 1e-10      # in fact ~1e-15


@pytest.mark.parametrize("seed", [0, 1])
def test_adamw_matches_torch(seed):
    ours, theirs = twins(seed)
    opt = AdamW(ours, lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
    topt = torch.optim.AdamW(theirs, lr=1e-2, betas=(0.8, 0.95), eps=1e-6,
                             weight_decay=0.1, foreach=False)
    run_both(ours, theirs, opt, topt, seed)


def test_adamw_two_groups_and_a_schedule_match_torch():
    ours, theirs = twins(2)
    groups = param_groups(ours, weight_decay=0.3)
    decay = [t for p, t in zip(ours, theirs) if p.decay]
    no_decay = [t for p, t in zip(ours, theirs) if not p.decay]
    opt = AdamW(groups, lr=3e-3)
    topt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.3},
                              {"params": no_decay, "weight_decay": 0.0}], lr=3e-3, foreach=False)
    # torch orders the state by group; so do we: pair them up in the same order
    order = [p for g in groups for p in g["params"]]
    torder = decay + no_decay
    run_both(order, torder, opt, topt, seed=2,
             lr_at=lambda s: warmup_cosine(s, 3e-3, 10, STEPS, min_lr=1e-4))


def test_adamw_float32_matches_torch_float32():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((8, 5)).astype(np.float32)
    p, t = Parameter(a.copy()), torch.tensor(a.copy(), requires_grad=True)
    opt, topt = AdamW([p], lr=1e-2), torch.optim.AdamW([t], lr=1e-2, foreach=False)
    for _ in range(20):
        g = rng.standard_normal(a.shape).astype(np.float32)
        p.grad[...] = g
        t.grad = torch.tensor(g)
        opt.step()
        topt.step()
    assert p.data.dtype == np.float32
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_sgd_momentum_matches_torch(weight_decay):
    ours, theirs = twins(4)
    opt = SGD(ours, lr=0.01, momentum=0.9, weight_decay=weight_decay)
    topt = torch.optim.SGD(theirs, lr=0.01, momentum=0.9, weight_decay=weight_decay, foreach=False)
    run_both(ours, theirs, opt, topt, seed=4)


def test_sgd_plain_matches_torch():
    ours, theirs = twins(5)
    run_both(ours, theirs, SGD(ours, lr=0.05), torch.optim.SGD(theirs, lr=0.05), seed=5)


@pytest.mark.parametrize("scale, max_norm", [(1e-3, 1.0), (1.0, 1.0), (10.0, 1.0), (10.0, 0.5)])
def test_clip_grad_norm_matches_torch(scale, max_norm):
    ours, theirs = twins(6)
    rng = np.random.default_rng(6)
    for p, t in zip(ours, theirs):
        g = rng.standard_normal(p.shape) * scale
        p.grad[...] = g
        t.grad = torch.tensor(g)
    total = clip_grad_norm(ours, max_norm)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12, atol=0)


def direct_warmup_cosine(step, base, warmup, total, min_lr):
    if step < warmup:
        return base * (step + 1) / warmup
    if step >= total:
        return min_lr
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2


@pytest.mark.parametrize("warmup, total, min_lr", [(10, 100, 0.0), (5, 50, 1e-4), (1, 20, 0.0)])
def test_warmup_cosine_matches_formula_and_torch_schedulers(warmup, total, min_lr):
    base = 3e-3
    ours = [warmup_cosine(s, base, warmup, total, min_lr) for s in range(total + 5)]
    direct = [direct_warmup_cosine(s, base, warmup, total, min_lr) for s in range(total + 5)]
    np.testing.assert_allclose(ours, direct, rtol=1e-13, atol=0)

    # torch's pieces: LinearLR from base / W over W - 1 steps, then CosineAnnealingLR
    t = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([t], lr=base)
    pieces = []
    if warmup > 1:
        pieces.append(torch.optim.lr_scheduler.LinearLR(
            topt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1))
    pieces.append(torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=total - warmup, eta_min=min_lr))
    if len(pieces) == 1:
        pieces.insert(0, torch.optim.lr_scheduler.ConstantLR(topt, factor=1.0, total_iters=1))
    sched = torch.optim.lr_scheduler.SequentialLR(topt, pieces, milestones=[warmup])
    theirs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(total + 1):
            theirs.append(topt.param_groups[0]["lr"])
            topt.step()
            sched.step()
    np.testing.assert_allclose(ours[:total + 1], theirs, rtol=1e-9, atol=1e-15)
