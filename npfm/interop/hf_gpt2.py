"""GPT weights in and out of Hugging Face's GPT-2 layout.

A Hugging Face GPT-2 directory holds

    config.json         the architecture (model_type "gpt2": n_embd, n_layer, n_head, ...)
    model.safetensors   the weights, read here by npfm's own reader
    vocab.json          token (in GPT-2's byte alphabet) -> id
    merges.txt          the BPE merges, by rank

GPT-2 and npfm's GPT are the same network: learned positions, pre-LN blocks,
attention with one fused q|k|v projection, a tanh-GELU MLP of width
``n_inner``, a final LayerNorm and an LM head tied to the token embedding. So
one table maps the names, and no weight needs to be reshaped: GPT-2 writes
its projections as ``Conv1D``, whose weight is stored (in, out) and applied
as ``y = x @ W + b``, exactly as npfm's Linear. (BERT's ``nn.Linear`` weights
are (out, in) and are transposed in hf_bert.py.) Within ``c_attn`` the
columns are [q | k | v], each split into heads of D consecutive columns, as
in npfm's ``W_qkv``.

Where a config.json asks for something npfm's GPT does not have (another
activation, an untied head, attention scaled by layer index, ...), or where
an npfm GPT has something GPT-2 lacks (sinusoidal positions), the
conversion refuses with a message naming the setting.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..models.gpt import GPT, GPTConfig
from ..safetensors import load_safetensors, save_safetensors

# Hugging Face GPT-2 name -> npfm GPT name. "{i}" is the layer index. Every
# weight keeps its orientation (Conv1D is (in, out), as npfm's Linear).
GPT2_NAMES = {
    "wte.weight": "tok_emb.W",                          # (V, C); also the LM head
    "wpe.weight": "pos.W",                              # (context, C)
    "h.{i}.ln_1.weight": "blocks.{i}.ln1.gamma",
    "h.{i}.ln_1.bias": "blocks.{i}.ln1.beta",
    "h.{i}.attn.c_attn.weight": "blocks.{i}.attn.W_qkv",  # (C, 3C) = [q | k | v]
    "h.{i}.attn.c_attn.bias": "blocks.{i}.attn.b_qkv",
    "h.{i}.attn.c_proj.weight": "blocks.{i}.attn.W_out",  # (C, C)
    "h.{i}.attn.c_proj.bias": "blocks.{i}.attn.b_out",
    "h.{i}.ln_2.weight": "blocks.{i}.ln2.gamma",
    "h.{i}.ln_2.bias": "blocks.{i}.ln2.beta",
    "h.{i}.mlp.c_fc.weight": "blocks.{i}.ffn.fc1.W",      # (C, F)
    "h.{i}.mlp.c_fc.bias": "blocks.{i}.ffn.fc1.b",
    "h.{i}.mlp.c_proj.weight": "blocks.{i}.ffn.fc2.W",    # (F, C)
    "h.{i}.mlp.c_proj.bias": "blocks.{i}.ffn.fc2.b",
    "ln_f.weight": "ln_f.gamma",
    "ln_f.bias": "ln_f.beta",
}

# Stored by some GPT-2 checkpoints but no parameters: the causal mask buffers.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
REQUIRED_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # tanh GELU, npfm's "gelu"
LAYERNORM_EPS = 1e-5                                   # npfm's GPT LayerNorms


def hf_names(n_layers):
    """[(Hugging Face name, npfm name)] for every weight of an n_layers GPT."""
    pairs = []
    for hf, ours in GPT2_NAMES.items():
        layers = range(n_layers) if "{i}" in hf else [None]
        pairs.extend((hf.format(i=i), ours.format(i=i)) for i in layers)
    return pairs


# ----- config.json <-> GPTConfig ------------------------------------------------------

def config_from_hf(d, path="config.json"):
    """A GPTConfig from a GPT-2 config.json dict; refuses what GPT cannot express."""
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(d).__name__}")
    if d.get("model_type") != "gpt2":
        raise ValueError(f"{path}: model_type is {d.get('model_type')!r}; npfm's GPT loads "
                         "only the 'gpt2' layout")
    needed = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
    missing = [k for k in needed if k not in d]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    blockers = [
        ("activation_function", d.get("activation_function", "gelu_new") in GELU_TANH,
         f"is {d.get('activation_function')!r}; npfm's GPT uses the tanh GELU ('gelu_new')"),
        ("layer_norm_epsilon", d.get("layer_norm_epsilon", LAYERNORM_EPS) == LAYERNORM_EPS,
         f"is {d.get('layer_norm_epsilon')!r}; npfm's GPT uses {LAYERNORM_EPS}"),
        ("tie_word_embeddings", d.get("tie_word_embeddings", True) is True,
         "is false; npfm's GPT ties its LM head to the token embedding"),
        ("scale_attn_weights", d.get("scale_attn_weights", True) is True,
         "is false; npfm's attention always scales by 1/sqrt(D)"),
        ("scale_attn_by_inverse_layer_idx", not d.get("scale_attn_by_inverse_layer_idx", False),
         "is true; npfm's attention has no per-layer scale"),
        ("add_cross_attention", not d.get("add_cross_attention", False),
         "is true; npfm's GPT has no cross-attention"),
    ]
    for name, ok, why in blockers:
        if not ok:
            raise ValueError(f"{path}: {name} {why}")
    return GPTConfig(vocab_size=d["vocab_size"], context=d["n_positions"], dim=d["n_embd"],
                     n_layers=d["n_layer"], n_heads=d["n_head"],
                     hidden=d.get("n_inner") or 4 * d["n_embd"],
                     dropout=float(d.get("resid_pdrop", 0.0)), positions="learned")


def config_to_hf(config: GPTConfig, dtype, eot_id=None):
    """config.json for a GPTConfig. Refuses sinusoidal positions (GPT-2 learns them)."""
    if config.arch != "gpt2" or not config.tie_head or config.n_kv_heads not in (0, config.n_heads):
        raise ValueError(f"export: the GPT (arch {config.arch!r}, tie_head {config.tie_head}, "
                         f"n_kv_heads {config.n_kv_heads}) is not in GPT-2's layout (see "
                         "npfm.interop.hf_llama for arch 'llama')")
    if config.positions != "learned":
        raise ValueError(f"export: the GPT has positions = {config.positions!r}; the GPT-2 "
                         "layout has only learned positions (train with positions='learned')")
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": config.vocab_size, "n_positions": config.context,
            "n_embd": config.dim, "n_layer": config.n_layers, "n_head": config.n_heads,
            "n_inner": config.hidden, "activation_function": "gelu_new",
            # npfm drops out the embeddings and each residual branch, never the
            # attention probabilities
            "embd_pdrop": config.dropout, "resid_pdrop": config.dropout, "attn_pdrop": 0.0,
            "layer_norm_epsilon": LAYERNORM_EPS, "initializer_range": 0.02,
            "scale_attn_weights": True, "tie_word_embeddings": True, "use_cache": True,
            "bos_token_id": eot_id, "eos_token_id": eot_id,
            "torch_dtype": np.dtype(dtype).name}


# ----- weights ---------------------------------------------------------------------------

def state_from_hf(tensors, config: GPTConfig, path="model.safetensors"):
    """npfm's GPT state dict from GPT-2's {name: array}; shapes checked against config."""
    tensors = {k[len("transformer."):] if k.startswith("transformer.") else k: v
               for k, v in tensors.items()}
    if "lm_head.weight" in tensors and "wte.weight" in tensors:
        if not np.array_equal(tensors["lm_head.weight"], tensors["wte.weight"]):
            raise ValueError(f"{path}: lm_head.weight differs from wte.weight; npfm's GPT ties "
                             "its LM head to the token embedding")
    expected = expected_shapes(config)
    state = {}
    for hf, ours in hf_names(config.n_layers):
        if hf not in tensors:
            raise ValueError(f"{path} lacks the weight {hf!r} (config.json says "
                             f"n_layer = {config.n_layers})")
        value = np.asarray(tensors[hf])
        if value.shape != expected[ours]:
            raise ValueError(f"{path}: {hf!r} has shape {value.shape}, but config.json implies "
                             f"{expected[ours]}")
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"{path}: {hf!r} has dtype {value.dtype}; expected floats")
        state[ours] = value
    known = {hf for hf, _ in hf_names(config.n_layers)} | {"lm_head.weight"}
    unused = [k for k in tensors if k not in known and not k.endswith(IGNORED_SUFFIXES)]
    if unused:
        raise ValueError(f"{path} has weights npfm's GPT has no place for: {unused[:3]}"
                         f"{' ...' if len(unused) > 3 else ''} (is config.json's n_layer right?)")
    return state


def expected_shapes(config: GPTConfig):
    """{npfm name: shape} of a GPT with this config (without building one)."""
    c = config
    shapes = {"tok_emb.W": (c.vocab_size, c.dim), "pos.W": (c.context, c.dim),
              "ln_f.gamma": (c.dim,), "ln_f.beta": (c.dim,)}
    for i in range(c.n_layers):
        p = f"blocks.{i}."
        shapes.update({p + "ln1.gamma": (c.dim,), p + "ln1.beta": (c.dim,),
                       p + "attn.W_qkv": (c.dim, 3 * c.dim), p + "attn.b_qkv": (3 * c.dim,),
                       p + "attn.W_out": (c.dim, c.dim), p + "attn.b_out": (c.dim,),
                       p + "ln2.gamma": (c.dim,), p + "ln2.beta": (c.dim,),
                       p + "ffn.fc1.W": (c.dim, c.hidden), p + "ffn.fc1.b": (c.hidden,),
                       p + "ffn.fc2.W": (c.hidden, c.dim), p + "ffn.fc2.b": (c.dim,)})
    return shapes


def state_to_hf(state, n_layers):
    """GPT-2's {name: array} (GPT2LMHeadModel's names) from npfm's GPT state dict."""
    return {"transformer." + hf: np.ascontiguousarray(state[ours])
            for hf, ours in hf_names(n_layers)}


