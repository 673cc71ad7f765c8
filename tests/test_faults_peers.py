"""Known bugs of the codebases npfm learns from, kept as regression tests (issue 10)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import npfm.fast.attention as fast_attention
import npfm.functional as F
from npfm.functional import causal_mask
from npfm.models.gpt import GPT, preset
from npfm.models.sampling import sample_from_logits, sample_next
from npfm.nn import Linear, MultiHeadAttention
from npfm.train import TrainConfig, train


@pytest.mark.parametrize("attention_forward", [F.attention_forward, fast_attention.attention_forward],
                         ids=["textbook", "fast"])
@settings(max_examples=25, deadline=None)
@given(T=st.integers(2, 9), D=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_causal_mask_holds_at_1e4_scale_scores_in_float32(attention_forward, T, D, seed):
    """minGPT #75: an additive -1e4 mask lets a query see future keys once the scores
    themselves reach ~1e4. npfm masks with -inf, so future tokens get exactly zero
    weight at any scale: changing the future values (to 1e30) changes no output bit."""
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal((2, 1, T, D)) * 300).astype(np.float32)     # scores ~ 1e4..1e5
    k = (rng.standard_normal((2, 1, T, D)) * 300).astype(np.float32)
    v = rng.standard_normal((2, 1, T, D)).astype(np.float32)
    y, _ = attention_forward(q, k, v, causal_mask(T))
    for t in range(T - 1):
        w = v.copy()
        w[..., t + 1:, :] = 1e30                                         # the future, made loud
        y2, _ = attention_forward(q, k, w, causal_mask(T))
        np.testing.assert_array_equal(y2[..., :t + 1, :], y[..., :t + 1, :])


def test_causal_attention_module_and_gpt_ignore_the_future_at_large_logits():
    """minGPT #75 at the model level: GPT weights scaled so the attention scores are
    ~1e4; the logits of the first positions do not depend on later tokens."""
    attn = MultiHeadAttention(8, 2, causal=True, rng=np.random.default_rng(0))
    attn.W_qkv.data *= 2000
    x = np.random.default_rng(1).standard_normal((1, 6, 8)).astype(np.float32)
    x2 = x.copy()
    x2[:, 3:] = 1e6
    np.testing.assert_array_equal(attn.forward(x)[:, :3], attn.forward(x2)[:, :3])

    model = GPT(preset("tiny"), seed=0)
    for block in model.blocks:
        block.attn.W_qkv.data[:, :2 * model.config.dim] *= 300
    ids = np.random.default_rng(2).integers(0, 256, size=(1, 12))
    changed = ids.copy()
    changed[:, 6:] = (ids[:, 6:] + 101) % 256
    np.testing.assert_array_equal(model.forward(ids)[:, :6], model.forward(changed)[:, :6])


def test_top_k_filters_with_minus_infinity():
    """minGPT #10: top-k filtered by setting the other logits to 1e-10 (not -inf); with
    negative kept logits the "filtered" tokens (logit ~0) became the likeliest. Here
    the kept logits are all very negative: only they may ever be drawn."""
    logits = np.full(50, -140.0)
    top = [0, 1, 3, 7, 11]
    logits[top] = [-100.5, -100.6, -101.0, -102.0, -103.0]      # kept, yet all far below 0
    top = set(top)
    rng = np.random.default_rng(0)
    drawn = {sample_next(logits, rng, temperature=1.0, top_k=5) for _ in range(2000)}
    assert drawn <= top and len(drawn) == 5
    rows = np.tile(logits, (2000, 1))
    drawn_rows = set(sample_from_logits(rows, np.random.default_rng(1), top_k=5).tolist())
    assert drawn_rows <= top and len(drawn_rows) == 5


def test_backward_twice_accumulates_twice():
    """micrograd #53: calling backward twice adds the gradients twice. npfm does the
    same, on purpose and documented in Module's docstring: backward *adds* into
    param.grad (tied weights, micro-batches), and zero_grad() resets it."""
    layer = Linear(4, 3, rng=np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((5, 4))
    dy = np.random.default_rng(2).standard_normal((5, 3))
    layer.forward(x)
    dx1 = layer.backward(dy)
    once = layer.W.grad.copy(), layer.b.grad.copy()
    dx2 = layer.backward(dy)
    np.testing.assert_allclose(layer.W.grad, 2 * once[0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(layer.b.grad, 2 * once[1], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(dx1, dx2)                      # the input gradient is not summed
    layer.zero_grad()
    assert not layer.W.grad.any() and not layer.b.grad.any()
    from npfm.core import Module
    assert "twice" in Module.__doc__ and "#53" in Module.__doc__


class GradientProbe:
    """A task whose batches are fixed and which records the gradients it finds on entry."""

    kind, unit = "probe", "item"

    def __init__(self):
        self.model = Linear(3, 2, rng=np.random.default_rng(0))
        self.x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
        self.on_entry, self.after = [], []

    def config_dict(self):
        return {}

    def extra(self):
        return {}

    def train_batch(self, rng):
        return self.x

    def loss_and_backward(self, x):
        self.on_entry.append(float(np.abs(self.model.W.grad).sum()))
        y = self.model.forward(x)
        self.model.backward(y / y.size)                          # loss = mean(y^2) / 2
        self.after.append(self.model.W.grad.copy())
        return float(0.5 * np.mean(y * y)), len(x)

    def evaluate(self):
        return {"val_loss": 0.0}


def test_the_training_loop_zeroes_gradients_between_steps(tmp_path):
    """llm.c #548: gradients were not zeroed between steps, so each step used the sum
    of all earlier gradients. npfm's loop calls zero_grad() before every backward."""
    task = GradientProbe()
    train(task, TrainConfig(steps=4, lr=0.0, min_lr=0.0, warmup=0, eval_every=4, log_every=1,
                            checkpoint_every=4, grad_clip=1e9, weight_decay=0.0),
          tmp_path, plot=False)
    assert task.on_entry == [0.0, 0.0, 0.0, 0.0]
    for g in task.after[1:]:                # lr 0: the same weights, so the same gradient
        np.testing.assert_array_equal(g, task.after[0])
