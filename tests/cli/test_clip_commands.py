"""The CLIP commands: train (files, seeds, resume), zeroshot, image-search, the digits data."""

import itertools
import json
import os

import numpy as np
import pytest

from npfm.cli import main
from npfm.data import shapes
from npfm.tasks import clip as job
from npfm.png import read_png
from npfm.train import read_metrics

TINY = ["--preset", "tiny", "--batch-size", "8"]


@pytest.fixture(autouse=True)
def small_held_out_sets(monkeypatch):
    """Held-out and zero-shot sets of a few dozen images keep each command fast."""
    original = job.ShapesData.__init__

    def small(self, image_size=16, n_eval=512, n_zero_shot=500, seed=0):
        original(self, image_size, n_eval=32, n_zero_shot=24, seed=seed)

    monkeypatch.setattr(job.ShapesData, "__init__", small)


def train_losses(out):
    return [r["train_loss"] for r in read_metrics(os.path.join(out, "metrics.jsonl"))]


def test_train_writes_files_and_a_fixed_seed_reproduces_the_losses(tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for out in (a, b):
        assert main(["train", "clip", *TINY, "--steps", "4", "--eval-every", "2", "--out", out]) == 0
    for name in ("checkpoint.npz", "metrics.jsonl", "loss.png", "similarity.png"):
        assert os.path.exists(os.path.join(a, name)), name
    assert train_losses(a) == train_losses(b)
    records = read_metrics(os.path.join(a, "metrics.jsonl"))
    last = records[-1]
    for key in ("val_loss", "val_shape_acc", "val_colour_acc", "val_unseen_shape_acc",
                "val_unseen_colour_acc", "temperature"):
        assert key in last, key
    assert read_png(os.path.join(a, "similarity.png")).shape[-1] == 3
    assert "held-out: val_loss" in capsys.readouterr().out


def test_resume_reproduces_an_uninterrupted_run(tmp_path, monkeypatch):
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    args = ["train", "clip", *TINY, "--steps", "6", "--eval-every", "2"]
    assert main([*args, "--out", straight]) == 0

    calls = {"n": 0}
    real = job.CLIPTask.train_batch

    def interrupted(self, rng):
        calls["n"] += 1
        if calls["n"] == 5:                                   # during step 5: after the step-4 checkpoint
            raise KeyboardInterrupt
        return real(self, rng)

    monkeypatch.setattr(job.CLIPTask, "train_batch", interrupted)
    assert main([*args, "--out", resumed]) == 130
    monkeypatch.setattr(job.CLIPTask, "train_batch", real)
    assert main([*args, "--out", resumed, "--resume"]) == 0
    assert train_losses(resumed) == train_losses(straight)


def test_the_logit_scale_is_clamped_after_each_step(tmp_path):
    from npfm.models.clip import CLIP, preset
    from npfm.tokenizers.words import WordTokenizer
    data = job.ShapesData()
    tok = WordTokenizer.train(data.vocabulary_captions())
    model = CLIP(preset("tiny", image_size=16, vocab_size=tok.vocab_size))
    task = job.CLIPTask(model, tok, data, batch_size=4)
    model.logit_scale.data[:] = 8.0
    task.after_step()
    assert model.logit_scale.data[0] == pytest.approx(np.log(100), rel=1e-6)


def test_zero_shot_prompts_never_use_a_training_template():
    data = job.ShapesData()
    every_training_caption = {
        shapes.caption(s, c, z, p, t)
        for s, c, z, p, t in itertools.product(shapes.SHAPES, shapes.COLOURS, shapes.SIZES,
                                               shapes.POSITIONS, shapes.TRAIN_TEMPLATES)}
    for attribute, classes in (("shape", shapes.SHAPES), ("colour", shapes.COLOURS)):
        prompts = data.class_prompts(attribute)
        assert len(prompts) == len(classes)
        for cls, mine in zip(classes, prompts):
            assert mine and all(cls in p for p in mine)
            assert not set(mine) & every_training_caption
    # ensembling: every other slot is filled every way ("a picture of one {size} {colour} circle")
    circle = data.class_prompts("shape")[0]
    assert "a picture of one large blue circle" in circle
    assert len(circle) == len(set(circle))


def test_zeroshot_and_image_search_commands(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "clip", *TINY, "--steps", "2", "--out", out]) == 0
    ckpt = os.path.join(out, "checkpoint.npz")
    capsys.readouterr()
    assert main(["zeroshot", "--checkpoint", ckpt, "--n", "20"]) == 0
    text = capsys.readouterr().out
    assert "held-out templates" in text and "unseen_colour_acc" in text and "%" in text

    png = str(tmp_path / "search.png")
    assert main(["image-search", "--checkpoint", ckpt, "--query", "a red circle", "--k", "3",
                 "--n", "20", "--out", png, "--image", "4"]) == 0
    text = capsys.readouterr().out
    assert 'query "a red circle"' in text and "#3" in text
    assert "image 4 (its caption:" in text
    assert "text->image R@1" in text and "image->text R@1" in text and "R@5" in text
    assert read_png(png).ndim == 3
    # unknown words are reported, not an error
    assert main(["image-search", "--checkpoint", ckpt, "--query", "a zebra", "--n", "10",
                 "--out", png]) == 0
    assert "not in the vocabulary" in capsys.readouterr().out


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "clip", *TINY[:2], "--batch-size", "1", "--steps", "2", "--out", out]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["zeroshot", "--checkpoint", str(tmp_path / "missing.npz")]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["train", "clip", *TINY, "--steps", "2", "--out", out]) == 0
    assert main(["train", "clip", "--data", "digits", *TINY, "--steps", "4", "--out", out,
                 "--resume"]) == 2
    assert "trained on shapes" in capsys.readouterr().err


def test_digits_without_scikit_learn_is_a_clear_message(tmp_path, monkeypatch, capsys):
    from npfm.data import digits

    def unavailable():
        raise digits.DigitsUnavailableError(digits.INSTALL_HINT)

    monkeypatch.setattr(digits, "_raw_digits", unavailable)
    assert main(["train", "clip", "--data", "digits", "--steps", "2",
                 "--out", str(tmp_path / "d")]) == 2
    assert "pip install scikit-learn" in capsys.readouterr().err


def test_digits_train_and_zeroshot(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = str(tmp_path / "digits")
    assert main(["train", "clip", "--data", "digits", *TINY, "--steps", "2", "--out", out]) == 0
    with open(os.path.join(out, "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f][-1]
    assert "val_digit_acc" in last
    capsys.readouterr()
    assert main(["zeroshot", "--checkpoint", os.path.join(out, "checkpoint.npz")]) == 0
    assert "digit_acc" in capsys.readouterr().out
