"""npfm's llama GPT in and out of Hugging Face's Llama layout (npfm/interop/hf_llama.py).

numpy only: npfm -> files -> npfm, the names and refusals, the command.
With torch and transformers: random tiny LlamaForCausalLM models loaded by
npfm, and npfm models loaded by transformers, logits equal within 1e-5.
"""

import json
import os

import numpy as np
import pytest

from npfm.checkpoint import save_checkpoint
from npfm.cli import main
from npfm.interop.hf_llama import (config_from_hf, config_to_hf, export_llama, load_llama,
                                   state_to_hf)
from npfm.models.gpt import GPT, preset
from npfm.tokenizers import ByteTokenizer

CONFIGS = [dict(n_kv_heads=2, tie_head=False), dict(n_kv_heads=1, tie_head=True),
           dict(n_kv_heads=0, tie_head=False, dim=24, n_heads=3, hidden=40, rope_base=500.0)]


def random_llama(seed=0, dtype=np.float32, **overrides):
    """A llama GPT whose every parameter (the RMSNorm gains too) is random."""
    model = GPT(preset("tiny-llama", **overrides), seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for p in model.parameters():
        p.data[...] = (p.data + 0.1 * rng.standard_normal(p.shape)).astype(dtype)
    return model


@pytest.mark.parametrize("overrides", CONFIGS)
def test_export_then_load_gives_the_same_model(tmp_path, overrides):
    model = random_llama(**overrides)
    export_llama(model, ByteTokenizer(), tmp_path)
    loaded = load_llama(tmp_path)
    assert loaded.config == model.config
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)


def test_names_and_shapes():
    model = random_llama(n_kv_heads=2, tie_head=False)
    hf = state_to_hf(model.state_dict(), model.config)
    assert hf["model.layers.0.self_attn.q_proj.weight"].shape == (16, 16)
    assert hf["model.layers.0.self_attn.k_proj.weight"].shape == (8, 16)       # 2 KV heads of 4
    assert hf["model.layers.1.mlp.down_proj.weight"].shape == (16, model.config.hidden)
    assert hf["lm_head.weight"].shape == (256, 16)
    np.testing.assert_array_equal(hf["model.layers.0.self_attn.o_proj.weight"],
                                  model.blocks[0].attn.out.W.data.T)


def test_refusals():
    with pytest.raises(ValueError, match="arch 'llama'"):
        config_to_hf(preset("tiny"), np.float32)
    good = config_to_hf(preset("tiny-llama"), np.float32)
    assert config_from_hf(good) == preset("tiny-llama")
    for key, value in (("attention_bias", True), ("hidden_act", "gelu"),
                       ("rope_scaling", {"type": "linear", "factor": 2.0})):
        with pytest.raises(ValueError, match=key):
            config_from_hf({**good, key: value})
    with pytest.raises(ValueError, match="model_type"):
        config_from_hf({**good, "model_type": "gpt2"})


def test_export_command_dispatches_on_arch(tmp_path, capsys):
    model = random_llama()
    ckpt = tmp_path / "ckpt.npz"
    save_checkpoint(str(ckpt), kind="gpt", config=model.config.to_dict(),
                    model_state=model.state_dict(),
                    extra={"tokenizer": ByteTokenizer().to_dict()})
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert "LlamaForCausalLM" in capsys.readouterr().out
    assert json.load(open(out / "config.json"))["model_type"] == "llama"


# ----- against transformers -------------------------------------------------------------

def _hf_logits(hf_model, ids):
    import torch
    with torch.no_grad():
        return hf_model(torch.tensor(ids)).logits.numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transformers_llama_loads_into_npfm(tmp_path, seed):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    rng = np.random.default_rng(seed)
    H = int(rng.choice([2, 4]))
    kv = int(rng.choice([k for k in (1, 2, 4) if H % k == 0]))
    config = transformers.LlamaConfig(
        vocab_size=int(rng.integers(20, 60)), hidden_size=8 * H, intermediate_size=int(rng.integers(8, 40)),
        num_hidden_layers=int(rng.integers(1, 3)), num_attention_heads=H, num_key_value_heads=kv,
        max_position_embeddings=12, rms_norm_eps=1e-6, tie_word_embeddings=bool(seed % 2),
        rope_theta=float(rng.choice([100.0, 10000.0])))
    torch.manual_seed(seed)
    hf_model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():                       # the norms' gains away from 1
        for name, p in hf_model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    hf_model.save_pretrained(tmp_path, safe_serialization=True)
    model = load_llama(tmp_path)
    assert model.config.n_layers == config.num_hidden_layers
    ids = rng.integers(0, config.vocab_size, size=(2, 12))
    np.testing.assert_allclose(model(ids), _hf_logits(hf_model, ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("overrides", CONFIGS)
def test_npfm_llama_loads_into_transformers(tmp_path, overrides):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = random_llama(**overrides)
    export_llama(model, ByteTokenizer(), tmp_path)
    hf_model = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    ids = np.random.default_rng(3).integers(0, 256, size=(2, 16))
    np.testing.assert_allclose(_hf_logits(hf_model, ids), model(ids), atol=1e-5, rtol=1e-5)
    # and decoding with npfm's KV cache from offset 5 on matches transformers too
    caches = model.new_kv_caches(2)
    model.forward(ids[:, :5], kv_caches=caches)
    step = model.decode(ids[:, 5:6], caches)
    np.testing.assert_allclose(step, _hf_logits(hf_model, ids[:, :6])[:, -1], atol=1e-5, rtol=1e-5)
