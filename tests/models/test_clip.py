"""The CLIP model: patches, whole-model gradient checks of both towers, padding,
loss at initialisation, overfitting, the logit-scale clamp, retrieval helpers, bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import check_module, check_pair
from npfm.models.clip import (CLIP, CLIPConfig, class_recall, patchify_backward, patchify_forward,
                              preset, zero_shot_accuracy, zero_shot_classifier)
from npfm.optim import AdamW
from npfm.tokenizers.words import WordTokenizer

EOT = 1


def tiny(**overrides):
    return preset("tiny", **overrides)


def random_captions(rng, B, config, min_len=1):
    """(B, context) ids: random words (ids >= 3), [EOT], then random junk after it."""
    T = config.context
    ids = rng.integers(3, config.vocab_size, size=(B, T))
    lengths = rng.integers(min_len, T, size=B)                    # words before [EOT]
    ids[np.arange(B), lengths] = EOT
    return ids


def bumped(model, rng, std=0.1):
    """Larger random weights (float64): a gradient check sensitive to every path."""
    model.astype(np.float64)
    for p in model.parameters():
        p.data += rng.standard_normal(p.shape) * std
    return model


# ----- patches ---------------------------------------------------------------------------

def test_patchify_cuts_squares_in_reading_order():
    images = np.arange(2 * 4 * 6 * 3, dtype=np.float64).reshape(2, 4, 6, 3)
    patches, _ = patchify_forward(images, 2)
    assert patches.shape == (2, 6, 12)                             # (4/2) * (6/2) patches of 2*2*3
    # patch 4 of image 1 is row 1, column 1: pixels rows 2-3, columns 2-3
    np.testing.assert_array_equal(patches[1, 4], images[1, 2:4, 2:4].reshape(-1))
    np.testing.assert_array_equal(patches[0, 2], images[0, 0:2, 4:6].reshape(-1))


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 3), rows=st.integers(1, 3), cols=st.integers(1, 3), p=st.integers(1, 3),
       ch=st.sampled_from([1, 3]), seed=st.integers(0, 1000))
def test_patchify_backward_is_its_inverse(B, rows, cols, p, ch, seed):
    images = np.random.default_rng(seed).standard_normal((B, rows * p, cols * p, ch))
    patches, cache = patchify_forward(images, p)
    np.testing.assert_array_equal(patchify_backward(patches, cache), images)
    errors = check_pair(patchify_forward, lambda d, c: (patchify_backward(d, c),), [images], patch=p)
    assert errors[0] < 1e-8


# ----- whole-model gradient checks -------------------------------------------------------

def test_image_tower_gradient_check():
    rng = np.random.default_rng(0)
    model = bumped(CLIP(tiny(), seed=1), rng)
    images = rng.random((3, 8, 8, 3))
    report = check_module(model.image, images, max_entries=10)
    assert report.passed, str(report)
    names = {r.name for r in report.rows}
    assert {"input[0]", "cls", "pos.W", "patch_embed.W", "blocks.0.attn.W_qkv", "proj.W"} <= names


def test_text_tower_gradient_check():
    rng = np.random.default_rng(1)
    model = bumped(CLIP(tiny(), seed=2), rng)
    ids = random_captions(rng, 3, model.config)
    ids[0, :2] = [5, 5]                                            # a repeated word accumulates
    report = check_module(model.text, ids, max_entries=10)
    assert report.passed, str(report)
    assert {"tok_emb.W", "pos.W", "ln_f.gamma", "proj.W"} <= {r.name for r in report.rows}


@pytest.mark.parametrize("seed", [0, 1])
def test_whole_clip_gradient_check_including_the_logit_scale(seed):
    """The output is one number summing many terms, so rounding in the central
    difference is larger than for a tower: a step h = 1e-5 keeps it below 1e-7."""
    rng = np.random.default_rng(seed)
    model = bumped(CLIP(tiny(), seed=3), rng)
    images = rng.random((4, 8, 8, 3))
    ids = random_captions(rng, 4, model.config)
    report = check_module(model, images, ids, max_entries=6, dy=np.array(1.7), h=1e-5)
    assert report.passed, str(report)
    assert "logit_scale" in {r.name for r in report.rows}


# ----- what the towers compute -------------------------------------------------------------

def test_padding_and_anything_after_eot_do_not_change_the_text_embedding():
    config = tiny(context=8)
    model = bumped(CLIP(config, seed=4), np.random.default_rng(3))
    short = np.array([[4, 7, 9, EOT]])
    padded = np.array([[4, 7, 9, EOT, 0, 0, 0, 0]])
    junk = np.array([[4, 7, 9, EOT, 11, 5, EOT, 3]])
    e_short, e_padded, e_junk = (model.text(ids) for ids in (short, padded, junk))
    np.testing.assert_allclose(e_padded, e_short, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(e_junk, e_short, rtol=1e-12, atol=1e-12)
    # and the words before [EOT] do matter
    assert not np.allclose(model.text(np.array([[4, 8, 9, EOT]])), e_short)


def test_each_image_is_encoded_independently_of_its_batch():
    model = bumped(CLIP(tiny(), seed=5), np.random.default_rng(4))
    images = np.random.default_rng(5).random((5, 8, 8, 3))
    together = model.encode_images(images, batch_size=2)          # batches of 2, 2, 1
    alone = np.concatenate([model.encode_images(images[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(together, alone, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0)


def test_loss_at_initialisation_is_about_log_batch_size():
    """An untrained model cannot tell the pairs apart: each softmax is spread
    over the B candidates, so the loss is near ln B. (A little above: the
    untrained text tower already gives different captions different
    directions, so the rows of logits are not quite flat.)"""
    config = preset("default", vocab_size=40)
    model = CLIP(config, seed=0)
    rng = np.random.default_rng(6)
    for B in (16, 64):
        loss = float(model(rng.random((B, 16, 16, 3)).astype(np.float32),
                           random_captions(rng, B, config)))
        assert math.log(B) - 0.05 < loss < 1.2 * math.log(B), (B, loss)


def test_overfits_a_batch_of_16_pairs():
    config = tiny(vocab_size=40, context=6, dim=32, n_heads=2, embed_dim=16)
    model = CLIP(config, seed=0)
    rng = np.random.default_rng(7)
    images = rng.random((16, 8, 8, 3)).astype(np.float32)         # noise: nothing to generalise
    ids = random_captions(rng, 16, config, min_len=3)
    opt = AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    first = None
    for step in range(200):
        model.zero_grad()
        loss = float(model(images, ids))
        first = loss if first is None else first
        model.backward(1.0)
        opt.step()
        model.clamp_logit_scale()
    assert first > 2.0 and loss < 0.05, (first, loss)


def test_logit_scale_starts_at_one_over_0_07_and_is_clamped_at_100():
    model = CLIP(tiny())
    assert model.logit_scale.shape == (1,)
    assert model.temperature == pytest.approx(0.07)
    assert model.logit_scale.decay is False
    model.logit_scale.data[:] = 9.0
    model.clamp_logit_scale()
    assert model.logit_scale.data[0] == pytest.approx(math.log(100), rel=1e-6)
    model.logit_scale.data[:] = 2.0
    model.clamp_logit_scale()
    assert model.logit_scale.data[0] == 2.0


def test_float32_in_float32_out():
    model = CLIP(tiny())
    rng = np.random.default_rng(8)
    images = rng.random((3, 8, 8, 3)).astype(np.float32)
    ids = random_captions(rng, 3, model.config)
    loss = model(images, ids)
    assert loss.dtype == np.float32
    dimages, dids = model.backward(1.0)
    assert dimages.dtype == np.float32 and dids is None
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    assert model.encode_images(images).dtype == np.float32


def test_state_dict_round_trip():
    a, b = CLIP(tiny(), seed=1), CLIP(tiny(), seed=2)
    b.load_state_dict(a.state_dict())
    rng = np.random.default_rng(9)
    images, ids = rng.random((2, 8, 8, 3)).astype(np.float32), random_captions(rng, 2, a.config)
    assert float(a(images, ids)) == float(b(images, ids))
    assert "logit_scale" in a.state_dict() and "image.cls" in a.state_dict()


# ----- using it ---------------------------------------------------------------------------------

def test_zero_shot_classifier_averages_renormalised_prompts():
    model = bumped(CLIP(tiny(vocab_size=12), seed=6), np.random.default_rng(10))
    tok = WordTokenizer(["circle", "red", "square", "blue", "a"])   # ids 3..7
    prompts = [["a circle", "a red circle"], ["a square"]]
    W = zero_shot_classifier(model, tok, prompts)
    assert W.shape == (2, model.config.embed_dim)
    e = model.encode_texts(tok.encode_batch(["a circle", "a red circle", "a square"], 6))
    expected0 = (e[0] + e[1]) / np.linalg.norm(e[0] + e[1])
    np.testing.assert_allclose(W[0], expected0, rtol=1e-10)
    np.testing.assert_allclose(W[1], e[2], rtol=1e-10)
    images = np.random.default_rng(11).random((4, 8, 8, 3))
    scores = model.encode_images(images) @ W.T
    acc = zero_shot_accuracy(model, W, images, scores.argmax(axis=1))
    assert acc == 1.0
    with pytest.raises(ValueError, match="at least one prompt"):
        zero_shot_classifier(model, tok, [["a circle"], []])


def test_class_recall_counts_any_match_of_the_right_class():
    # 3 images of classes 0, 1, 1 against 3 captions of classes 1, 0, 2
    sim = np.array([[0.1, 0.6, 0.0],
                    [0.8, 0.2, 0.3],
                    [0.1, 0.7, 0.6]])
    r = class_recall(sim, [0, 1, 1], [1, 0, 2], ks=(1, 2))
    # text->image: caption 0 (class 1) best image 1 (class 1) hit; caption 1 (class 0) best image 2
    # (class 1) miss, top 2 includes image 0 hit; caption 2 (class 2) never
    assert r["t2i@1"] == pytest.approx(1 / 3) and r["t2i@2"] == pytest.approx(2 / 3)
    # image->text: image 0 best caption 1 (class 0) hit; image 1 best caption 0 hit; image 2 best
    # caption 1 (class 0) miss, then caption 2 (class 2) miss
    assert r["i2t@1"] == pytest.approx(2 / 3) and r["i2t@2"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="expected"):
        class_recall(sim, [0, 1], [1, 0, 2])


# ----- bad input ---------------------------------------------------------------------------------

def test_bad_input():
    model = CLIP(tiny())
    rng = np.random.default_rng(12)
    images = rng.random((2, 8, 8, 3)).astype(np.float32)
    ids = random_captions(rng, 2, model.config)
    with pytest.raises(ValueError, match=r"images must be \(B, 8, 8, 3\)"):
        model(rng.random((2, 16, 16, 3)), ids)                     # wrong size
    with pytest.raises(ValueError, match=r"images must be \(B, 8, 8, 3\)"):
        model(rng.random((2, 8, 8, 1)), ids)                       # wrong channel count
    with pytest.raises(ValueError, match=r"images must be"):
        model(rng.random((8, 8, 3)), ids)                          # a single image without batch axis
    with pytest.raises(TypeError, match="float array"):
        model((images * 255).astype(np.uint8), ids)
    with pytest.raises(ValueError, match="patch size 3 does not divide the image size 8"):
        CLIPConfig(image_size=8, patch=3)
    with pytest.raises(ValueError, match="exceed the context of 6"):
        model(images, np.concatenate([ids, ids], axis=1))          # too long: truncate with the tokenizer
    with pytest.raises(ValueError, match="at least two pairs"):
        model(images[:1], ids[:1])                                 # a batch of one
    with pytest.raises(ValueError, match="batch of images is empty"):
        model(images[:0], ids[:0])
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        model(images, ids[:1])
    bad = images.copy()
    bad[1, 3, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model(bad, ids)
    no_eot = ids.copy()
    no_eot[no_eot == EOT] = 3
    with pytest.raises(ValueError, match="caption 0 has no end-of-text token"):
        model(images, no_eot)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(images, ids + 100)
    with pytest.raises(ValueError, match="backward called before forward"):
        CLIP(tiny()).backward(1.0)
    with pytest.raises(ValueError, match="unknown CLIP preset"):
        preset("huge")
    with pytest.raises(ValueError, match="not divisible"):
        CLIPConfig(dim=10, n_heads=3)
