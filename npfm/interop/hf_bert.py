"""BERT weights in and out of Hugging Face's BERT layouts.

In: ``from_pretrained(directory)`` reads a ``BertModel`` / sentence-transformers
directory (config.json, vocab.txt, model.safetensors) into npfm's encoder,
and ``from_pretrained_mlm(directory)`` a ``BertForMaskedLM`` (or
``BertForPreTraining``) directory into npfm's ``BertForPreTraining``, the
MLM head included. Out: ``export_bert(model, tokenizer, out_dir)`` writes
npfm's pre-trained BERT in the ``BertForPreTraining`` layout, which
``BertForMaskedLM.from_pretrained`` reads (it leaves the pooler and the NSP
head aside, as it does for Google's checkpoints).

Hugging Face's ``nn.Linear`` weights are (out, in); npfm's Linear weights
are (in, out): the table marks each that must be transposed ("T"). Their
query, key and value projections are three matrices; ours are one fused
(C, 3C) matrix [q | k | v] ("q", "k", "v": transpose and place one third).
Everything is read and written by ``npfm.safetensors``; no torch is needed.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from ..models.bert import BertConfig, BertForPreTraining, BertModel
from .hf_gpt2 import read_json as _read_json

# Hugging Face BERT parameter name -> (our name, how to place it). Our Linear
# weights are (in, out), theirs (out, in): "T" transposes. Their query, key
# and value projections are separate; ours are one fused (C, 3C) matrix
# [q | k | v], so "q", "k", "v" transpose and write one third of the columns
# (or of the bias). "{i}" is the layer index.
HF_NAMES = {
    "embeddings.word_embeddings.weight": ("tok_emb.W", ""),
    "embeddings.token_type_embeddings.weight": ("seg_emb.W", ""),
    "embeddings.position_embeddings.weight": ("pos.W", ""),
    "embeddings.LayerNorm.weight": ("emb_ln.gamma", ""),
    "embeddings.LayerNorm.bias": ("emb_ln.beta", ""),
    "encoder.layer.{i}.attention.self.query.weight": ("blocks.{i}.attn.W_qkv", "q"),
    "encoder.layer.{i}.attention.self.key.weight": ("blocks.{i}.attn.W_qkv", "k"),
    "encoder.layer.{i}.attention.self.value.weight": ("blocks.{i}.attn.W_qkv", "v"),
    "encoder.layer.{i}.attention.self.query.bias": ("blocks.{i}.attn.b_qkv", "q"),
    "encoder.layer.{i}.attention.self.key.bias": ("blocks.{i}.attn.b_qkv", "k"),
    "encoder.layer.{i}.attention.self.value.bias": ("blocks.{i}.attn.b_qkv", "v"),
    "encoder.layer.{i}.attention.output.dense.weight": ("blocks.{i}.attn.W_out", "T"),
    "encoder.layer.{i}.attention.output.dense.bias": ("blocks.{i}.attn.b_out", ""),
    "encoder.layer.{i}.attention.output.LayerNorm.weight": ("blocks.{i}.ln1.gamma", ""),
    "encoder.layer.{i}.attention.output.LayerNorm.bias": ("blocks.{i}.ln1.beta", ""),
    "encoder.layer.{i}.intermediate.dense.weight": ("blocks.{i}.ffn.fc1.W", "T"),
    "encoder.layer.{i}.intermediate.dense.bias": ("blocks.{i}.ffn.fc1.b", ""),
    "encoder.layer.{i}.output.dense.weight": ("blocks.{i}.ffn.fc2.W", "T"),
    "encoder.layer.{i}.output.dense.bias": ("blocks.{i}.ffn.fc2.b", ""),
    "encoder.layer.{i}.output.LayerNorm.weight": ("blocks.{i}.ln2.gamma", ""),
    "encoder.layer.{i}.output.LayerNorm.bias": ("blocks.{i}.ln2.beta", ""),
    "pooler.dense.weight": ("pooler.dense.W", "T"),
    "pooler.dense.bias": ("pooler.dense.b", ""),
}

# Stored by Hugging Face but not parameters of the encoder: a buffer of
# position indices, and the pre-training heads (cls.*), which we do not load.
HF_IGNORED_PREFIXES = ("embeddings.position_ids", "cls.")
HF_OPTIONAL = ("pooler.",)      # sentence-transformers models may drop the pooler

REQUIRED_FILES = ("config.json", "vocab.txt", "model.safetensors")


def hf_to_npfm_state(tensors, config: BertConfig, who="checkpoint"):
    """Our BertModel state dict from Hugging Face's {name: array} (float32, or
    float64 for F64 weights).

    Every shape is checked against ``config`` and a mismatch names the key.
    Returns (state, unused_keys).
    """
    if tensors and all(k.startswith("bert.") for k in tensors
                       if not k.startswith(HF_IGNORED_PREFIXES)):
        tensors = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in tensors.items()}
    expected = _expected_shapes(config)
    C = config.dim
    state, unused = {}, []
    for key, value in tensors.items():
        rule = _match(key, config.n_layers)
        if rule is None:
            if not key.startswith(HF_IGNORED_PREFIXES):
                unused.append(key)
            continue
        ours, how = rule
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f"{who}: weight {key!r} has dtype {value.dtype}; expected floats "
                            "(F32, F16, BF16 or F64)")
        value = value.astype(np.float64 if value.dtype == np.float64 else np.float32)
        target_shape = expected[ours]
        if how in ("q", "k", "v"):
            part = "qkv".index(how)
            if value.ndim == 2:
                want = (C, C)
                if value.shape != want:
                    raise ValueError(f"{who}: weight {key!r} has shape {value.shape}, but "
                                     f"config.json (hidden_size {C}) implies {want}")
                dest = state.setdefault(ours, np.zeros(target_shape, value.dtype))
                dest[:, part * C:(part + 1) * C] = value.T
            else:
                if value.shape != (C,):
                    raise ValueError(f"{who}: weight {key!r} has shape {value.shape}, but "
                                     f"config.json (hidden_size {C}) implies {(C,)}")
                dest = state.setdefault(ours, np.zeros(target_shape, value.dtype))
                dest[part * C:(part + 1) * C] = value
            continue
        if how == "T":
            value = value.T
        if value.shape != target_shape:
            shown = value.T.shape if how == "T" else value.shape
            want = target_shape[::-1] if how == "T" else target_shape
            raise ValueError(f"{who}: weight {key!r} has shape {shown}, but config.json "
                             f"implies {want}")
        state[ours] = np.ascontiguousarray(value)
    missing = []
    for hf_key in _all_hf_keys(config.n_layers):
        if hf_key not in tensors and not hf_key.startswith(HF_OPTIONAL):
            missing.append(hf_key)
    if missing:
        raise ValueError(f"{who}: missing weights {missing[:4]}{' ...' if len(missing) > 4 else ''}"
                         f" ({len(missing)} in all) for a {config.n_layers}-layer BERT")
    return state, unused


def _expected_shapes(config):
    c = config
    shapes = {"tok_emb.W": (c.vocab_size, c.dim), "seg_emb.W": (c.type_vocab_size, c.dim),
              "pos.W": (c.max_len, c.dim), "emb_ln.gamma": (c.dim,), "emb_ln.beta": (c.dim,),
              "pooler.dense.W": (c.dim, c.dim), "pooler.dense.b": (c.dim,)}
    for i in range(c.n_layers):
        p = f"blocks.{i}."
        shapes.update({p + "attn.W_qkv": (c.dim, 3 * c.dim), p + "attn.b_qkv": (3 * c.dim,),
                       p + "attn.W_out": (c.dim, c.dim), p + "attn.b_out": (c.dim,),
                       p + "ln1.gamma": (c.dim,), p + "ln1.beta": (c.dim,),
                       p + "ffn.fc1.W": (c.dim, c.hidden), p + "ffn.fc1.b": (c.hidden,),
                       p + "ffn.fc2.W": (c.hidden, c.dim), p + "ffn.fc2.b": (c.dim,),
                       p + "ln2.gamma": (c.dim,), p + "ln2.beta": (c.dim,)})
    return shapes


def _all_hf_keys(n_layers):
    for pattern in HF_NAMES:
        if "{i}" in pattern:
            for i in range(n_layers):
                yield pattern.format(i=i)
        else:
            yield pattern


def _match(key, n_layers):
    """(our name, how) for a Hugging Face key, or None when the table has no entry."""
    if key in HF_NAMES:
        return HF_NAMES[key]
    parts = key.split(".")
    if len(parts) > 3 and parts[:2] == ["encoder", "layer"] and parts[2].isdigit():
        i = int(parts[2])
        pattern = ".".join(["encoder", "layer", "{i}", *parts[3:]])
        if pattern in HF_NAMES and i < n_layers:
            ours, how = HF_NAMES[pattern]
            return ours.format(i=i), how
        if pattern in HF_NAMES:
            raise ValueError(f"checkpoint: weight {key!r} belongs to layer {i}, but config.json "
                             f"says num_hidden_layers = {n_layers}")
    return None


def load_hf_tokenizer(directory):
    """The WordPiece tokenizer of a Hugging Face BERT directory (vocab.txt and
    the lower-casing choices of tokenizer_config.json, when present)."""
    from ..tokenizers.wordpiece import WordPieceTokenizer
    settings = {}
    tok_config = os.path.join(directory, "tokenizer_config.json")
    if os.path.exists(tok_config):
        d = _read_json(tok_config)
        settings["lowercase"] = bool(d.get("do_lower_case", True))
        if d.get("strip_accents") is not None:
            settings["strip_accents"] = bool(d["strip_accents"])
    return WordPieceTokenizer.from_vocab_file(os.path.join(directory, "vocab.txt"), **settings)


def from_pretrained(directory, dtype=np.float32):
    """(BertModel, WordPieceTokenizer) from a Hugging Face BERT-layout directory.

    directory: holds config.json, vocab.txt and model.safetensors (read by
    ``npfm.safetensors``, no torch needed). Weights are mapped with the one
    table ``HF_NAMES``; the pre-training heads (cls.*) are not loaded. The
    model is returned in eval mode. The tokenizer's truncation length is
    ``model.config.max_len``, or ``max_seq_length`` of a sentence-transformers
    ``sentence_bert_config.json`` (kept as ``model.max_seq_length``).
    """
    from ..safetensors import load_safetensors
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"from_pretrained: {directory!r} is not a directory")
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise FileNotFoundError(f"from_pretrained: {directory!r} lacks {', '.join(missing)} "
                                f"(a BERT checkpoint needs {', '.join(REQUIRED_FILES)})")
    config = config_from_hf(_read_json(os.path.join(directory, "config.json")))
    tokenizer = load_hf_tokenizer(directory)
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"from_pretrained: vocab.txt has {tokenizer.vocab_size} tokens but "
                         f"config.json says vocab_size = {config.vocab_size}")
    weights_path = os.path.join(directory, "model.safetensors")
    state, unused = hf_to_npfm_state(load_safetensors(weights_path), config, who=weights_path)
    if unused:
        warnings.warn(f"from_pretrained: ignored {len(unused)} weights not in the table, "
                      f"e.g. {unused[0]!r}", stacklevel=2)
    model = BertModel(config, dtype=dtype)
    missing_ok = [k for k in model.state_dict() if k not in state]     # the optional pooler
    if missing_ok:
        warnings.warn(f"from_pretrained: the checkpoint has no {missing_ok}; they keep their "
                      "random initialisation (sentence embeddings do not use them)", stacklevel=2)
    model.load_state_dict(state, strict=False)
    model.max_seq_length = config.max_len
    st_config = os.path.join(directory, "sentence_bert_config.json")
    if os.path.exists(st_config):
        model.max_seq_length = min(int(_read_json(st_config).get("max_seq_length", config.max_len)),
                                   config.max_len)
    return model.eval(), tokenizer


# ----- the pre-training heads: in and out ---------------------------------------------------

# Hugging Face name -> (npfm BertForPreTraining name, how), for the heads.
# The MLM decoder (cls.predictions.decoder.weight) is the word embedding
# itself in both libraries, so it has no entry of its own.
HEAD_NAMES = {
    "cls.predictions.transform.dense.weight": ("mlm.dense.W", "T"),
    "cls.predictions.transform.dense.bias": ("mlm.dense.b", ""),
    "cls.predictions.transform.LayerNorm.weight": ("mlm.ln.gamma", ""),
    "cls.predictions.transform.LayerNorm.bias": ("mlm.ln.beta", ""),
    "cls.predictions.bias": ("mlm.b_vocab", ""),
    "cls.seq_relationship.weight": ("nsp.W", "T"),
    "cls.seq_relationship.bias": ("nsp.b", ""),
}
NSP_KEYS = ("cls.seq_relationship.weight", "cls.seq_relationship.bias")


def _check_directory(directory, required):
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory!r} is not a directory")
    missing = [f for f in required if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise FileNotFoundError(f"{directory!r} lacks {', '.join(missing)} (a BERT directory "
                                f"needs {', '.join(required)})")
    return directory


def heads_from_hf(tensors, config: BertConfig, path):
    """{npfm name: array} of the MLM head (and the NSP head when stored)."""
    tensors = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in tensors.items()}
    if "cls.predictions.decoder.weight" in tensors and not np.array_equal(
            tensors["cls.predictions.decoder.weight"], tensors["embeddings.word_embeddings.weight"]):
        raise ValueError(f"{path}: cls.predictions.decoder.weight differs from the word "
                         "embeddings; npfm's MLM head is tied to them (tie_word_embeddings)")
    c = config
    shapes = {"mlm.dense.W": (c.dim, c.dim), "mlm.dense.b": (c.dim,), "mlm.ln.gamma": (c.dim,),
              "mlm.ln.beta": (c.dim,), "mlm.b_vocab": (c.vocab_size,), "nsp.W": (c.dim, 2),
              "nsp.b": (2,)}
    state = {}
    for key, (ours, how) in HEAD_NAMES.items():
        if key not in tensors:
            if key in NSP_KEYS:
                continue
            raise ValueError(f"{path} lacks the MLM head's {key!r} (is it a BertForMaskedLM?)")
        value = np.asarray(tensors[key])
        value = value.astype(np.float64 if value.dtype == np.float64 else np.float32)
        value = value.T if how == "T" else value
        if value.shape != shapes[ours]:
            raise ValueError(f"{path}: {key!r} has shape {np.asarray(tensors[key]).shape}, but "
                             f"config.json implies {shapes[ours][::-1] if how == 'T' else shapes[ours]}")
        state[ours] = np.ascontiguousarray(value)
    return state


def from_pretrained_mlm(directory, dtype=np.float32):
    """(BertForPreTraining, WordPieceTokenizer) from a ``BertForMaskedLM`` or
    ``BertForPreTraining`` directory, in eval mode.

    The encoder and the MLM head are loaded; the pooler and the NSP head too
    when the file has them (a BertForMaskedLM has neither: they then keep
    their random initialisation, with a warning).
    """
    from ..safetensors import load_safetensors
    directory = _check_directory(directory, REQUIRED_FILES)
    config_path = os.path.join(directory, "config.json")
    config = config_from_hf(_read_json(config_path))
    tokenizer = load_hf_tokenizer(directory)
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"{os.path.join(directory, 'vocab.txt')} has {tokenizer.vocab_size} "
                         f"tokens but config.json says vocab_size = {config.vocab_size}")
    path = os.path.join(directory, "model.safetensors")
    tensors = load_safetensors(path)
    encoder, unused = hf_to_npfm_state(tensors, config, who=path)
    state = {"bert." + k: v for k, v in encoder.items()}
    state.update(heads_from_hf(tensors, config, path))
    model = BertForPreTraining(config, dtype=dtype)
    left = [k for k in model.state_dict() if k not in state]
    if left:
        warnings.warn(f"from_pretrained_mlm: {path} has no {left}; they keep their random "
                      "initialisation", stacklevel=2)
    model.load_state_dict({k: v.astype(dtype) for k, v in state.items()}, strict=False)
    return model.eval(), tokenizer


def config_from_hf(d):
    """A Hugging Face ``config.json`` (model_type "bert") as a BertConfig."""
    if not isinstance(d, dict):
        raise TypeError(f"config_from_hf expects a dict, got {type(d).__name__}")
    if d.get("model_type", "bert") != "bert":
        raise ValueError(f"config.json: model_type {d.get('model_type')!r} is not supported "
                         "(only 'bert': RoBERTa and DistilBERT lay out their weights "
                         "differently)")
    act = d.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"config.json: hidden_act {act!r} is not supported (only 'gelu', "
                         "the exact erf GELU of BERT)")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"config.json: position_embedding_type "
                         f"{d['position_embedding_type']!r} is not supported (only 'absolute')")
    needed = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_position_embeddings")
    missing = [k for k in needed if k not in d]
    if missing:
        raise ValueError(f"config.json lacks {missing}")
    return BertConfig(vocab_size=d["vocab_size"], max_len=d["max_position_embeddings"],
                      type_vocab_size=d.get("type_vocab_size", 2), dim=d["hidden_size"],
                      n_layers=d["num_hidden_layers"], n_heads=d["num_attention_heads"],
                      hidden=d["intermediate_size"], dropout=d.get("hidden_dropout_prob", 0.1),
                      eps=d.get("layer_norm_eps", 1e-12),
                      init_std=d.get("initializer_range", 0.02))


def config_to_hf(config: BertConfig, tokenizer, dtype=np.float32):
    """config.json of the BertForPreTraining layout for a BertConfig."""
    c = config
    return {"architectures": ["BertForPreTraining"], "model_type": "bert",
            "vocab_size": c.vocab_size, "hidden_size": c.dim, "num_hidden_layers": c.n_layers,
            "num_attention_heads": c.n_heads, "intermediate_size": c.hidden,
            "hidden_act": "gelu", "hidden_dropout_prob": c.dropout,
            # npfm drops out the embeddings and each residual branch, never the
            # attention probabilities
            "attention_probs_dropout_prob": 0.0,
            "max_position_embeddings": c.max_len, "type_vocab_size": c.type_vocab_size,
            "initializer_range": c.init_std, "layer_norm_eps": c.eps,
            "position_embedding_type": "absolute", "pad_token_id": tokenizer.pad_id,
            "tie_word_embeddings": True, "torch_dtype": np.dtype(dtype).name}


def state_to_hf(state, config: BertConfig):
    """Hugging Face's {name: array} ("bert." + encoder names, then cls.*) from a
    BertForPreTraining state dict: the inverse of ``hf_to_npfm_state`` + heads."""
    C = config.dim
    out = {}
    for pattern, (ours, how) in HF_NAMES.items():
        layers = range(config.n_layers) if "{i}" in pattern else [None]
        for i in layers:
            key = pattern if i is None else pattern.format(i=i)
            value = state["bert." + (ours if i is None else ours.format(i=i))]
            if how in ("q", "k", "v"):
                part = "qkv".index(how)
                value = value[..., part * C:(part + 1) * C]
                value = value.T if value.ndim == 2 else value
            elif how == "T":
                value = value.T
            out["bert." + key] = np.ascontiguousarray(value)
    for key, (ours, how) in HEAD_NAMES.items():
        if ours in state:
            out[key] = np.ascontiguousarray(state[ours].T if how == "T" else state[ours])
    return out


def export_bert(model: BertForPreTraining, tokenizer, out_dir):
    """Write npfm's pre-trained BERT as a Hugging Face directory.

    Files: config.json, model.safetensors (BertForPreTraining's names, the
    model's dtype), vocab.txt, tokenizer_config.json. ``BertForMaskedLM``,
    ``BertForPreTraining`` and ``BertModel`` all load it. Returns notes (none).
    """
    from ..safetensors import save_safetensors
    from ..tokenizers.wordpiece import WordPieceTokenizer
    if not isinstance(model, BertForPreTraining):
        raise ValueError(f"export: a {type(model).__name__} has no counterpart here; export the "
                         "pre-trained BertForPreTraining (MLM + NSP)")
    if not isinstance(tokenizer, WordPieceTokenizer):
        raise ValueError(f"export: BERT's tokenizer must be WordPiece (vocab.txt), got a "
                         f"{type(tokenizer).__name__}")
    config = model.config
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"export: the tokenizer has {tokenizer.vocab_size} tokens but the model "
                         f"{config.vocab_size}")
    dtype = model.bert.tok_emb.W.data.dtype
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config_to_hf(config, tokenizer, dtype), f, indent=2)
    save_safetensors(os.path.join(out_dir, "model.safetensors"),
                     state_to_hf(model.state_dict(), config), metadata={"format": "pt"})
    tokenizer.save_vocab(os.path.join(out_dir, "vocab.txt"))
    tok_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": tokenizer.lowercase,
                  "strip_accents": tokenizer.strip_accents, "tokenize_chinese_chars": True,
                  "model_max_length": config.max_len, "unk_token": tokenizer.unk_token,
                  "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_config, f, indent=2)
    return []
