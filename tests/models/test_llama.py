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


# ----- the commands: --arch llama, --lora ---------------------------------------------------

CODE = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(300))


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    from npfm.cli import main
    root = tmp_path_factory.mktemp("llama")
    data = root / "data"
    data.mkdir()
    (data / "a.py").write_text(CODE)
    (data / "b.py").write_text(CODE.replace("x", "y"))
    out = root / "base"
    assert main(["train", "gpt", "--preset", "tiny", "--arch", "llama", "--data", str(data),
                 "--steps", "20", "--eval-every", "20", "--out", str(out),
                 "--sample-tokens", "0"]) == 0
    return root, data, out / "checkpoint.npz"


def test_train_arch_llama_writes_a_llama_checkpoint(llama_run, capsys):
    from npfm.checkpoint import load_checkpoint
    from npfm.cli import main
    _, _, ckpt = llama_run
    config = GPTConfig.from_dict(load_checkpoint(ckpt, kind="gpt").config)
    assert config.arch == "llama" and config.n_kv_heads == 1 and not config.tie_head
    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", "def ",
                 "--max-new-tokens", "8", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("def ")


def test_lora_trains_only_the_adapters_and_saves_merged_weights(llama_run, capsys):
    from npfm.checkpoint import load_checkpoint
    from npfm.cli import main
    root, data, base = llama_run
    out = root / "lora"
    assert main(["train", "gpt", "--init", str(base), "--lora", "2", "--lora-alpha", "4",
                 "--data", str(data), "--steps", "6", "--eval-every", "3", "--lr", "1e-2",
                 "--out", str(out), "--sample-tokens", "0"]) == 0
    text = capsys.readouterr().out
    before = load_checkpoint(base, kind="gpt").model_state
    after = load_checkpoint(out / "checkpoint.npz", kind="gpt")
    assert set(after.model_state) == set(before)               # merged: a plain GPT
    trained = sum(before[f"blocks.{i}.attn.{n}.W"].shape[0] * 2 + before[f"blocks.{i}.attn.{n}.W"].shape[1] * 2
                  for i in range(2) for n in ("qkv", "out"))    # r = 2: A (C_in, 2), B (2, C_out)
    total = sum(v.size for v in before.values())
    assert f"{trained:,} parameters trained, {trained / total:.2%}" in text
    for name, value in before.items():                         # only the adapted Ws moved
        moved = not np.array_equal(after.model_state[name], value)
        assert moved == (name.endswith(("attn.qkv.W", "attn.out.W"))), name
    assert main(["generate", "--checkpoint", str(out / "checkpoint.npz"),
                 "--max-new-tokens", "4", "--temperature", "0"]) == 0


def test_unmerged_lora_checkpoints_load_merged(tmp_path):
    from npfm.checkpoint import save_checkpoint
    from npfm.nn import add_lora
    from npfm.tasks.gpt import load_model
    from npfm.tokenizers import ByteTokenizer
    model = GPT(preset("tiny-llama"), seed=0)
    add_lora(model, 3, 6.0)
    rng = np.random.default_rng(0)
    for name, p in model.named_parameters():
        if name.endswith(".B"):
            p.data = rng.standard_normal(p.shape).astype(p.dtype)
    ids = rng.integers(0, 256, size=(1, 9))
    save_checkpoint(str(tmp_path / "c.npz"), kind="gpt", config=model.config.to_dict(),
                    model_state=model.state_dict(),
                    extra={"tokenizer": ByteTokenizer().to_dict(), "lora": {"r": 3, "alpha": 6.0}})
    loaded, _ = load_model(str(tmp_path / "c.npz"))
    np.testing.assert_allclose(loaded(ids), model(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--lora", "2"], "--init"),
    (["--lora", "0", "--init", "x.npz"], "rank"),
    (["--lora-alpha", "3"], "--lora R"),
])
def test_bad_lora_arguments(argv, message, capsys):
    from npfm.cli import main
    assert main(["train", "gpt", "--steps", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npfm: error:") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_rope_attention_gradient_check_every_entry(n_kv_heads):
    from npfm.nn import MultiHeadAttention
    attn = MultiHeadAttention(8, 4, causal=True, bias=False, n_kv_heads=n_kv_heads, rope=True,
                              as_linears=True, std=0.5, rng=np.random.default_rng(3))
    x = np.random.default_rng(4).standard_normal((2, 5, 8))
    report = check_module(attn, x)
    assert report.passed, str(report)
    assert {r.name for r in report.rows} == {"input[0]", "qkv.W", "out.W"}
    with pytest.raises(ValueError, match="cross-attention"):
        attn(x, context=x)


def test_an_older_gpt2_checkpoint_without_the_new_fields_resumes(tmp_path):
    from npfm.checkpoint import load_checkpoint, save_checkpoint
    from npfm.cli import main
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.py").write_text(CODE)
    (data / "b.py").write_text(CODE.replace("x", "y"))
    out = tmp_path / "run"
    args = ["train", "gpt", "--preset", "tiny", "--data", str(data), "--eval-every", "2",
            "--out", str(out), "--sample-tokens", "0"]
    assert main(args + ["--steps", "2"]) == 0
    path = str(out / "checkpoint.npz")
    c = load_checkpoint(path, kind="gpt")
    old = {k: v for k, v in c.config.items()
           if k not in ("arch", "n_kv_heads", "tie_head", "rope_base")}
    save_checkpoint(path, kind="gpt", config=old, model_state=c.model_state,
                    optimizer_state=c.optimizer_state, step=c.step, rng_state=c.rng_state,
                    extra=c.extra)
    assert main(args + ["--steps", "3", "--resume"]) == 0
    assert load_checkpoint(path, kind="gpt").step == 3
