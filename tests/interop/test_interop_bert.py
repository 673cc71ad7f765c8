"""npfm's BERT in and out of Hugging Face's BertForMaskedLM / BertForPreTraining layout.

numpy only: npfm -> files -> npfm, the names still importable from
npfm.models.bert, bad directories, ``npfm export``. With torch and
transformers: a random tiny BertForMaskedLM loaded by npfm (MLM logits and
gradients equal), and npfm's BERT loaded by transformers (logits equal, one
PyTorch optimizer step).
"""

import json
import os
import re
import warnings

import numpy as np
import pytest

from npfm.checkpoint import save_checkpoint
from npfm.cli import main
from npfm.interop import hf_bert
from npfm.interop.hf_bert import export_bert, from_pretrained_mlm, state_to_hf
from npfm.models.bert import BertConfig, BertForPreTraining
from npfm.safetensors import load_safetensors, save_safetensors
from npfm.tokenizers.wordpiece import WordPieceTokenizer

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "is", "."]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
         + [c for c in "abcdefghijklmnopqrstuvwxyz"] + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"])
TINY = BertConfig(vocab_size=len(VOCAB), max_len=16, dim=16, n_layers=2, n_heads=2, hidden=24,
                  dropout=0.0)


def random_bert(config=TINY, seed=0, dtype=np.float32):
    model = BertForPreTraining(config, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for p in model.parameters():                 # LayerNorms and biases random too
        p.data[...] = (p.data + 0.1 * rng.standard_normal(p.shape)).astype(dtype)
    return model


def inputs(config=TINY, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config.vocab_size, (2, 12))
    segments = rng.integers(0, 2, (2, 12))
    mask = np.ones((2, 12), dtype=np.int64)
    mask[1, 7:] = 0                                                     # padding
    return ids, segments, mask


def mlm_logits(model, ids, segments, mask):
    return model.mlm(model.bert(ids, segments, mask))                   # (B, T, V)


# ----- npfm -> files -> npfm ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_export_then_load_gives_the_same_model(tmp_path, dtype):
    model, tok = random_bert(dtype=dtype).eval(), WordPieceTokenizer(VOCAB)
    assert export_bert(model, tok, tmp_path) == []
    loaded, loaded_tok = from_pretrained_mlm(tmp_path, dtype=dtype)
    assert loaded.config == TINY
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)
    x = inputs()
    np.testing.assert_array_equal(mlm_logits(loaded, *x), mlm_logits(model, *x))
    assert loaded_tok.vocab == VOCAB
    encoder, _ = hf_bert.from_pretrained(tmp_path)                     # the encoder alone
    np.testing.assert_allclose(encoder(*x), model.bert(*x), rtol=1e-6, atol=1e-6)


def test_state_to_hf_inverts_hf_to_npfm_state():
    model = random_bert()
    hf = state_to_hf(model.state_dict(), TINY)
    back, unused = hf_bert.hf_to_npfm_state(hf, TINY)
    assert unused == []
    heads = hf_bert.heads_from_hf(hf, TINY, "x")
    for name, value in model.state_dict().items():
        mine = back.get(name[len("bert."):]) if name.startswith("bert.") else heads[name]
        np.testing.assert_array_equal(mine, value, err_msg=name)


# ----- bad directories ---------------------------------------------------------------------

@pytest.fixture
def exported(tmp_path):
    directory = tmp_path / "bert"
    export_bert(random_bert(), WordPieceTokenizer(VOCAB), directory)
    return directory


@pytest.mark.parametrize("name", ["config.json", "vocab.txt", "model.safetensors"])
def test_a_missing_file_is_named(exported, name):
    os.remove(exported / name)
    with pytest.raises(FileNotFoundError, match=re.escape(name)):
        from_pretrained_mlm(exported)


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "gpt2"}, r"config\.json: model_type 'gpt2' is not supported"),
    ({"hidden_act": "relu"}, r"config\.json: hidden_act 'relu'"),
    ({"hidden_size": 32}, r"model\.safetensors: weight 'embeddings\.[\w.]+' has shape "
                          r"\((66, )?16,?\), but config\.json implies \((66, )?32,?\)"),
    ({"vocab_size": 99}, r"vocab\.txt has 66 tokens but config\.json says vocab_size = 99"),
])
def test_a_config_that_disagrees_is_named(exported, changes, message):
    path = exported / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    with pytest.raises(ValueError, match=message):
        from_pretrained_mlm(exported)


