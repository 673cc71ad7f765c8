"""The text-to-image model: positions, logits mask, whole-model gradient check,
overfitting, KV-cache sampling and bad input (the stream and the weighted loss
are tests/models/test_dalle_loss.py)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npfm
from npfm.core import Module
from npfm.gradcheck import check_module, check_pair
from npfm.functional.cross_entropy import cross_entropy_forward
from npfm.models.sampling import sample_from_logits
from npfm.models.dalle import (DALLE, DALLEConfig, IGNORE, TextImageLoss, check_codebook,
                               encode_captions, generate_codes, inputs_and_targets, logits_mask,
                               make_stream, preset,
                               text_image_positions_backward, text_image_positions_forward)
from npfm.optim import AdamW
from npfm.tokenizers.vq import VQTokenizer
from npfm.tokenizers.words import WordTokenizer

TINY = preset("tiny")        # Vt 7, L 3, K 5, a 2 x 2 grid: T = 4 + 4 = 8, V = 14


def tiny_stream(config=TINY, B=2, seed=0):
    rng = np.random.default_rng(seed)
    text = rng.integers(3, config.text_vocab, (B, config.text_len))           # words
    text[:, -1] = 0                                                          # [PAD] at the end
    text[0, 1] = 1                                                           # [EOT], then [PAD]
    codes = rng.integers(0, config.n_codes, (B, config.n_image_tokens))
    return make_stream(text, codes, config)


def perturbed(model, scale=0.3, seed=3):
    """Larger random weights: gradients of order 1, so the check is sensitive
    (at initialisation the loss barely depends on some of them)."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = p.data + (rng.standard_normal(p.shape) * scale).astype(p.dtype)
    return model


class FiniteLogits(Module):
    """The model's logits with the masked -inf entries shown as 0, so that the
    fake loss sum(logits * dy) of the gradient check stays finite."""

    def __init__(self, model):
        self.model = model

    def forward(self, ids):
        logits = self.model(ids)
        return np.where(np.isfinite(logits), logits, 0.0)

    def backward(self, dy):
        return self.model.backward(dy)


# ----- layout ---------------------------------------------------------------------------

def test_logits_mask_text_positions_predict_text_and_image_positions_codes():
    c = TINY
    allowed = logits_mask(c)                                                # (T, V)
    assert allowed.shape == (c.context, c.vocab_size)
    assert allowed[:4, :7].all() and not allowed[:4, 7:].any()
    assert allowed[4:, 9:].all() and not allowed[4:, :9].any()
    np.testing.assert_array_equal(logits_mask(c, offset=3, T=2), allowed[3:5])
    model = DALLE(c, seed=0)
    inputs, targets = inputs_and_targets(tiny_stream(), c)
    logits = model(inputs)
    assert np.array_equal(np.isfinite(logits), np.broadcast_to(allowed, logits.shape))
    # every counted target is allowed: the loss is finite
    loss, _ = cross_entropy_forward(logits, targets, IGNORE)
    assert np.isfinite(loss)


def test_positions_give_text_slots_then_row_plus_column():
    rng = np.random.default_rng(0)
    text_pos, row_pos, col_pos = (rng.standard_normal(s) for s in ((3, 4), (2, 4), (3, 4)))
    x = np.zeros((1, 9, 4))
    y, _ = text_image_positions_forward(x, text_pos, row_pos, col_pos)
    np.testing.assert_allclose(y[0, :3], text_pos)
    np.testing.assert_allclose(y[0, 3 + 4], row_pos[1] + col_pos[1])     # cell 4 = row 1, column 1
    np.testing.assert_allclose(y[0, 3 + 2], row_pos[0] + col_pos[2])
    y2, _ = text_image_positions_forward(x[:, :2], text_pos, row_pos, col_pos, offset=5)
    np.testing.assert_allclose(y2, y[:, 5:7])
    with pytest.raises(ValueError, match="positions"):
        text_image_positions_forward(x[:, :2], text_pos, row_pos, col_pos, offset=8)


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 3), n_text=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3),
       data=st.data())
def test_positions_pair_gradients(B, n_text, h, w, data):
    total = n_text + h * w
    offset = data.draw(st.integers(0, total - 1))
    T = data.draw(st.integers(1, total - offset))
    rng = np.random.default_rng(B * 100 + total)
    inputs = [rng.standard_normal((B, T, 3)), rng.standard_normal((n_text, 3)),
              rng.standard_normal((h, 3)), rng.standard_normal((w, 3))]
    errors = check_pair(text_image_positions_forward, text_image_positions_backward, inputs,
                        offset=offset)
    assert max(errors.values()) < 1e-8, errors


