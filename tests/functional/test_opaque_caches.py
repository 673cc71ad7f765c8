"""A cache belongs to its pair: swap in pairs that keep a dict, and everything still runs.

Under ``npfm.fast.reference()`` the Modules look up ``npfm.functional.<name>_forward``
and ``_backward`` at call time, so a pair patched into the package (a
student's, say) is the one that runs. Here every textbook pair is replaced by
one whose cache is a dict (no Module, model or task can unpack it as the
textbook's tuple), and two are rewritten outright with their own cache
layout (LayerNorm and cross-entropy keep their inputs and recompute in the
backward). Modules still pass their gradient checks, and whole tiny GPT,
BERT and CLIP models give the original gradients (within 1e-12 in float64:
the rewritten pairs round differently) and still learn.
"""

import numpy as np
import pytest

import npfm
import npfm.functional as F
from npfm import nn
from npfm.gradcheck import check_module
from npfm.optim import AdamW, param_groups
from tiny_tasks import tiny_bert_task  # noqa: E402

PAIRS = sorted(name[:-len("_forward")] for name in F.__all__ if name.endswith("_forward")
               and f"{name[:-len('_forward')]}_backward" in F.__all__)


def dict_cached(name, forward, backward, used):
    """The pair ``name`` with its cache wrapped in a dict of a different size."""
    def dict_forward(*args, **kwargs):
        y, cache = forward(*args, **kwargs)
        used[name] = used.get(name, 0) + 1
        return y, {"pair": name, "inner": cache}

    def dict_backward(dy, cache):
        assert isinstance(cache, dict) and cache["pair"] == name, f"{name} got a foreign cache"
        return backward(dy, cache["inner"])

    return dict_forward, dict_backward