def test_a_file_without_the_mlm_head_is_named(exported):
    path = exported / "model.safetensors"
    tensors = {k: v for k, v in load_safetensors(path).items() if not k.startswith("cls.")}
    save_safetensors(path, tensors)
    with pytest.raises(ValueError, match=r"model\.safetensors lacks the MLM head's "
                                         r"'cls\.predictions\.transform\.dense\.weight'"):
        from_pretrained_mlm(exported)


def test_mlm_head_shapes_are_checked(exported):
    path = exported / "model.safetensors"
    tensors = load_safetensors(path)
    tensors["cls.predictions.bias"] = tensors["cls.predictions.bias"][:-1]
    save_safetensors(path, tensors)
    with pytest.raises(ValueError, match=r"'cls\.predictions\.bias' has shape \(65,\)"):
        from_pretrained_mlm(exported)


# ----- the command ----------------------------------------------------------------------------

def test_export_command_writes_a_bert_checkpoint(tmp_path, capsys):
    model, tok = random_bert(), WordPieceTokenizer(VOCAB)
    ckpt = tmp_path / "bert.npz"
    save_checkpoint(ckpt, kind="bert", config=TINY.to_dict(), model_state=model.state_dict(),
                    extra={"tokenizer": tok.to_dict()})
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "hf", "--out", str(out)]) == 0
    assert "BertForMaskedLM" in capsys.readouterr().out
    loaded, _ = from_pretrained_mlm(out)
    x = inputs()
    np.testing.assert_array_equal(mlm_logits(loaded, *x), mlm_logits(model.eval(), *x))
    save_checkpoint(tmp_path / "ft.npz", kind="bert-finetune", config=TINY.to_dict(),
                    model_state=model.state_dict())
    assert main(["export", "--checkpoint", str(tmp_path / "ft.npz"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'bert-finetune'" in err


# ----- against transformers ------------------------------------------------------------------

def hf_tiny(tmp_path, seed=0):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=24,
                                     max_position_embeddings=16)
    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return model


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_transformers_bert_mlm_loads_in_npfm_with_equal_logits_and_gradients(tmp_path, dtype, tol):
    torch = pytest.importorskip("torch")
    hf = hf_tiny(tmp_path)
    if dtype == np.float64:
        hf = hf.double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # a BertForMaskedLM has no pooler, no NSP head
        ours, _ = from_pretrained_mlm(tmp_path, dtype=dtype)
    ids, segments, mask = inputs()
    theirs = hf(torch.tensor(ids), attention_mask=torch.tensor(mask),
                token_type_ids=torch.tensor(segments)).logits
    logits = mlm_logits(ours, ids, segments, mask)
    assert logits.dtype == dtype
    np.testing.assert_allclose(logits, theirs.detach().numpy(), rtol=tol, atol=tol)
    if dtype == np.float32:
        return
    R = np.random.default_rng(2).standard_normal(logits.shape)
    (theirs * torch.tensor(R)).sum().backward()
    ours.zero_grad()
    mlm_logits(ours, ids, segments, mask)
    ours.bert.backward(ours.mlm.backward(R))
    grads = state_to_hf({n: p.grad for n, p in ours.named_parameters()}, ours.config)
    torch_grads = {n: p.grad for n, p in hf.named_parameters()}
    compared = 0
    for name, g in torch_grads.items():
        key = "cls.predictions.bias" if name == "cls.predictions.decoder.bias" else name
        np.testing.assert_allclose(grads[key], g.numpy(), rtol=1e-9, atol=1e-10, err_msg=name)
        compared += 1
    assert compared == len(torch_grads) > 30


def test_npfm_bert_loads_in_transformers_and_trains_a_step(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model, tok = random_bert().eval(), WordPieceTokenizer(VOCAB)
    export_bert(model, tok, tmp_path)
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    ids, segments, mask = inputs()
    batch = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                 token_type_ids=torch.tensor(segments))
    with torch.no_grad():
        theirs = hf(**batch).logits.numpy()
    np.testing.assert_allclose(theirs, mlm_logits(model, ids, segments, mask), rtol=1e-5, atol=1e-5)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = "The cat sat on a mat. The dogs ran!"
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == tok.encode(text).tolist()
    hf.train()
    optimizer = torch.optim.AdamW(hf.parameters(), lr=1e-3)
    labels = torch.tensor(np.where(mask == 1, ids, -100))
    before = hf(**batch, labels=labels).loss
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = hf(**batch, labels=labels).loss
    assert torch.isfinite(after) and after < before
