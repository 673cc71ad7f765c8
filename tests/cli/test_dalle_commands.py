"""The text-to-image jobs: the judge, the task, CLIP reranking, the copy
distances, and ``npfm train dalle`` / ``npfm draw`` / ``npfm dalle-eval`` end to end
on a tiny model (a few steps: these test the plumbing, not the quality)."""

import json
import os

import numpy as np
import pytest

from npfm.cli import main
from npfm.data import shapes
from npfm.evaluation.dalle_judge import Judge, ink_features, rms_distances, same_class_distances
from npfm.tasks.dalle import DALLETask, ShapesImages, draw
from npfm.models.dalle import DALLE, preset
from npfm.png import read_png
from npfm.tokenizers.vq import VQTokenizer
from npfm.tokenizers.words import WordTokenizer


@pytest.fixture(scope="module")
def small():
    """A small shapes set, its codebook and vocabulary, and a tiny model over them."""
    data = ShapesImages(n_train=300, seed=0)
    vq = VQTokenizer.fit(data.train["images"], n_codes=16, patch=2, iters=5)
    words = WordTokenizer.train(data.vocabulary_captions())
    config = preset("tiny", text_vocab=words.vocab_size, text_len=12, n_codes=16, image_size=16,
                    patch=2, channels=3, dim=16)
    return data, vq, words, DALLE(config, seed=0)


def test_ink_features_do_not_depend_on_where_the_shape_is():
    n = 2
    images, _ = shapes.render([1] * n, [5] * n, [1] * n, [0, 8], image_size=16, seed=0)   # corners
    shape_features, colour_features = ink_features(images)
    a, b = shape_features
    assert np.corrcoef(a, b)[0, 1] > 0.9                # the same square, moved across the image
    np.testing.assert_allclose(colour_features[0], colour_features[1], atol=0.1)
    assert colour_features[0, 2] > colour_features[0, 0]     # blue: more blue than red


def test_judge_recognises_real_held_out_images(small):
    data, vq, _, _ = small
    judge = Judge(data, vq)
    held = data.held_out("test", n=300)
    accuracy = judge.accuracy(held["images"], held["labels"])
    assert accuracy["colour"] > 0.95 and accuracy["shape"] > 0.6, accuracy
    assert judge.describe(held["images"][:2])[0].split()[-1] in shapes.SHAPES


def test_task_batches_word_dropout_and_a_training_step(small):
    data, vq, words, model = small
    task = DALLETask(model, words, vq, data, batch_size=8, unk_prob=0.0, n_eval=16, n_judge=4)
    stream = task.train_batch(np.random.default_rng(0))
    c = model.config
    assert stream.shape == (8, c.text_len + 2 + c.n_image_tokens)
    assert (stream[:, 0] == c.bos_id).all() and (stream[:, c.text_len + 1] == c.sep_id).all()
    assert (stream[:, c.text_len + 2:] >= c.code_offset).all()
    assert not (stream[:, 1:c.text_len + 1] == words.unk_id).any()
    task.unk_prob = 1.0
    text = task.train_batch(np.random.default_rng(0))[:, 1:c.text_len + 1]
    assert set(np.unique(text)) <= {words.pad_id, words.eot_id, words.unk_id}
    model.zero_grad()
    loss, n = task.loss_and_backward(stream)
    assert np.isfinite(loss) and n == 8
    assert np.abs(model.pos.row_pos.grad).sum() > 0
    metrics = task.evaluate()
    assert {"val_loss", "val_text_loss", "val_image_loss"} <= set(metrics)
    assert task.extra()["vq"]["patch"] == 2


class BrightnessReranker:
    """A stand-in for CLIP: prefers bright images."""

    def scores(self, images, captions):
        return images.reshape(len(images), -1).mean(axis=1)


def test_draw_keeps_the_best_candidate_of_the_reranker(small):
    _, vq, words, model = small
    plain, scores = draw(model, words, vq, ["a red circle"], samples=6, rng=np.random.default_rng(1))
    assert plain.shape == (6, 16, 16, 3) and scores is None
    picked, scores = draw(model, words, vq, ["a red circle", "a blue square"], samples=2,
                          rng=np.random.default_rng(1), clip=BrightnessReranker(), candidates=3)
    candidates, _ = draw(model, words, vq, ["a red circle", "a blue square"], samples=6,
                         rng=np.random.default_rng(1))
    brightness = candidates.reshape(4, 3, -1).mean(axis=2)                # (outputs, candidates)
    np.testing.assert_allclose(scores, brightness.max(axis=1), rtol=1e-5)
    assert picked.shape == (4, 16, 16, 3)
    with pytest.raises(ValueError, match="at least 1"):
        draw(model, words, vq, "a red circle", samples=0)


