"""``npfm export``: carry a trained model to another library's layout.

    npfm export --checkpoint runs/gpt/checkpoint.npz --format hf --out gpt2-npfm
    npfm export --checkpoint runs/bert/checkpoint.npz --format hf --out bert-npfm

A GPT checkpoint becomes a Hugging Face GPT-2 directory (GPT2LMHeadModel,
GPT2Tokenizer), or a Llama directory (LlamaForCausalLM) when its config's
arch is "llama"; a BERT pre-training checkpoint a BertForPreTraining
directory that BertForMaskedLM loads. See the README, "Outgrowing NumPy".
"""

from __future__ import annotations

import sys

FORMATS = ("hf",)


def add_commands(sub):
    p = sub.add_parser("export", help="write a GPT or BERT checkpoint in Hugging Face's layout")
    p.add_argument("--checkpoint", required=True, help="an npfm checkpoint (.npz)")
    p.add_argument("--format", default="hf", choices=FORMATS,
                   help="hf: Hugging Face transformers (config.json, model.safetensors, tokenizer)")
    p.add_argument("--out", required=True, help="the directory to write")
    p.set_defaults(func=export_command)


def load_for_export(path):
    """(kind, model, tokenizer) of an npfm GPT or BERT pre-training checkpoint."""
    from ..checkpoint import load_checkpoint
    from ..tokenizers import tokenizer_from_dict
    ckpt = load_checkpoint(path)
    tokenizer_dict = (ckpt.extra or {}).get("tokenizer") if isinstance(ckpt.extra, dict) else None
    if ckpt.kind == "gpt" and (ckpt.extra or {}).get("lora"):
        raise ValueError(f"{path} is a checkpoint from the middle of a LoRA run (W, A, B "
                         "apart); export its final, merged checkpoint")
    if ckpt.kind == "gpt":
        from ..models.gpt import GPT, GPTConfig
        model = GPT(GPTConfig.from_dict(ckpt.config))
    elif ckpt.kind == "bert":
        from ..models.bert import BertConfig, BertForPreTraining
        model = BertForPreTraining(BertConfig.from_dict(ckpt.config))
    else:
        raise ValueError(f"{path}: a {ckpt.kind!r} checkpoint has no Hugging Face twin of the "
                         "same shape; export supports 'gpt' and 'bert' (see "
                         "the README's \"Outgrowing NumPy\" for CLIP and DALL-E)")
    if tokenizer_dict is None:
        raise ValueError(f"{path}: the checkpoint carries no tokenizer")
    dtype = next(iter(ckpt.model_state.values())).dtype
    model.astype(dtype)
    model.load_state_dict(ckpt.model_state)
    return ckpt.kind, model, tokenizer_from_dict(tokenizer_dict)


def export_command(args):
    kind, model, tokenizer = load_for_export(args.checkpoint)
    if kind == "gpt" and model.config.arch == "llama":
        from ..interop.hf_llama import export_llama as export
        loader = "LlamaForCausalLM"
    elif kind == "gpt":
        from ..interop.hf_gpt2 import export_gpt2 as export
        loader = "GPT2LMHeadModel"
    else:
        from ..interop.hf_bert import export_bert as export
        loader = "BertForMaskedLM"
    notes = export(model, tokenizer, args.out)
    for note in notes:
        print(f"npfm: note: {note}", file=sys.stderr)
    print(f"wrote {args.out}: load it with transformers.{loader}.from_pretrained({args.out!r})")
    return 0