# ----- whole directories -------------------------------------------------------------------

def read_json(path):
    """A Hugging Face directory's JSON file, or a clear error naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def load_gpt2(directory, dtype=np.float32):
    """(GPT, BPETokenizer) from a Hugging Face GPT-2 directory, in eval mode.

    Needs config.json, model.safetensors, vocab.json and merges.txt; each
    problem (a missing file, another model_type, a weight whose shape
    disagrees with config.json, a vocabulary of another size) raises a
    ValueError or FileNotFoundError naming the file.
    """
    from ..tokenizers.bpe import BPETokenizer
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory!r} is not a directory")
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        hint = ""
        if "model.safetensors" in missing and os.path.exists(os.path.join(directory,
                                                                          "pytorch_model.bin")):
            hint = " (npfm reads safetensors only; re-save the model with save_pretrained)"
        raise FileNotFoundError(f"{directory!r} lacks {', '.join(missing)}; a GPT-2 directory "
                                f"needs {', '.join(REQUIRED_FILES)}{hint}")
    join = lambda name: os.path.join(directory, name)  # noqa: E731
    config = config_from_hf(read_json(join("config.json")), join("config.json"))
    tokenizer = BPETokenizer.from_gpt2_files(join("vocab.json"), join("merges.txt"))
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"{join('vocab.json')} holds {tokenizer.vocab_size} tokens, but "
                         f"config.json says vocab_size = {config.vocab_size}")
    weights = join("model.safetensors")
    state = state_from_hf(load_safetensors(weights), config, weights)
    model = GPT(config, dtype=dtype)
    model.load_state_dict({k: v.astype(dtype) for k, v in state.items()})
    return model.eval(), tokenizer


def gpt2_tokenizer_of(tokenizer):
    """The BPETokenizer that writes ``tokenizer`` as vocab.json/merges.txt, and notes.

    The bytes tokenizer becomes a byte-level vocabulary with no merges (id i
    is byte i, as in npfm). A BPE tokenizer keeps its ids; if it was trained
    with npfm's older split pattern rather than GPT2_PATTERN, a note says
    that Hugging Face's tokenizer cuts some rare characters differently.
    """
    from ..tokenizers.bpe import GPT2_PATTERN, BPETokenizer
    from ..tokenizers.bytes import ByteTokenizer
    if isinstance(tokenizer, ByteTokenizer):
        return BPETokenizer((), (), GPT2_PATTERN), []
    if isinstance(tokenizer, BPETokenizer):
        notes = []
        if tokenizer.pattern != GPT2_PATTERN and tokenizer.merges:
            notes.append("the BPE tokenizer was trained with npfm's own split pattern; "
                         "Hugging Face's GPT-2 tokenizer splits text with GPT-2's, which cuts "
                         "numbers such as '\u00b2' or '\u00bd' and the separators U+001C..U+001F "
                         "differently, so such text may get other ids")
        return tokenizer, notes
    raise ValueError(f"export: a {type(tokenizer).__name__} cannot be written as GPT-2's "
                     "vocab.json/merges.txt (only the bytes and BPE tokenizers are byte-level)")


def export_gpt2(model: GPT, tokenizer, out_dir):
    """Write ``model`` and ``tokenizer`` as a Hugging Face GPT-2 directory.

    Files: config.json, model.safetensors (the model's dtype), vocab.json,
    merges.txt, tokenizer_config.json. Returns a list of notes (str) worth
    telling the user. ``transformers.GPT2LMHeadModel.from_pretrained(out_dir)``
    and ``GPT2Tokenizer.from_pretrained(out_dir)`` read the result.
    """
    return write_hf_directory(model, tokenizer, out_dir, config_to_hf,
                              lambda state, config: state_to_hf(state, config.n_layers))


def write_hf_directory(model, tokenizer, out_dir, make_config, make_state):
    """What every GPT-layout export writes: config.json (``make_config(config,
    dtype, eot_id)``), model.safetensors (``make_state(state_dict, config)``),
    the tokenizer as GPT-2's byte-level files and tokenizer_config.json.
    Returns the notes worth telling the user."""
    config = model.config
    bpe, notes = gpt2_tokenizer_of(tokenizer)
    if bpe.vocab_size != config.vocab_size:
        raise ValueError(f"export: the tokenizer has {bpe.vocab_size} tokens but the model "
                         f"{config.vocab_size}")
    eot = bpe.special_tokens.get("<|endoftext|>")
    hf_config = make_config(config, model.tok_emb.W.data.dtype, eot)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config, f, indent=2)
    save_safetensors(os.path.join(out_dir, "model.safetensors"),
                     make_state(model.state_dict(), config), metadata={"format": "pt"})
    bpe.save_gpt2_files(out_dir)
    special = "<|endoftext|>" if eot is not None else None
    tok_config = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": config.context,
                  "add_prefix_space": False, "bos_token": special, "eos_token": special,
                  "unk_token": special}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_config, f, indent=2)
    return notes
