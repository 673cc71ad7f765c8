"""npfm's GPT in and out of Hugging Face's GPT-2 layout.

numpy only: npfm -> files -> npfm, refusals and bad directories, the commands.
With torch and transformers: a random tiny GPT2LMHeadModel loaded by npfm
(logits and every parameter gradient equal), and an npfm GPT loaded by
transformers (logits equal, one PyTorch optimizer step).
"""

import json
import os
import re

import numpy as np
import pytest

from npfm.checkpoint import save_checkpoint
from npfm.cli import main
from npfm.interop.hf_gpt2 import export_gpt2, hf_names, load_gpt2, state_to_hf
from npfm.models.gpt import GPT, GPTConfig
from npfm.safetensors import load_safetensors, save_safetensors
from npfm.tokenizers import BPETokenizer, ByteTokenizer
from npfm.tokenizers.bpe import GPT2_PATTERN

EOT = "<|endoftext|>"
TINY = GPTConfig(vocab_size=256, context=16, dim=16, n_layers=2, n_heads=2, hidden=24)
README = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "README.md")


def random_gpt(config=TINY, seed=0, dtype=np.float32):
    """A GPT whose every parameter (LayerNorms and biases too) is random."""
    model = GPT(config, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for p in model.parameters():
        p.data[...] = (p.data + 0.1 * rng.standard_normal(p.shape)).astype(dtype)
    return model


def small_bpe():
    text = "def f(x):\n    return x + 1\n" * 20 + "the quick brown fox jumps over the lazy dog " * 20
    return BPETokenizer.train(text, vocab_size=290, special_tokens=[EOT], pattern=GPT2_PATTERN)


def ids_for(config, shape=(2, 16), seed=1):
    return np.random.default_rng(seed).integers(0, config.vocab_size, shape)


# ----- npfm -> files -> npfm (numpy only) ---------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_export_then_load_gives_the_same_model(tmp_path, dtype):
    tok = small_bpe()
    config = GPTConfig(**{**TINY.to_dict(), "vocab_size": tok.vocab_size})
    model = random_gpt(config, dtype=dtype)
    assert export_gpt2(model, tok, tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["config.json", "merges.txt", "model.safetensors",
                                            "tokenizer_config.json", "vocab.json"]
    loaded, loaded_tok = load_gpt2(tmp_path, dtype=dtype)
    assert loaded.config == config
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)
    ids = ids_for(config)
    np.testing.assert_array_equal(loaded.forward(ids), model.eval().forward(ids))
    text = "def g(y):\n    return y * 2  # the lazy fox 🙂"
    np.testing.assert_array_equal(loaded_tok.encode(text), tok.encode(text))
    assert load_safetensors(tmp_path / "model.safetensors")["transformer.wte.weight"].dtype == dtype


def test_load_gpt2_reads_an_exported_directory(tmp_path):
    model = random_gpt()
    export_gpt2(model, ByteTokenizer(), tmp_path)
    loaded, tok = load_gpt2(tmp_path)
    np.testing.assert_array_equal(tok.encode("héllo"), ByteTokenizer().encode("héllo"))
    ids = ids_for(TINY)
    np.testing.assert_array_equal(loaded.forward(ids), model.eval().forward(ids))


def test_the_name_table_covers_every_parameter_once():
    names = [ours for _, ours in hf_names(TINY.n_layers)]
    assert sorted(names) == sorted(GPT(TINY).state_dict())


def test_export_refuses_what_gpt2_cannot_express(tmp_path):
    sinusoidal = GPT(GPTConfig(**{**TINY.to_dict(), "positions": "sinusoidal"}))
    with pytest.raises(ValueError, match="positions = 'sinusoidal'"):
        export_gpt2(sinusoidal, ByteTokenizer(), tmp_path)
    with pytest.raises(ValueError, match="tokenizer has 290 tokens but the model 256"):
        export_gpt2(GPT(TINY), small_bpe(), tmp_path)


# ----- bad directories ---------------------------------------------------------------------

@pytest.fixture
def exported(tmp_path):
    directory = tmp_path / "gpt2"
    export_gpt2(random_gpt(), ByteTokenizer(), directory)
    return directory


def edit_config(directory, **changes):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "vocab.json", "merges.txt"])
def test_a_missing_file_is_named(exported, name):
    os.remove(exported / name)
    with pytest.raises(FileNotFoundError, match=re.escape(name)):
        load_gpt2(exported)


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "bert"}, r"config\.json: model_type is 'bert'"),
    ({"activation_function": "relu"}, r"config\.json: activation_function is 'relu'"),
    ({"tie_word_embeddings": False}, r"config\.json: tie_word_embeddings"),
    ({"layer_norm_epsilon": 1e-6}, r"config\.json: layer_norm_epsilon"),
    ({"scale_attn_by_inverse_layer_idx": True}, r"config\.json: scale_attn_by_inverse_layer_idx"),
    ({"n_embd": 32}, r"model\.safetensors: 'wte\.weight' has shape \(256, 16\), "
                     r"but config\.json implies \(256, 32\)"),
    ({"n_layer": 3}, r"model\.safetensors lacks the weight 'h\.2\."),
    ({"n_layer": 1}, r"model\.safetensors has weights npfm's GPT has no place for"),
    ({"vocab_size": 300}, r"vocab\.json holds 256 tokens, but config\.json says vocab_size = 300"),
])
def test_a_config_that_disagrees_is_named(exported, changes, message):
    edit_config(exported, **changes)
    with pytest.raises(ValueError, match=message):
        load_gpt2(exported)


