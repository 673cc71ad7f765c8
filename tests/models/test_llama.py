"""The Llama layout of the decoder stack: RMSNorm, RoPE in the attention, SwiGLU,
grouped-query attention, no biases, untied head. Whole-model gradient check,
overfitting, KV-cache decoding, and the GPT-2 layout left as it was."""

import numpy as np
import pytest

from npfm.functional import cross_entropy_backward, cross_entropy_forward
from npfm.gradcheck import check_module
from npfm.models.gpt import GPT, GPTConfig, PRESETS, generate, preset
from npfm.nn import RMSNorm, SwiGLU
from npfm.optim import AdamW


def test_llama_layout_has_its_parts():
    model = GPT(preset("tiny-llama"), seed=0)
    names = set(dict(model.named_parameters()))
    assert "blocks.0.attn.qkv.W" in names and "blocks.0.attn.out.W" in names
    assert "W_head" in names and not any(n.endswith(".b") or "pos" in n for n in names)
    block = model.blocks[0]
    assert isinstance(block.ln1, RMSNorm) and isinstance(block.ffn, SwiGLU)
    assert isinstance(model.ln_f, RMSNorm) and model.pos is None
    c = model.config
    D = c.dim // c.n_heads
    assert block.attn.qkv.W.shape == (c.dim, c.dim + 2 * c.n_kv_heads * D)   # KV heads only
    assert PRESETS["llama"].hidden == 344 and PRESETS["llama"].positions == "rope"


@pytest.mark.parametrize("n_kv_heads, tie_head", [(2, False), (1, True), (4, False)])
def test_whole_model_gradient_check(n_kv_heads, tie_head):
    config = preset("tiny-llama", vocab_size=13, context=6, n_kv_heads=n_kv_heads,
                    tie_head=tie_head)
    model = GPT(config, seed=1)
    rng = np.random.default_rng(0)
    for p in model.parameters():          # move off the init (B = 0-like symmetries, gamma = 1)
        p.data = p.data + rng.standard_normal(p.shape) * 0.1
    ids = rng.integers(0, 13, size=(2, 5))
    ids[0, :3] = 4
    report = check_module(model, ids, max_entries=10)
    assert report.passed, str(report)
    names = {r.name for r in report.rows}
    assert {"blocks.1.attn.qkv.W", "blocks.0.ffn.W_gate", "blocks.1.ln2.gamma",
            "ln_f.gamma"} <= names
    assert ("W_head" in names) == (not tie_head)


def test_overfits_one_batch():
    model = GPT(preset("tiny-llama", vocab_size=20, context=8), seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, size=(4, 9))
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(300):
        model.zero_grad()
        loss, cache = cross_entropy_forward(model(ids[:, :-1]), ids[:, 1:])
        model.backward(cross_entropy_backward(1.0, cache))
        opt.step()
    assert float(loss) < 0.05


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_equals_forward_bit_for_bit_at_every_offset(dtype):
    config = preset("tiny-llama", vocab_size=19, context=10)
    model = GPT(config, seed=5).astype(dtype).eval()
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data += (rng.standard_normal(p.shape) * 0.1).astype(dtype)
    ids = rng.integers(0, 19, size=(2, 10))
    full = model.forward(ids)                                # (B, T, V), no cache
    caches_f, caches_d = model.new_kv_caches(2), model.new_kv_caches(2)
    np.testing.assert_array_equal(model.forward(ids[:, :3], kv_caches=caches_f),
                                  model.forward(ids[:, :3], kv_caches=caches_d))
    assert caches_d[0].v.shape[1] == config.n_kv_heads      # the cache holds the KV heads
    for t in range(3, 10):                                   # offsets 3 .. 9
        step = model.forward(ids[:, t:t + 1], kv_caches=caches_f)[:, -1]
        one = model.decode(ids[:, t:t + 1], caches_d)
        assert one.dtype == dtype
        np.testing.assert_array_equal(one, step)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(one, full[:, t], rtol=tol, atol=tol)
    # the positions matter: a shifted copy of the same tokens gives other logits
    assert not np.allclose(model.forward(ids[:, 1:4])[:, -1], full[:, 2])


def test_generate_with_and_without_cache_agree():
    model = GPT(preset("tiny-llama", vocab_size=11, context=8), seed=2).astype(np.float64)
    prompt = np.array([1, 2, 3])
    a, la = generate(model, prompt, 12, temperature=0, use_cache=True, return_logits=True)
    b, lb = generate(model, prompt, 12, temperature=0, use_cache=False, return_logits=True)
    assert a == b
    for x, y in zip(la, lb):
        np.testing.assert_allclose(x, y, atol=1e-10)


def test_gpt2_layout_unchanged_and_old_configs_load():
    old = {"vocab_size": 256, "context": 16, "dim": 16, "n_layers": 2, "n_heads": 2,
           "hidden": 64, "dropout": 0.0, "positions": "learned"}   # a checkpoint before llama
    config = GPTConfig.from_dict(old)
    assert config.arch == "gpt2" and config.tie_head and config.n_kv_heads == 0
    model = GPT(config, seed=0)
    names = list(dict(model.named_parameters()))
    assert "blocks.0.attn.W_qkv" in names and "blocks.0.ffn.fc1.b" in names
    assert "W_head" not in names


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="arch"):
        GPTConfig(arch="mamba")
    with pytest.raises(ValueError, match="n_kv_heads"):
        GPTConfig(arch="llama", n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="rope"):
        GPTConfig(arch="llama", positions="sinusoidal")
    with pytest.raises(ValueError, match="even head size"):
        GPTConfig(arch="llama", dim=12, n_heads=4)
