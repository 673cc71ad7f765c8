"""The GPT model: whole-model gradient check, initial loss, overfitting, KV cache, sampling."""

import math

import numpy as np
import pytest

import npfm
from npfm.functional import cross_entropy_backward, cross_entropy_forward
from npfm.gradcheck import check_module
from npfm.models.gpt import GPT, GPTConfig, generate, preset, sample_next
from npfm.optim import AdamW


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_whole_model_gradient_check(positions):
    model = GPT(preset("tiny", vocab_size=13, context=6, positions=positions), seed=1)
    ids = np.random.default_rng(0).integers(0, 13, size=(2, 5))
    ids[0, :3] = 4                                          # repeated ids accumulate
    report = check_module(model, ids, max_entries=10)
    assert report.passed, str(report)
    names = {r.name for r in report.rows}
    assert "tok_emb.W" in names and "blocks.1.attn.W_qkv" in names


def test_tied_head_gets_both_gradients():
    model = GPT(preset("tiny", vocab_size=9, context=4)).astype(np.float64)
    ids = np.array([[1, 2, 3]])
    logits = model(ids)
    model.zero_grad()
    model.backward(np.ones_like(logits))
    total = model.tok_emb.W.grad.copy()
    # the head's share alone: dE = dlogits^T h, with h the final LayerNorm's output
    head_share = np.ones_like(logits).reshape(-1, 9).T @ model._saved()[0].reshape(-1, model.config.dim)
    embedding_share = total - head_share
    # the embedding's share lands only on the rows of the ids that were used
    assert np.allclose(embedding_share[[0, 4, 5, 6, 7, 8]], 0)
    assert not np.allclose(embedding_share[[1, 2, 3]], 0)
    assert sum(p is model.tok_emb.W for p in model.parameters()) == 1


def test_initial_loss_is_about_log_vocab():
    for V in (256, 1000):
        model = GPT(preset("tiny", vocab_size=V, context=16))
        rng = np.random.default_rng(0)
        ids = rng.integers(0, V, size=(4, 17))
        loss, _ = cross_entropy_forward(model(ids[:, :-1]), ids[:, 1:])
        assert abs(float(loss) - math.log(V)) < 0.05 * math.log(V)


def test_overfits_one_batch():
    model = GPT(preset("tiny", vocab_size=20, context=8), seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, size=(4, 9))
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(300):
        model.zero_grad()
        loss, cache = cross_entropy_forward(model(ids[:, :-1]), ids[:, 1:])
        model.backward(cross_entropy_backward(1.0, cache))
        opt.step()
    assert float(loss) < 0.05


def test_kv_cache_equals_full_recompute_across_the_context_limit():
    config = preset("tiny", vocab_size=17, context=8)
    model = GPT(config, seed=3).astype(np.float64)
    rng = np.random.default_rng(0)
    for p in model.parameters():            # larger weights: make the test sensitive
        p.data += rng.standard_normal(p.shape) * 0.1
    prompt = rng.integers(0, 17, size=3)
    new_c, logits_c = generate(model, prompt, 20, temperature=0, return_logits=True, use_cache=True)
    new_f, logits_f = generate(model, prompt, 20, temperature=0, return_logits=True, use_cache=False)
    assert new_c == new_f
    assert len(logits_c) == 20
    for a, b in zip(logits_c, logits_f):
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=0)
    # and the no-cache path is literally the model on the current window
    tokens = list(prompt) + new_f
    window = tokens[: 3 + 5]                # step 5 (0-based) saw 8 tokens: full context
    np.testing.assert_allclose(model(np.array([window]))[0, -1], logits_f[5], atol=1e-10)


@pytest.mark.parametrize("textbook", [False, True])
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_is_forward_of_one_position_bit_for_bit(positions, dtype, textbook):
    """On either floor (textbook: the switch on), decode and forward agree bit for bit."""
    config = preset("tiny", vocab_size=19, context=10, positions=positions)
    model = GPT(config, seed=5).astype(dtype).eval()
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data += (rng.standard_normal(p.shape) * 0.1).astype(dtype)
    ids = rng.integers(0, 19, size=(2, 10))                  # a batch of 2
    with npfm.reference(textbook):
        caches_f, caches_d = model.new_kv_caches(2), model.new_kv_caches(2)
        model.forward(ids[:, :3], kv_caches=caches_f)
        model.forward(ids[:, :3], kv_caches=caches_d)
        for t in range(3, 10):                               # up to the full context
            full = model.forward(ids[:, t:t + 1], kv_caches=caches_f)[:, -1]
            one = model.decode(ids[:, t:t + 1], caches_d)
            assert one.dtype == dtype
            np.testing.assert_array_equal(one, full)
        with pytest.raises(ValueError, match="KV caches are full"):
            model.decode(ids[:, :1], caches_d)


def test_decode_rejects_bad_input():
    model = GPT(preset("tiny", vocab_size=10, context=4)).eval()
    caches = model.new_kv_caches(1)
    with pytest.raises(ValueError, match="id 11 outside the vocabulary"):
        model.decode(np.array([[11]]), caches)
    with pytest.raises(ValueError, match=r"expected ids \(B, 1\)"):
        model.decode(np.array([[1, 2]]), caches)
    with pytest.raises(ValueError, match="2 KV caches"):
        model.decode(np.array([[1]]), caches[:1])


def test_sampling_rules():
    rng = np.random.default_rng(0)
    logits = np.array([0.0, 3.0, 1.0, 2.9])
    assert sample_next(logits, rng, temperature=0) == 1
    assert {sample_next(logits, rng, top_k=1) for _ in range(20)} == {1}
    picks = {sample_next(logits, rng, top_k=2) for _ in range(200)}
    assert picks == {1, 3}
    picks = {sample_next(np.log([0.5, 0.3, 0.15, 0.05]), rng, top_p=0.7) for _ in range(300)}
    assert picks == {0, 1}
    with pytest.raises(ValueError, match="top_p"):
        sample_next(logits, rng, top_p=1.5)
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, rng, temperature=-1)


def test_bad_input():
    model = GPT(preset("tiny", vocab_size=10, context=4))
    with pytest.raises(ValueError, match="id 12 outside the vocabulary"):
        model(np.array([[1, 12]]))
    with pytest.raises(TypeError, match="integers"):
        model(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="exceed the context of 4"):
        model(np.zeros((1, 5), int))
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(model, [], 3)
    with pytest.raises(ValueError, match="unknown GPT preset"):
        preset("huge")
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(dim=10, n_heads=3)


def test_float32_training_step_keeps_float32():
    model = GPT(preset("tiny", vocab_size=11, context=4))
    ids = np.array([[1, 2, 3, 4]])
    logits = model(ids)
    assert logits.dtype == np.float32
    model.backward(np.ones_like(logits))
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