def test_weights_whose_shape_disagrees_with_config_are_named(exported):
    path = exported / "model.safetensors"
    tensors = load_safetensors(path)
    tensors["transformer.h.1.mlp.c_fc.weight"] = tensors["transformer.h.1.mlp.c_fc.weight"][:, :20]
    save_safetensors(path, tensors)
    with pytest.raises(ValueError, match=r"model\.safetensors: 'h\.1\.mlp\.c_fc\.weight' has shape "
                                         r"\(16, 20\), but config\.json implies \(16, 24\)"):
        load_gpt2(exported)


def test_an_untied_head_is_refused(exported):
    path = exported / "model.safetensors"
    tensors = load_safetensors(path)
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"] + 1
    save_safetensors(path, tensors)
    with pytest.raises(ValueError, match="lm_head.weight differs from wte.weight"):
        load_gpt2(exported)


# ----- the commands --------------------------------------------------------------------------

def gpt_checkpoint(path, model, tokenizer):
    save_checkpoint(path, kind="gpt", config=model.config.to_dict(),
                    model_state=model.state_dict(), extra={"tokenizer": tokenizer.to_dict()})
    return str(path)


def test_export_and_generate_commands(tmp_path, capsys):
    tok = small_bpe()
    model = random_gpt(GPTConfig(**{**TINY.to_dict(), "vocab_size": tok.vocab_size}))
    ckpt = gpt_checkpoint(tmp_path / "gpt.npz", model, tok)
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", ckpt, "--format", "hf", "--out", str(out)]) == 0
    assert "GPT2LMHeadModel" in capsys.readouterr().out
    loaded, _ = load_gpt2(out)
    ids = ids_for(model.config)
    np.testing.assert_array_equal(loaded.forward(ids), model.eval().forward(ids))
    args = ["generate", "--checkpoint", str(out), "--prompt", "def ", "--max-new-tokens", "5",
            "--temperature", "0", "--seed", "0"]
    assert main(args) == 0
    from_dir = capsys.readouterr().out
    assert main(args[:2] + [ckpt] + args[3:]) == 0
    assert capsys.readouterr().out == from_dir                  # the same model, the same text
    assert from_dir.startswith("def ")