def test_copy_distances():
    rng = np.random.default_rng(0)
    train = rng.random((20, 4, 4, 3))
    near = rms_distances(np.concatenate([train[:3], train[:1] + 0.1]), train)
    np.testing.assert_allclose(near, [0, 0, 0, 0.1], atol=1e-6)
    keys = np.array([0, 1] * 10)
    train[keys == 0] = 0.5                                                # class 0: all alike
    d = same_class_distances(train, keys, rng, n_pairs=200)
    assert d.min() == 0 and d.max() > 0.1 and len(d) > 150


# ----- the commands, end to end --------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dalle")
    code = main(["train", "dalle", "--preset", "tiny", "--n-train", "200", "--steps", "3",
                 "--batch-size", "4", "--codes", "16", "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_a_checkpoint_samples_and_resumes(run, capsys):
    for name in ("checkpoint.npz", "metrics.jsonl", "loss.png", "samples.png"):
        assert (run / name).exists(), name
    assert main(["train", "dalle", "--preset", "tiny", "--n-train", "200", "--steps", "4",
                 "--batch-size", "4", "--codes", "16", "--out", str(run), "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in open(run / "metrics.jsonl")]
    assert steps[-1] == 4


def test_draw_writes_a_grid(run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["draw", "a large blue square in the bottom right", "--checkpoint",
                 str(run / "checkpoint.npz"), "--samples", "3", "--out", str(out), "--seed", "0"]) == 0
    image = read_png(str(out))
    assert image.shape[0] > 16 and image.shape[1] > 3 * 16
    assert main(["draw", "a blue zebra", "--checkpoint", str(run / "checkpoint.npz"),
                 "--samples", "1", "--out", str(out), "--overwrite"]) == 0
    assert "zebra" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["a red circle", "--samples", "0"], "--samples must be a positive integer"),
    (["", "--samples", "2"], "empty"),
    (["...", "--samples", "2"], "empty"),
    (["a red circle", "--top-k", "0"], "--top-k"),
])
def test_draw_refuses_bad_input(run, tmp_path, capsys, argv, message):
    code = main(["draw", *argv, "--checkpoint", str(run / "checkpoint.npz"),
                 "--out", str(tmp_path / "x.png")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_draw_refuses_a_codebook_of_another_patch_size(run, tmp_path, capsys):
    images = shapes.make_shapes(50, seed=3)["images"]
    path = VQTokenizer.fit(images, n_codes=16, patch=4, iters=3).save(str(tmp_path / "vq4.json"))
    code = main(["draw", "a red circle", "--checkpoint", str(run / "checkpoint.npz"),
                 "--codebook", path, "--out", str(tmp_path / "x.png")])
    assert code == 2
    assert "4x4 patches but the model was trained on 2x2 patches" in capsys.readouterr().err


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    assert main(["train", "clip", "--preset", "tiny", "--steps", "1", "--batch-size", "8",
                 "--out", str(out)]) == 0
    return out / "checkpoint.npz"


def test_draw_with_clip_reranking_and_eval(run, clip_checkpoint, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["draw", "a red circle", "--checkpoint", str(run / "checkpoint.npz"), "--samples", "2",
                 "--candidates", "3", "--clip", str(clip_checkpoint), "--out", str(out)]) == 0
    assert "best of 3 by CLIP" in capsys.readouterr().out
    assert main(["dalle-eval", "--checkpoint", str(run / "checkpoint.npz"), "--captions", "4",
                 "--samples", "2", "--candidates", "2", "--clip", str(clip_checkpoint),
                 "--out", str(tmp_path)]) == 0
    report = json.load(open(tmp_path / "eval.json"))
    assert set(report["match"]) == {"test", "unseen"}
    assert "clip_best_of_2" in report["match"]["unseen"]
    assert 0 <= report["match"]["test"]["rate"] <= 1
    assert report["judge"]["test"]["real"]["colour"] > 0.9
    copies = report["copies"]
    assert {"generated_to_nearest_train", "real_held_out_to_nearest_train",
            "same_class_train_pairs", "exact_code_copies"} <= set(copies)
    assert os.path.exists(tmp_path / "eval_unseen.png")
