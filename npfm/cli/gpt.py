"""The commands ``npfm train gpt`` and ``npfm generate``: argument parsing and calls into
npfm.tasks.gpt (what the model brings to the shared loop), nothing else.

    npfm train gpt --arch llama                      the Llama layout of the decoder
    npfm train gpt --init CKPT --lora 8              LoRA fine-tuning (only A, B train)
    npfm train gpt --init CKPT --sft                 docstring -> def line, masked loss
"""

import os
import sys
import numpy as np

from .. import argtypes
from .flags import add_reference_flag
from ..checkpoint import load_checkpoint
from ..models.gpt import GPT, GPTConfig, PRESETS, generate, preset, with_arch
from ..nn.lora import add_lora, merge_lora
from ..runfolder import check_run_folder
from ..train import CHECKPOINT_NAME, TrainConfig, save_task_checkpoint, train
from ..tasks.gpt import BPE_MAX_BYTES, GPTTask, encode_corpus, load_model, make_tokenizer

DEFAULT_OUT = os.path.join("runs", "gpt")


def add_commands(sub, train_models):
    p = train_models.add_parser("gpt", help="pre-train or fine-tune a GPT (decoder-only)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--arch", default=None, choices=["gpt2", "llama"],
                   help="the layout of the preset's blocks: gpt2 (LayerNorm, learned positions, "
                        "GELU, biases) or llama (RMSNorm, RoPE, SwiGLU, grouped-query "
                        "attention, no biases, untied head)")
    p.add_argument("--lora", type=int, default=None, metavar="R",
                   help="with --init: train rank-R LoRA adapters on the blocks' Linears only; "
                        "the final checkpoint holds the merged weights")
    p.add_argument("--lora-alpha", type=float, default=None,
                   help="LoRA's alpha (the update is scaled by alpha / R; default R)")
    p.add_argument("--sft", action="store_true",
                   help="supervised fine-tuning on (docstring line -> def line) pairs of "
                        "--data's Python files (stdlib by default), the loss on response "
                        "tokens only; reports held-out response loss and exact match")
    p.add_argument("--data", default="stdlib",
                   help="stdlib (the standard library's Python source, default), pydoc "
                        "(Python's documentation prose), or a text file / folder")
    p.add_argument("--tokenizer", default="bytes", choices=["bytes", "bpe"])
    p.add_argument("--vocab-size", type=argtypes.positive_int, default=1024, help="BPE vocabulary size")
    p.add_argument("--steps", type=argtypes.positive_int, default=None)
    p.add_argument("--batch-size", type=argtypes.positive_int, default=32)
    p.add_argument("--grad-accum", type=argtypes.positive_int, default=1, metavar="K",
                   help="accumulate K micro-batches of --batch-size per step (the update of "
                        "a batch K times larger)")
    p.add_argument("--lr", type=argtypes.positive_float, default=None)
    p.add_argument("--context", type=argtypes.positive_int, default=None, help="override the preset's context")
    p.add_argument("--dropout", type=argtypes.dropout_rate, default=None)
    p.add_argument("--eval-every", type=argtypes.positive_int, default=None)
    p.add_argument("--max-bytes", type=argtypes.positive_int, default=None, help="use at most this much text")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (its checkpoint and metrics)")
    p.add_argument("--init", default=None, help="start from a checkpoint's weights (fine-tuning)")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.add_argument("--sample-tokens", type=argtypes.nonnegative_int, default=300)
    add_reference_flag(p)
    p.set_defaults(func=train_command)

    g = sub.add_parser("generate", help="sample text from a trained GPT (streamed)")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--prompt", default="")
    g.add_argument("--max-new-tokens", type=argtypes.positive_int, default=200)
    g.add_argument("--temperature", type=argtypes.nonnegative_float, default=0.8)
    g.add_argument("--top-k", type=argtypes.positive_int, default=None)
    g.add_argument("--top-p", type=argtypes.finite_float, default=None)
    g.add_argument("--seed", type=argtypes.seed, default=None)
    g.add_argument("--no-cache", action="store_true", help="recompute the window at every step")
    add_reference_flag(g)
    g.set_defaults(func=generate_command)