# ----- gradients ------------------------------------------------------------------------

def test_whole_model_gradient_check_through_the_weighted_loss():
    model = perturbed(DALLE(TINY, seed=1).astype(np.float64))
    report = check_module(TextImageLoss(model), tiny_stream(), max_entries=12)
    assert report.passed, str(report)
    names = {r.name for r in report.rows}
    assert {"model.pos.row_pos", "model.pos.col_pos", "model.W_head", "model.tok_emb.W"} <= names


def test_whole_model_gradient_check_of_the_logits():
    model = perturbed(DALLE(TINY, seed=2).astype(np.float64))
    inputs, _ = inputs_and_targets(tiny_stream(seed=5), TINY)
    report = check_module(FiniteLogits(model), inputs, max_entries=12)
    assert report.passed, str(report)


def test_masked_logits_send_no_gradient():
    model = DALLE(TINY, seed=0).astype(np.float64)
    inputs, _ = inputs_and_targets(tiny_stream(), TINY)
    logits = model(inputs)
    model.zero_grad()
    dy = np.where(np.isfinite(logits), 0.0, 1.0)         # gradient only on masked entries
    model.backward(dy)
    assert all(np.all(p.grad == 0) for p in model.parameters())


def test_float32_in_float32_out():
    model = DALLE(TINY, seed=0)
    objective = TextImageLoss(model)
    loss = objective(tiny_stream())
    objective.backward()
    assert loss.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    inputs, _ = inputs_and_targets(tiny_stream(), TINY)
    assert model(inputs).dtype == np.float32


def test_initial_image_loss_is_about_log_codes():
    config = preset("tiny", n_codes=40, dim=16)
    objective = TextImageLoss(DALLE(config, seed=0))
    rng = np.random.default_rng(0)
    text = rng.integers(3, config.text_vocab, (8, config.text_len))
    objective(make_stream(text, rng.integers(0, 40, (8, config.n_image_tokens)), config))
    assert abs(objective.image_loss - math.log(40)) < 0.05 * math.log(40)
    assert abs(objective.text_loss - math.log(config.text_vocab)) < 0.1 * math.log(config.text_vocab)


def test_overfits_a_batch_and_redraws_it_greedily():
    config = preset("tiny", text_vocab=8, text_len=3, n_codes=6, image_size=6, patch=2, dim=32,
                    n_layers=2, n_heads=2)                           # a 3 x 3 grid
    rng = np.random.default_rng(0)
    text = np.array([[3, 4, 1], [5, 1, 0], [6, 7, 1], [7, 3, 1]])   # four different captions
    codes = rng.integers(0, 6, (4, 9))
    stream = make_stream(text, codes, config)
    model = DALLE(config, seed=0)
    objective = TextImageLoss(model)
    optimizer = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(150):
        model.zero_grad()
        objective(stream)
        objective.backward()
        optimizer.step()
    # the first word after [BOS] cannot be known: 4 of the 11 counted text targets
    # carry log 4 each, the rest nothing
    assert objective.image_loss < 0.05
    assert objective.text_loss < 4 * math.log(4) / 11 + 0.05
    np.testing.assert_array_equal(generate_codes(model, text, temperature=0), codes)


# ----- sampling -------------------------------------------------------------------------

def test_kv_cache_sampling_equals_full_recompute():
    config = preset("tiny", image_size=6)                                 # 9 codes
    model = perturbed(DALLE(config, seed=4).astype(np.float64), scale=0.1)
    text = np.array([[3, 4, 1], [6, 1, 0]])
    codes_c, logits_c = generate_codes(model, text, np.random.default_rng(7), return_logits=True)
    codes_f, logits_f = generate_codes(model, text, np.random.default_rng(7), use_cache=False,
                                       return_logits=True)
    np.testing.assert_array_equal(codes_c, codes_f)
    np.testing.assert_allclose(logits_c, logits_f, atol=1e-10, rtol=0)
    assert logits_c.shape == (2, 9, config.n_codes) and np.isfinite(logits_c).all()
    # and the logits of step j are the model's on the whole prefix
    stream = make_stream(text, codes_c, config)
    full = model(stream[:, :-1])[:, config.n_text_positions:, config.code_offset:]
    np.testing.assert_allclose(full, logits_c, atol=1e-10)
    assert model.training                                         # the mode is restored