def test_commands_refuse_bad_input_in_one_line(tmp_path, exported, capsys):
    os.remove(exported / "merges.txt")
    assert main(["generate", "--checkpoint", str(exported), "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "merges.txt" in err
    sinusoidal = GPT(GPTConfig(**{**TINY.to_dict(), "positions": "sinusoidal"}))
    ckpt = gpt_checkpoint(tmp_path / "sin.npz", sinusoidal, ByteTokenizer())
    assert main(["export", "--checkpoint", ckpt, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "positions = 'sinusoidal'" in err
    save_checkpoint(tmp_path / "clip.npz", kind="clip", config={}, model_state={"w": np.zeros(1)})
    assert main(["export", "--checkpoint", str(tmp_path / "clip.npz"), "--out",
                 str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'clip'" in err
    assert main(["export", "--checkpoint", str(tmp_path / "none.npz"), "--out", "z"]) == 2
    assert "none.npz" in capsys.readouterr().err


# ----- against transformers ------------------------------------------------------------------

def hf_tiny(tmp_path, seed=0):
    """A random tiny GPT2LMHeadModel saved with save_pretrained, with a tokenizer beside it."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tok = small_bpe()
    config = transformers.GPT2Config(vocab_size=tok.vocab_size, n_positions=16, n_embd=16,
                                     n_layer=2, n_head=2, n_inner=24, bos_token_id=None,
                                     eos_token_id=None)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():                         # LayerNorms and biases random too
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    tok.save_gpt2_files(tmp_path)
    return model, tok


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_transformers_gpt2_loads_in_npfm_with_equal_logits_and_gradients(tmp_path, dtype, tol):
    torch = pytest.importorskip("torch")
    hf, _ = hf_tiny(tmp_path)
    if dtype == np.float64:
        hf = hf.double()
    ours, _ = load_gpt2(tmp_path, dtype=dtype)
    ids = ids_for(ours.config)
    theirs = hf(torch.tensor(ids)).logits                        # (B, T, V)
    logits = ours.forward(ids)
    assert logits.dtype == dtype
    np.testing.assert_allclose(logits, theirs.detach().numpy(), rtol=tol, atol=tol)
    if dtype == np.float32:
        return
    # the same loss, sum(logits * R): torch's autograd against our backward
    R = np.random.default_rng(2).standard_normal(logits.shape)
    (theirs * torch.tensor(R)).sum().backward()
    ours.zero_grad()                                             # eval mode: no dropout, as hf
    ours.forward(ids)
    ours.backward(R)
    grads = state_to_hf({n: p.grad for n, p in ours.named_parameters()}, ours.config.n_layers)
    torch_grads = dict(hf.named_parameters())
    assert set(grads) == set(torch_grads)
    for name, g in grads.items():
        np.testing.assert_allclose(g, torch_grads[name].grad.numpy(), rtol=1e-9, atol=1e-10,
                                   err_msg=name)


def test_npfm_gpt_loads_in_transformers_and_trains_a_step(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tok = small_bpe()
    model = random_gpt(GPTConfig(**{**TINY.to_dict(), "vocab_size": tok.vocab_size}))
    export_gpt2(model, tok, tmp_path)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids = ids_for(model.config)
    with torch.no_grad():
        theirs = hf(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(theirs, model.eval().forward(ids), rtol=1e-5, atol=1e-5)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = "def f(x):\n    return the fox"
    assert hf_tok(text)["input_ids"] == tok.encode(text).tolist()
    hf.train()
    optimizer = torch.optim.AdamW(hf.parameters(), lr=1e-3)
    batch = torch.tensor(ids)
    before = hf(batch, labels=batch).loss
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = hf(batch, labels=batch).loss
    assert torch.isfinite(after) and after < before
    wte = hf.transformer.wte.weight.detach().numpy()
    assert not np.allclose(wte, model.tok_emb.W.data)           # the step moved the weights


def test_the_outgrowing_numpy_snippet_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    text = open(README, encoding="utf-8").read()
    section = text[text.index("## Outgrowing NumPy"):]                 # the README's own snippet
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    model = random_gpt()
    ckpt = gpt_checkpoint(tmp_path / "checkpoint.npz", model, ByteTokenizer())
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--checkpoint", ckpt, "--format", "hf", "--out", "gpt2-npfm"]) == 0
    namespace = {}
    exec(compile(snippet, README, "exec"), namespace)
    assert os.path.isfile(tmp_path / "gpt2-npfm-torch" / "model.safetensors")
    assert namespace["loss"].item() > 0


def test_a_real_gpt2_directory_loads_and_generates(capsys):
    """GPT-2 124M, where a user has it: NPFM_GPT2_DIR names its directory."""
    directory = os.environ.get("NPFM_GPT2_DIR")
    if not directory:
        pytest.skip("set NPFM_GPT2_DIR to a Hugging Face GPT-2 directory to run this")
    model, tok = load_gpt2(directory)
    assert tok.vocab_size == model.config.vocab_size == 50257
    text = "Hello world, it's 2024!  \n\n  Ünïcödé 🙂"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    assert ids.tolist() == transformers.GPT2Tokenizer.from_pretrained(directory).encode(text)
    hf = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    with torch.no_grad():
        theirs = hf(torch.tensor(ids[None].astype(np.int64))).logits.numpy()
    np.testing.assert_allclose(model.forward(ids[None]), theirs, rtol=1e-4, atol=1e-4)
    assert main(["generate", "--checkpoint", directory, "--prompt", "Hello", "--max-new-tokens",
                 "5", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("Hello")