# defaults of the main job: tuned so `npfm train gpt` ends within 10 minutes on 2 cores
JOB_DEFAULTS = {"tiny": dict(steps=200, lr=3e-3, eval_every=50),
                "default": dict(steps=1000, lr=3e-3, eval_every=200),
                "large": dict(steps=3000, lr=1e-3, eval_every=500)}
JOB_DEFAULTS["tiny-llama"], JOB_DEFAULTS["llama"] = JOB_DEFAULTS["tiny"], JOB_DEFAULTS["default"]


def train_command(args):
    from ..data.corpus import load_corpus
    from ..tokenizers import tokenizer_from_dict
    defaults = JOB_DEFAULTS[args.preset]
    check_run_folder(args.out, args.resume, args.overwrite)
    if args.lora is not None:
        if args.lora < 1:
            raise ValueError(f"--lora must be a rank of at least 1, got {args.lora}")
        if not args.init:
            raise ValueError("--lora adapts a trained model: give its checkpoint with --init")
        if args.resume:
            raise ValueError("--lora cannot --resume (the final checkpoint is merged); "
                             "start again with --init")
    elif args.lora_alpha is not None:
        raise ValueError("--lora-alpha needs --lora R")
    if args.arch and (args.init or args.resume):
        raise ValueError("--arch chooses a new model's layout; --init and --resume take "
                         "the checkpoint's")
    steps = args.steps or defaults["steps"]
    init_ckpt = load_checkpoint(args.init, kind="gpt") if args.init else None
    if init_ckpt is not None and (init_ckpt.extra or {}).get("lora"):
        raise ValueError(f"{args.init} is a checkpoint from the middle of a LoRA run (W, A, B "
                         "apart); start from its final, merged checkpoint")
    resume_ckpt = None
    if args.resume:
        resume_ckpt = load_checkpoint(os.path.join(args.out, "checkpoint.npz"), kind="gpt")

    base = resume_ckpt or init_ckpt
    corpus = None
    if not (args.sft and base is not None):     # SFT makes its own pairs; text for a tokenizer
        corpus = load_corpus(args.data, max_bytes=args.max_bytes)
        print(f"data: {corpus.describe()}")
    if base is not None:                        # the tokenizer comes with the weights
        tokenizer = tokenizer_from_dict(base.need("tokenizer"))
        config = GPTConfig.from_dict(base.config)
        if args.dropout is not None:
            config = GPTConfig.from_dict({**config.to_dict(), "dropout": args.dropout})
    else:
        tokenizer = make_tokenizer(args.tokenizer, corpus, args.vocab_size)
        overrides = {"vocab_size": tokenizer.vocab_size}
        if args.context:
            overrides["context"] = args.context
        if args.dropout is not None:
            overrides["dropout"] = args.dropout
        config = preset(args.preset, **overrides)
        if args.arch:
            config = with_arch(config, args.arch)
    max_bytes = args.max_bytes or (BPE_MAX_BYTES if tokenizer.type == "bpe" else None)
    model = GPT(config, seed=args.seed)
    kv = f" ({config.n_kv_heads} key/value)" if config.n_kv_heads else ""
    print(f"model: GPT ({config.arch}) {config.n_layers} layers, width {config.dim}, "
          f"{config.n_heads} heads{kv}, context {config.context}, vocabulary "
          f"{config.vocab_size} ({tokenizer.type}); {model.num_parameters():,} parameters")
    if init_ckpt is not None:      # now, so that what is measured before training is this model
        model.load_state_dict(init_ckpt.model_state)
    if args.lora is not None:      # the base weights, then the adapters
        names = add_lora(model, args.lora, args.lora_alpha, seed=args.seed)
        trained = sum(p.size for p in model.parameters() if p.trainable)
        total = model.num_parameters() - trained        # the model's own (A, B go at merge)
        print(f"LoRA r={args.lora}, alpha={args.lora_alpha or args.lora:g} on {len(names)} "
              f"Linears ({', '.join(sorted({n.split('.', 2)[2] for n in names}))}): "
              f"{trained:,} parameters trained, {trained / total:.2%} of the model's {total:,}")
    if args.sft:
        from ..tasks.sft import SFTTask, make_sft_pairs
        if args.data != "stdlib" and not os.path.isdir(args.data):
            raise ValueError(f"--sft makes its pairs from Python files: --data stdlib or a "
                             f"folder of .py files, not {args.data!r}")
        train_pairs, held_pairs = make_sft_pairs(None if args.data == "stdlib" else args.data)
        task = SFTTask(model, tokenizer, train_pairs, held_pairs, batch_size=args.batch_size)
        print(task.describe())
        before = _sft_report(task, "before")
    else:
        train_ids, val_ids, bytes_per_token = encode_corpus(tokenizer, corpus, max_bytes)
        task = GPTTask(model, tokenizer, train_ids, val_ids, batch_size=args.batch_size,
                       val_bytes_per_token=bytes_per_token)
    cfg = TrainConfig(steps=steps, lr=args.lr or defaults["lr"], min_lr=(args.lr or defaults["lr"]) / 10,
                      warmup=min(100, steps // 10), eval_every=args.eval_every or defaults["eval_every"],
                      checkpoint_every=args.eval_every or defaults["eval_every"], seed=args.seed,
                      grad_accum=args.grad_accum)
    if args.lora is not None:              # checkpoints during the run hold W, A, B apart
        task.extra_info = {"lora": {"r": args.lora, "alpha": args.lora_alpha or args.lora}}
    result = train(task, cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    if args.lora is not None:
        merge_lora(model)                  # W + (alpha / r) A B: a plain GPT checkpoint
        task.extra_info = {}
        save_task_checkpoint(os.path.join(args.out, CHECKPOINT_NAME), task, None, cfg.steps,
                             np.random.default_rng(0), np.random.default_rng(0), cfg)
        print(f"\nthe LoRA adapters are merged into the checkpoint's weights "
              f"({os.path.join(args.out, CHECKPOINT_NAME)} loads as a plain GPT)")
    ev = result.last_eval
    if args.sft:
        after = _sft_report(task, "after")
        print(f"\nheld-out response loss {before[0]:.4f} -> {after[0]:.4f} nats/token, exact "
              f"match {before[1]:.1%} -> {after[1]:.1%}, valid def line {before[2]:.1%} -> "
              f"{after[2]:.1%} after {cfg.steps} steps; checkpoint in {args.out}")
        return 0
    print(f"\nvalidation loss {ev['val_loss']:.4f} nats/token = {ev['val_nats_per_byte']:.4f} nats/byte "
          f"after {cfg.steps} steps; checkpoint, metrics.jsonl and loss.png in {args.out}")
    if args.sample_tokens:
        prompt = "def " if args.data == "stdlib" else "The "
        print(f"\nsample (temperature 0.8, prompt {prompt!r}):\n{'-' * 60}")
        _stream(model, tokenizer, prompt, args.sample_tokens, 0.8, None, None,
                np.random.default_rng(args.seed), True)
        print(f"\n{'-' * 60}")
    return 0


def _sft_report(task, when):
    """(response loss, exact match) on every held-out pair, printed with examples."""
    was_training = task.model.training
    task.model.eval()
    loss, (exact, parses) = task.response_loss(), task.generation_scores(len(task.held))
    print(f"{when}: held-out response loss {loss:.4f} nats/token, exact match of the def line "
          f"{exact:.1%}, a valid def line {parses:.1%} ({len(task.held)} pairs, greedy)")
    for prompt, response in task.held[:2]:
        print(f"  {prompt.strip()!r} -> {task.write(prompt, len(response) + 4)!r}")
    task.model.train(was_training)
    return loss, exact, parses


def _stream(model, tokenizer, prompt, n, temperature, top_k, top_p, rng, use_cache):
    ids = tokenizer.encode(prompt) if prompt else np.array([_newline_id(tokenizer)])
    decoder = tokenizer.stream_decoder()
    sys.stdout.write(prompt)

    def on_token(t):
        sys.stdout.write(decoder.push(t))
        sys.stdout.flush()

    generate(model, ids, n, temperature=temperature, top_k=top_k, top_p=top_p, rng=rng,
             use_cache=use_cache, on_token=on_token)
    sys.stdout.write(decoder.flush())


def _newline_id(tokenizer):
    return int(tokenizer.encode("\n")[0])


def generate_command(args):
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0 (0 = greedy), got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    model, tokenizer = load_model(args.checkpoint)
    _stream(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k,
            args.top_p, np.random.default_rng(args.seed), not args.no_cache)
    sys.stdout.write("\n")
    return 0
