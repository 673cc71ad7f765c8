"""Every model trains on the textbook floor alone, and learns what the fast floor learns.

Each test runs 50 steps of the shared loop (``npfm.train.train`` with the
model's task from ``npfm.tasks``) on a tiny preset and tiny data, once on the
fast floor and once under ``npfm.fast.reference()``, from the same seeds, in
float32, and compares the two curves step by step.

The tolerance, 2e-5 relative on every step's loss (~300 float32 eps), is
float32 noise grown by training: the floors' forward and backward results
differ by rounding (~1e-7 relative, see tests/fast/), and fifty AdamW steps
carry those differences into the weights. Measured here (NPFM_NUM_THREADS 1
or 2): GPT 1.8e-7, BERT 1.4e-7, DALL-E 1.5e-7, and CLIP 4.1e-6, the largest,
as it leaves the plateau at ln(B) where its gradients are nearly zero. The
first step's loss (the forward alone, before any update) must agree to 1e-6.
A real difference between the floors is far above 2e-5: a fast LayerNorm
backward 1% off gives 6e-4 to 1e-2, a GELU backward 0.1% off 4e-5 to 1e-4.
"""

import io

import numpy as np
import pytest

import npfm
from npfm.train import TrainConfig, train
from tiny_tasks import tiny_bert_task  # noqa: E402

STEPS = 50
TOLERANCE = 2e-5


def run(make_task, tmp_path, name, lr=3e-3):
    """Per-step training losses of 50 steps, and what the floor switch said during them."""
    task = make_task()
    seen = []
    loss_and_backward = task.loss_and_backward

    def step(batch):
        seen.append(npfm.fast.reference_enabled())
        return loss_and_backward(batch)

    task.loss_and_backward = step
    config = TrainConfig(steps=STEPS, lr=lr, min_lr=lr / 10, warmup=5, eval_every=STEPS,
                         log_every=1, checkpoint_every=STEPS, seed=0)
    result = train(task, config, str(tmp_path / name), stream=io.StringIO(),
                   plot=False, save=False)
    assert len(result.history) == STEPS
    return np.array([r["train_loss"] for r in result.history]), seen, result.last_eval


def compare_floors(make_task, tmp_path, lr=3e-3, learns=0.3):
    fast_losses, fast_seen, fast_eval = run(make_task, tmp_path, "fast", lr)
    with npfm.fast.reference():
        textbook_losses, textbook_seen, textbook_eval = run(make_task, tmp_path, "textbook", lr)
    assert not any(fast_seen) and all(textbook_seen) and len(textbook_seen) == STEPS
    assert np.isfinite(textbook_losses).all()
    assert textbook_losses[-5:].mean() < textbook_losses[:5].mean() - learns, textbook_losses
    gap = np.abs(textbook_losses - fast_losses) / np.abs(fast_losses)
    assert gap.max() <= TOLERANCE, (gap.max(), gap.argmax())
    assert gap[0] <= 1e-6, gap[0]                          # the first step: rounding only
    assert textbook_eval["val_loss"] == pytest.approx(fast_eval["val_loss"], rel=TOLERANCE)
    return gap


def gpt_task():
    from npfm.models.gpt import GPT, preset
    from npfm.tasks.gpt import GPTTask
    from npfm.tokenizers import ByteTokenizer
    tok = ByteTokenizer()
    text = "def add(a, b):\n    return a + b\n\n" * 40 + "class Point:\n    x = 0\n" * 30
    ids = tok.encode(text).astype(np.uint8)
    model = GPT(preset("tiny", context=16), seed=0)
    return GPTTask(model, tok, ids[:1500], ids[1500:], batch_size=4, eval_batches=2)


def test_gpt_trains_on_the_textbook_floor(tmp_path):
    compare_floors(gpt_task, tmp_path, lr=1e-2, learns=1.0)


def bert_task():
    return tiny_bert_task(eval_batches=2)


def test_bert_pretraining_trains_on_the_textbook_floor(tmp_path):
    compare_floors(bert_task, tmp_path, lr=1e-2, learns=0.5)


def clip_task():
    from npfm.models.clip import CLIP, preset
    from npfm.tasks.clip import CLIPTask, ShapesData
    from npfm.tokenizers.words import WordTokenizer
    data = ShapesData(n_eval=16, n_zero_shot=8)
    # unjittered colours: with the training jitter this tiny model stays at ln(B) for the
    # 50 steps (the jitter is data, the same on both floors: tests/tasks/test_clip_shapes_batches.py)
    data.jitter = 0.0
    tok = WordTokenizer.train(data.vocabulary_captions())
    # width 16: at the preset's 8 the model stays at ln(B) for the 50 steps
    model = CLIP(preset("tiny", image_size=16, vocab_size=tok.vocab_size, dim=16, embed_dim=16))
    return CLIPTask(model, tok, data, batch_size=8)


def test_clip_trains_on_the_textbook_floor(tmp_path):
    gap = compare_floors(clip_task, tmp_path, lr=1e-2, learns=0.1)
    assert gap.max() > 0                                   # the floors are really different code


def test_the_comparison_sees_a_wrong_fast_kernel(tmp_path, monkeypatch):
    """A fast LayerNorm backward 1% off: the curves part by far more than the tolerance."""
    import npfm.fast.layernorm as fast_layernorm
    right = fast_layernorm.layernorm_backward

    def wrong(dy, cache):
        dx, dgamma, dbeta = right(dy, cache)
        return dx * 1.01, dgamma, dbeta

    monkeypatch.setattr(fast_layernorm, "layernorm_backward", wrong)
    with pytest.raises(AssertionError):
        compare_floors(gpt_task, tmp_path, lr=1e-2, learns=1.0)


def dalle_task():
    from npfm.models.dalle import DALLE, preset
    from npfm.tasks.dalle import DALLETask, ShapesImages
    from npfm.tokenizers.vq import VQTokenizer
    from npfm.tokenizers.words import WordTokenizer
    data = ShapesImages(n_train=200, seed=0)
    vq = VQTokenizer.fit(data.train["images"], n_codes=16, patch=4, iters=5)
    words = WordTokenizer.train(data.vocabulary_captions())
    config = preset("tiny", text_vocab=words.vocab_size, text_len=12, n_codes=16, image_size=16,
                    patch=4, channels=3)
    return DALLETask(DALLE(config, seed=0), words, vq, data, batch_size=8, unk_prob=0.03,
                     n_eval=16)


def test_dalle_trains_on_the_textbook_floor(tmp_path):
    compare_floors(dalle_task, tmp_path, lr=1e-2, learns=0.5)