def test_sampling_rules():
    rng = np.random.default_rng(0)
    logits = np.array([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(sample_from_logits(logits, rng, temperature=0), [1, 0])
    np.testing.assert_array_equal(sample_from_logits(logits, rng, top_k=1), [1, 0])
    draws = np.stack([sample_from_logits(logits, rng, top_k=2) for _ in range(300)])
    assert set(np.unique(draws[:, 0])) <= {1, 3}
    # frequencies follow softmax(logits / temperature)
    many = sample_from_logits(np.tile(logits[:1], (20000, 1)), rng, temperature=2.0)
    p = np.exp(logits[0] / 2) / np.exp(logits[0] / 2).sum()
    np.testing.assert_allclose(np.bincount(many, minlength=4) / 20000, p, atol=0.015)
    with pytest.raises(ValueError, match="temperature"):
        sample_from_logits(logits, rng, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        sample_from_logits(logits, rng, top_k=0)


# ----- bad input --------------------------------------------------------------------------

def test_bad_input():
    model = DALLE(TINY)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(np.array([[0, 14]]))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(np.array([1, 2]))
    with pytest.raises(ValueError, match="exceed"):
        model(np.zeros((1, 9), np.int64))
    with pytest.raises(TypeError):
        model(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="codes must be"):
        make_stream(np.array([[3, 1, 0]]), np.zeros((1, 3), np.int64), TINY)
    with pytest.raises(ValueError, match="text ids must be"):
        make_stream(np.array([[3, 1]]), np.zeros((1, 4), np.int64), TINY)
    with pytest.raises(ValueError, match="divisible"):
        DALLEConfig(dim=10, n_heads=4)
    with pytest.raises(ValueError, match="does not divide"):
        DALLEConfig(image_size=16, patch=3)
    with pytest.raises(ValueError, match="text ids"):
        generate_codes(model, np.zeros((1, 5), np.int64))


def test_captions_unknown_words_become_unk_and_an_empty_caption_is_refused():
    words = WordTokenizer.train(["a red circle", "a blue square"])
    config = preset("tiny", text_vocab=words.vocab_size, text_len=4)
    ids = encode_captions(words, ["a purple circle", "a red square on the left"], config)
    assert ids.shape == (2, 4)
    assert ids[0, 1] == words.unk_id and ids[0, 3] == words.eot_id
    assert ids[1, 3] == words.eot_id                               # truncated to L - 1 words
    for empty in ("", "   ", "?!"):
        with pytest.raises(ValueError, match="empty"):
            encode_captions(words, empty, config)
    with pytest.raises(ValueError, match="words"):
        encode_captions(words, "a red circle", preset("tiny", text_vocab=99))


def test_a_codebook_of_another_patch_size_is_refused():
    images = np.random.default_rng(0).random((4, 16, 16, 3)).astype(np.float32)
    config = preset("default", text_vocab=10, n_codes=8, patch=2)
    check_codebook(config, VQTokenizer.fit(images, n_codes=8, patch=2, iters=2))
    with pytest.raises(ValueError, match="4x4 patches but the model was trained on 2x2"):
        check_codebook(config, VQTokenizer.fit(images, n_codes=8, patch=4, iters=2))
    with pytest.raises(ValueError, match="codes"):
        check_codebook(config, VQTokenizer.fit(images, n_codes=6, patch=2, iters=2))


@pytest.mark.parametrize("textbook", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_is_forward_of_one_position_bit_for_bit(dtype, textbook):
    """DALLE.decode (the one decoder stack's one-position decode, with the logits
    mask at that position) equals forward on the same position with the same
    cache, bit for bit, at every position up to the end of the stream, on either
    floor (textbook: the switch on)."""
    config = preset("tiny", image_size=6)
    model = perturbed(DALLE(config, seed=5).astype(dtype), scale=0.1).eval()
    stream = make_stream(np.array([[3, 4, 1], [6, 1, 0]]),
                         np.random.default_rng(2).integers(0, config.n_codes, (2, 9)), config)
    ids = stream[:, :-1]                                                  # (B, T)
    with npfm.reference(textbook):
        caches_a, caches_b = model.new_kv_caches(2), model.new_kv_caches(2)
        model.forward(ids[:, :2], kv_caches=caches_a)
        model.forward(ids[:, :2], kv_caches=caches_b)
        for t in range(2, ids.shape[1]):
            one = model.decode(ids[:, t:t + 1], caches_a)                 # (B, V)
            full = model.forward(ids[:, t:t + 1], kv_caches=caches_b)[:, 0]   # (B, V)
            assert one.dtype == dtype
            np.testing.assert_array_equal(one, full)
        with pytest.raises(ValueError, match="room in the caches"):
            model.decode(ids[:, :1], caches_a)
