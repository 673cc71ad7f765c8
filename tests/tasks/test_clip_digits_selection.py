"""CLIP on digits: the three template sets, word dropout, and the step chosen on validation."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.checkpoint import load_checkpoint
from npfm.cli import main
from npfm.data import digits
from npfm.data.digits import (CLIP_TRAIN_TEMPLATES, DIGIT_WORDS, TEST_TEMPLATES, UNKNOWN,
                              VALIDATION_TEMPLATES, caption, noisy_caption)
from npfm.tokenizers.words import WordTokenizer, split_words

TINY = ["--preset", "tiny", "--batch-size", "8"]


def _words(templates):
    return {w for t in templates for w in split_words(t.format(word="", digit=""))}


def test_the_three_template_sets_are_apart():
    assert not set(CLIP_TRAIN_TEMPLATES) & set(VALIDATION_TEMPLATES)
    assert not set(CLIP_TRAIN_TEMPLATES) & set(TEST_TEMPLATES)
    assert not set(VALIDATION_TEMPLATES) & set(TEST_TEMPLATES)
    assert set(digits.TRAIN_TEMPLATES) <= set(CLIP_TRAIN_TEMPLATES)
    # the test and validation templates bring words training never shows (read as [UNK]) ...
    train_words = _words(CLIP_TRAIN_TEMPLATES)
    assert _words(TEST_TEMPLATES) - train_words
    assert _words(VALIDATION_TEMPLATES) - train_words
    # ... and no word of the test templates' own is in the validation templates
    assert not (_words(TEST_TEMPLATES) - train_words) & _words(VALIDATION_TEMPLATES)
    assert "unk" not in train_words          # UNKNOWN stays unknown to the tokenizer


@settings(max_examples=60, deadline=None)
@given(label=st.integers(0, 9), t=st.integers(0, len(CLIP_TRAIN_TEMPLATES) - 1),
       p=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_noisy_caption_keeps_the_digit_and_drops_only_other_words(label, t, p, seed):
    template = CLIP_TRAIN_TEMPLATES[t]
    clean = caption(label, template).split()
    noisy = noisy_caption(label, template, np.random.default_rng(seed), p).split()
    assert len(noisy) == len(clean)
    names = {DIGIT_WORDS[label], str(label)}
    for a, b in zip(clean, noisy):
        if a in names:
            assert b == a                    # the digit's name is never dropped
        else:
            assert b in (a, UNKNOWN)


def test_noisy_caption_at_the_extremes_and_through_the_tokenizer():
    rng = np.random.default_rng(0)
    template = "a photo of the digit {word}"
    assert noisy_caption(7, template, rng, 0.0) == "a photo of the digit seven"
    assert noisy_caption(7, template, rng, 1.0) == "[UNK] [UNK] [UNK] [UNK] [UNK] seven"
    tok = WordTokenizer.train([caption(y, t) for y in range(10) for t in CLIP_TRAIN_TEMPLATES])
    ids = tok.encode(noisy_caption(7, template, rng, 1.0))
    assert list(ids[:5]) == [tok.unk_id] * 5 and ids[5] == tok.ids["seven"]
    drops = [noisy_caption(3, template, rng, 0.3).split().count(UNKNOWN) for _ in range(2000)]
    assert abs(np.mean(drops) / 5 - 0.3) < 0.02


def test_validation_images_are_held_back_from_training():
    pytest.importorskip("sklearn")
    from npfm.tasks.clip import DigitsData
    data = DigitsData()
    train, val, test = (set(d["index"].tolist()) for d in (data.train_set, data.val_set, data.test_set))
    assert not train & val and not train & test and not val & test
    assert len(train) + len(val) + len(test) == 1797
    assert set(np.unique(data.val_set["labels"]).tolist()) == set(range(10))
    tasks = data.validation_tasks()
    assert len(tasks) == len(VALIDATION_TEMPLATES)
    for (name, prompts, images, labels), t in zip(tasks, VALIDATION_TEMPLATES):
        assert len(images) == len(val) and prompts == [[caption(k, t)] for k in range(10)]


def test_train_writes_the_best_step_on_validation_and_zeroshot_reads_it(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "digits"
    assert main(["train", "clip", "--data", "digits", *TINY, "--steps", "6", "--eval-every", "2",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    best = load_checkpoint(str(out / "best.npz"), kind="clip")
    selected = best.extra["selected"]
    from npfm.train import read_metrics
    evals = [r for r in read_metrics(str(out / "metrics.jsonl")) if "val_selection_digit_acc" in r]
    scores = [r["val_selection_digit_acc"] for r in evals]
    first_best = evals[int(np.argmax(scores))]
    assert selected["value"] == max(scores) and selected["step"] == first_best["step"]
    for r in evals:                          # the mean of the single-template accuracies
        singles = [r[f"val_selection_{i}_digit_acc"] for i in range(len(VALIDATION_TEMPLATES))]
        assert r["val_selection_digit_acc"] == pytest.approx(np.mean(singles))
    assert f"weights of step {selected['step']}" in text
    assert main(["zeroshot", "--checkpoint", str(out / "best.npz")]) == 0
    assert "digit_acc" in capsys.readouterr().out
    # a shapes run replacing the digits run in its folder (--overwrite) removes its choice
    assert main(["train", "clip", *TINY, "--steps", "2", "--out", str(out), "--overwrite"]) == 0
    assert not os.path.exists(out / "best.npz")