def student_layernorm_forward(x, gamma, beta, eps=1e-5):
    """LayerNorm keeping its inputs: the backward recomputes mean and rstd."""
    mu = x.mean(-1, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    return gamma * (x - mu) / sigma + beta, {"x": x, "gamma": gamma, "eps": eps}


def student_layernorm_backward(dy, cache):
    x, gamma, eps = cache["x"], cache["gamma"], cache["eps"]
    C = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    inv = 1.0 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (x - mu) * inv
    dxhat = dy * gamma
    dx = inv / C * (C * dxhat - dxhat.sum(-1, keepdims=True)
                    - xhat * (dxhat * xhat).sum(-1, keepdims=True))
    axes = tuple(range(dy.ndim - 1))
    return dx, (dy * xhat).sum(axes), dy.sum(axes)


def student_cross_entropy_forward(logits, targets, ignore_index=-100):
    """Cross-entropy keeping logits and targets: the backward recomputes the softmax."""
    z = logits.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    keep = t != ignore_index
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    n = keep.sum()
    loss = -logp[keep, t[keep]].sum() / n if n else 0.0
    return logits.dtype.type(loss), {"logits": logits, "targets": targets, "ignore": ignore_index}


def student_cross_entropy_backward(dloss, cache):
    z = cache["logits"].reshape(-1, cache["logits"].shape[-1])
    t = cache["targets"].reshape(-1)
    keep = t != cache["ignore"]
    p = np.exp(z - z.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    p[keep, t[keep]] -= 1.0
    p[~keep] = 0.0
    return (p * (float(dloss) / max(keep.sum(), 1))).reshape(cache["logits"].shape)


@pytest.fixture
def dict_pairs(monkeypatch):
    """Every textbook pair swapped for a dict-cache one, under npfm.fast.reference();
    yields {name: forward calls} so a test can see which pairs ran."""
    used = swap_every_pair(monkeypatch)
    with npfm.fast.reference():
        yield used


def swap_every_pair(monkeypatch):
    """Patch every pair of npfm.functional; returns {name: forward calls}."""
    used = {}
    students = {"layernorm": (student_layernorm_forward, student_layernorm_backward),
                "cross_entropy": (student_cross_entropy_forward, student_cross_entropy_backward)}
    for name in PAIRS:
        forward, backward = students.get(
            name, (getattr(F, f"{name}_forward"), getattr(F, f"{name}_backward")))
        forward, backward = dict_cached(name, forward, backward, used)
        monkeypatch.setattr(F, f"{name}_forward", forward)
        monkeypatch.setattr(F, f"{name}_backward", backward)
    return used


def test_every_pair_of_the_modules_is_swapped():
    assert {"layernorm", "attention", "gelu", "softmax", "cross_entropy", "linear",
            "embedding", "positional_embedding", "dropout", "clip_loss"} <= set(PAIRS)


def test_the_student_pairs_are_right():
    """The rewritten pairs equal the textbook (so model gradients may be compared)."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((2, 3, 7)), rng.standard_normal((2, 3, 7))
    gamma, beta = rng.standard_normal(7), rng.standard_normal(7)
    y, cache = F.layernorm_forward(x, gamma, beta)
    y2, cache2 = student_layernorm_forward(x, gamma, beta)
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
    for a, b in zip(student_layernorm_backward(dy, cache2), F.layernorm_backward(dy, cache)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    logits, targets = rng.standard_normal((5, 4)) * 10, np.array([0, 3, -100, 1, 2])
    loss, cache = F.cross_entropy_forward(logits, targets)
    loss2, cache2 = student_cross_entropy_forward(logits, targets)
    assert float(loss2) == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(student_cross_entropy_backward(0.5, cache2),
                               F.cross_entropy_backward(0.5, cache), rtol=1e-12, atol=1e-14)


def module_cases():
    rng = np.random.default_rng(1)
    x3 = rng.standard_normal((2, 4, 6))
    mask = np.ones((2, 4), bool)
    mask[1, 2:] = False
    return [
        ("layernorm", nn.LayerNorm(6), (x3,), {}),
        ("linear", nn.Linear(6, 5), (x3,), {}),
        ("gelu", nn.GELU("tanh"), (x3,), {}),
        ("gelu", nn.GELU("none"), (x3,), {}),
        ("softmax", nn.Softmax(), (x3,), {}),
        ("attention", nn.MultiHeadAttention(6, 2, causal=True), (x3,), {"mask": mask}),
        ("attention", nn.MultiHeadAttention(8, 4, n_kv_heads=2), (rng.standard_normal((2, 3, 8)),), {}),
        ("embedding", nn.Embedding(5, 3), (np.array([[0, 1, 1], [4, 0, 1]]),), {}),
        ("layernorm", nn.TransformerBlock(6, 2, 12, causal=True), (x3,), {}),
    ]


@pytest.mark.parametrize("case", range(len(module_cases())))
def test_modules_pass_their_gradient_checks_with_dict_caches(dict_pairs, case):
    name, module, inputs, kwargs = module_cases()[case]
    report = check_module(module, *inputs, seed=case, **kwargs)
    assert report.passed, str(report)
    assert dict_pairs.get(name, 0) > 0, dict_pairs                # the swapped pair ran


def test_the_loss_module_with_a_dict_cache(dict_pairs):
    rng = np.random.default_rng(2)
    logits, targets = rng.standard_normal((3, 4, 6)), rng.integers(0, 6, (3, 4))
    targets[0] = -100
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(logits, targets)
    dlogits = loss_fn.backward()
    with npfm.fast.reference(False):
        fast = nn.CrossEntropyLoss()
        assert float(loss) == pytest.approx(float(fast(logits, targets)), rel=1e-12)
        np.testing.assert_allclose(dlogits, fast.backward(), rtol=1e-12, atol=1e-15)
    assert dict_pairs["cross_entropy"] == 1


# ----- whole models -------------------------------------------------------------------------


def gpt_task():
    from npfm.models.gpt import GPT, preset
    from npfm.tasks.gpt import GPTTask
    from npfm.tokenizers import ByteTokenizer
    tok = ByteTokenizer()
    ids = tok.encode("def add(a, b):\n    return a + b\n\n" * 40).astype(np.uint8)
    model = GPT(preset("tiny", context=16, dropout=0.0), seed=0)
    return GPTTask(model, tok, ids[:1000], ids[1000:], batch_size=4, eval_batches=1)


def bert_task():
    return tiny_bert_task(eval_batches=1)


def clip_task():
    from npfm.models.clip import CLIP, preset
    from npfm.tasks.clip import CLIPTask, ShapesData
    from npfm.tokenizers.words import WordTokenizer
    data = ShapesData(n_eval=16, n_zero_shot=8)
    tok = WordTokenizer.train(data.vocabulary_captions())
    model = CLIP(preset("tiny", image_size=16, vocab_size=tok.vocab_size))
    return CLIPTask(model, tok, data, batch_size=4)


def gradients(task, batch):
    task.model.zero_grad()
    loss, _ = task.loss_and_backward(batch)
    return float(loss), {name: p.grad.copy() for name, p in task.model.named_parameters()}


def train_steps(task, batch, lr, steps):
    """A few AdamW steps on one batch; the losses."""
    optimizer = AdamW(param_groups(task.model, 0.0), lr=lr)
    losses = []
    for _ in range(steps):
        task.model.zero_grad()
        losses.append(float(task.loss_and_backward(batch)[0]))
        optimizer.step()
        if hasattr(task, "after_step"):
            task.after_step()
    return losses


def float64_task(make_task):
    task = make_task()
    task.model.astype(np.float64)
    task.model.train()
    return task, task.train_batch(np.random.default_rng(0))


# CLIP's tiny model sits near ln(B) for its first steps: a small lr, a small drop
@pytest.mark.parametrize("make_task, lr, drop, uses", [
    (gpt_task, 1e-2, 0.5, {"embedding", "positional_embedding", "layernorm", "linear",
                           "attention", "gelu", "cross_entropy"}),
    (bert_task, 1e-2, 0.5, {"embedding", "positional_embedding", "layernorm", "linear",
                            "attention", "gelu", "tanh", "cross_entropy"}),
    (clip_task, 3e-4, 0.02, {"embedding", "layernorm", "linear", "attention", "gelu",
                             "clip_loss"}),
], ids=["gpt", "bert", "clip"])
def test_a_whole_model_trains_on_dict_cache_pairs(monkeypatch, make_task, lr, drop, uses):
    """Gradients within 1e-12 of the textbook's own pairs, and the same descent."""
    original, batch = float64_task(make_task)
    with npfm.fast.reference():
        loss0, grads0 = gradients(original, batch)            # the textbook's own pairs
        losses0 = train_steps(original, batch, lr, steps=6)
    swapped, batch = float64_task(make_task)
    used = swap_every_pair(monkeypatch)                        # now swap every pair
    with npfm.fast.reference():
        loss1, grads1 = gradients(swapped, batch)
        assert uses <= set(used), sorted(used)                 # the model ran the swapped pairs
        losses1 = train_steps(swapped, batch, lr, steps=6)
    assert loss1 == pytest.approx(loss0, rel=1e-12)
    assert grads1.keys() == grads0.keys()
    for name, g in grads0.items():
        scale = max(float(np.abs(g).max()), np.finfo(np.float64).tiny)
        assert float(np.abs(grads1[name] - g).max()) <= 1e-12 * scale, name
    assert losses1[-1] < losses1[0] - drop, losses1            # it learns
    np.testing.assert_allclose(losses1, losses0, rtol=1e-12)   # as the textbook's pairs do
