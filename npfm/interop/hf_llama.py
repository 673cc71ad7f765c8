"""GPT weights of the Llama layout in and out of Hugging Face's Llama layout.

A Hugging Face Llama directory holds config.json (model_type "llama":
hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
num_key_value_heads, rms_norm_eps, rope_theta, ...) and model.safetensors;
here also the tokenizer as GPT-2's byte-level vocab.json and merges.txt
(``tokenizer_class`` GPT2Tokenizer: npfm's bytes or BPE tokenizer, not
Llama's SentencePiece one).

npfm's ``GPT(arch="llama")`` and ``LlamaForCausalLM`` are the same network:
RMSNorm before each sub-layer, RoPE in the half-split layout (Hugging Face's
``rotate_half``, so no channel is permuted), grouped-query attention whose KV
head j serves query heads j * H / H_kv ... (j + 1) * H / H_kv - 1 (Hugging
Face's ``repeat_kv``), a SiLU-gated MLP, no biases, a final RMSNorm and a
head tied or not. Two differences of writing only:

* Hugging Face's ``nn.Linear`` weights are (out, in) and npfm's (in, out):
  every matrix is transposed (the token embedding (V, C) is not).
* npfm fuses the three input projections into one ``attn.qkv.W`` of shape
  (C, C + 2 H_kv D) with columns [q | k | v]; Llama keeps ``q_proj``,
  ``k_proj``, ``v_proj`` apart. Their rows are the fused columns.

Where a config.json asks for what npfm's llama GPT does not have (biases,
RoPE scaling, another activation), the conversion refuses, naming it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..models.gpt import GPT, GPTConfig
from ..safetensors import load_safetensors
from .hf_gpt2 import write_hf_directory

RMS_EPS = 1e-6                                         # npfm's llama RMSNorms

# Hugging Face Llama name -> (npfm name, how): "T" transposes, "q", "k", "v"
# take the query, key or value columns of the fused projection, then transpose.
LLAMA_NAMES = {
    "model.embed_tokens.weight": ("tok_emb.W", ""),                       # (V, C)
    "model.layers.{i}.input_layernorm.weight": ("blocks.{i}.ln1.gamma", ""),
    "model.layers.{i}.self_attn.q_proj.weight": ("blocks.{i}.attn.qkv.W", "q"),  # (H D, C)
    "model.layers.{i}.self_attn.k_proj.weight": ("blocks.{i}.attn.qkv.W", "k"),  # (H_kv D, C)
    "model.layers.{i}.self_attn.v_proj.weight": ("blocks.{i}.attn.qkv.W", "v"),
    "model.layers.{i}.self_attn.o_proj.weight": ("blocks.{i}.attn.out.W", "T"),  # (C, H D)
    "model.layers.{i}.post_attention_layernorm.weight": ("blocks.{i}.ln2.gamma", ""),
    "model.layers.{i}.mlp.gate_proj.weight": ("blocks.{i}.ffn.W_gate", "T"),    # (F, C)
    "model.layers.{i}.mlp.up_proj.weight": ("blocks.{i}.ffn.W_up", "T"),        # (F, C)
    "model.layers.{i}.mlp.down_proj.weight": ("blocks.{i}.ffn.W_down", "T"),    # (C, F)
    "model.norm.weight": ("ln_f.gamma", ""),
    "lm_head.weight": ("W_head", "T"),                                    # (V, C), if untied
}


def hf_names(config: GPTConfig):
    """[(Hugging Face name, npfm name, how)] for every weight of ``config``."""
    rows = []
    for hf, (ours, how) in LLAMA_NAMES.items():
        if hf == "lm_head.weight" and config.tie_head:
            continue
        layers = range(config.n_layers) if "{i}" in hf else [None]
        rows.extend((hf.format(i=i), ours.format(i=i), how) for i in layers)
    return rows


def _columns(config, how):
    """The slice of the fused (C, C + 2 C_kv) projection that q, k or v occupies."""
    C, Ckv = config.dim, (config.n_kv_heads or config.n_heads) * (config.dim // config.n_heads)
    return {"q": slice(0, C), "k": slice(C, C + Ckv), "v": slice(C + Ckv, C + 2 * Ckv)}[how]


# ----- config.json <-> GPTConfig ------------------------------------------------------

def config_to_hf(config: GPTConfig, dtype, eot_id=None):
    """config.json of LlamaForCausalLM for a GPTConfig of arch "llama"."""
    if config.arch != "llama":
        raise ValueError(f"export: the GPT has arch {config.arch!r}; the Llama layout needs "
                         "arch 'llama' (GPT-2 layouts export as GPT2LMHeadModel)")
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": config.vocab_size, "hidden_size": config.dim,
            "intermediate_size": config.hidden, "num_hidden_layers": config.n_layers,
            "num_attention_heads": config.n_heads,
            "num_key_value_heads": config.n_kv_heads or config.n_heads,
            "head_dim": config.dim // config.n_heads,
            "max_position_embeddings": config.context, "hidden_act": "silu",
            "rms_norm_eps": RMS_EPS, "rope_theta": config.rope_base, "rope_scaling": None,
            "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
            "tie_word_embeddings": bool(config.tie_head), "initializer_range": 0.02,
            "use_cache": True, "bos_token_id": eot_id, "eos_token_id": eot_id,
            "torch_dtype": np.dtype(dtype).name}


def config_from_hf(d, path="config.json"):
    """A GPTConfig (arch "llama") from a Llama config.json dict; refuses what it cannot express."""
    if not isinstance(d, dict) or d.get("model_type") != "llama":
        got = d.get("model_type") if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"{path}: model_type is {got!r}; expected 'llama'")
    needed = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
              "num_attention_heads", "max_position_embeddings")
    missing = [k for k in needed if k not in d]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    H, C = d["num_attention_heads"], d["hidden_size"]
    rope = d.get("rope_parameters") or {}        # transformers 5 keeps rope_theta in here
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    blockers = [
        ("rope_parameters", rope_type == "default", "npfm's RoPE is unscaled"),
        ("hidden_act", d.get("hidden_act", "silu") == "silu", "npfm's SwiGLU gates with SiLU"),
        ("attention_bias", not d.get("attention_bias", False), "npfm's llama has no biases"),
        ("mlp_bias", not d.get("mlp_bias", False), "npfm's llama has no biases"),
        ("rope_scaling", not d.get("rope_scaling"), "npfm's RoPE is unscaled"),
        ("rms_norm_eps", d.get("rms_norm_eps", RMS_EPS) == RMS_EPS, f"npfm uses {RMS_EPS}"),
        ("head_dim", d.get("head_dim") in (None, C // H), "npfm's head size is dim / heads"),
    ]
    for name, ok, why in blockers:
        if not ok:
            raise ValueError(f"{path}: {name} = {d.get(name)!r} is not supported ({why})")
    kv = d.get("num_key_value_heads") or H
    return GPTConfig(vocab_size=d["vocab_size"], context=d["max_position_embeddings"], dim=C,
                     n_layers=d["num_hidden_layers"], n_heads=H, hidden=d["intermediate_size"],
                     arch="llama", n_kv_heads=0 if kv == H else kv,
                     tie_head=bool(d.get("tie_word_embeddings", False)),
                     rope_base=float(rope.get("rope_theta", d.get("rope_theta", 10000.0))))


# ----- weights ---------------------------------------------------------------------------

def state_to_hf(state, config: GPTConfig):
    """LlamaForCausalLM's {name: array} from an npfm llama GPT's state dict."""
    out = {}
    for hf, ours, how in hf_names(config):
        value = state[ours]
        if how in ("q", "k", "v"):
            value = value[:, _columns(config, how)]                 # (C, H* D)
        out[hf] = np.ascontiguousarray(value.T if how else value)
    return out


def state_from_hf(tensors, config: GPTConfig, path="model.safetensors"):
    """npfm's state dict from LlamaForCausalLM's {name: array}; shapes checked."""
    if config.tie_head and "lm_head.weight" in tensors and not np.array_equal(
            tensors["lm_head.weight"], tensors["model.embed_tokens.weight"]):
        raise ValueError(f"{path}: tie_word_embeddings is true but lm_head.weight differs "
                         "from model.embed_tokens.weight")
    shapes = {name: p.shape for name, p in GPT(config).named_parameters()}
    state, parts = {}, {}
    for hf, ours, how in hf_names(config):
        if hf not in tensors:
            raise ValueError(f"{path} lacks the weight {hf!r}")
        value = np.asarray(tensors[hf])
        value = value.T if how else value
        if how in ("q", "k", "v"):
            parts.setdefault(ours, {})[how] = value
            continue
        if value.shape != shapes[ours]:
            raise ValueError(f"{path}: {hf!r} has shape {value.T.shape if how else value.shape}"
                             f", which config.json does not imply")
        state[ours] = value
    for ours, qkv in parts.items():
        value = np.concatenate([qkv["q"], qkv["k"], qkv["v"]], axis=1)   # (C, C + 2 C_kv)
        if value.shape != shapes[ours]:
            raise ValueError(f"{path}: the q, k, v projections of {ours!r} make shape "
                             f"{value.shape}, config.json implies {shapes[ours]}")
        state[ours] = value
    known = {hf for hf, _, _ in hf_names(config)} | {"lm_head.weight"}
    unused = [k for k in tensors if k not in known and "rotary_emb" not in k]
    if unused:
        raise ValueError(f"{path} has weights npfm's llama GPT has no place for: {unused[:3]}")
    return state


# ----- whole directories -------------------------------------------------------------------

def load_llama(directory, dtype=np.float32):
    """(GPT, config) from a Llama directory's config.json and model.safetensors, in eval mode."""
    directory = os.fspath(directory)
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        config = config_from_hf(json.load(f), os.path.join(directory, "config.json"))
    weights = os.path.join(directory, "model.safetensors")
    state = state_from_hf(load_safetensors(weights), config, weights)
    model = GPT(config, dtype=dtype)
    model.load_state_dict({k: v.astype(dtype) for k, v in state.items()})
    return model.eval()


def export_llama(model: GPT, tokenizer, out_dir):
    """Write ``model`` (arch "llama") and ``tokenizer`` as a Hugging Face Llama directory.

    Files: config.json, model.safetensors (the model's dtype), vocab.json,
    merges.txt, tokenizer_config.json. ``LlamaForCausalLM.from_pretrained(out_dir)``
    reads the model and ``AutoTokenizer.from_pretrained(out_dir)`` the tokenizer.
    Returns a list of notes worth telling the user.
    """
    notes = write_hf_directory(model, tokenizer, out_dir, config_to_hf, state_to_hf)
    notes.append("the tokenizer is written as GPT-2's byte-level files (GPT2Tokenizer), "
                 "not Llama's SentencePiece model")
    return notes
