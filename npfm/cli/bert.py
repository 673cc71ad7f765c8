"""The commands ``npfm train bert``, ``npfm finetune bert``, ``npfm embed`` and ``npfm search``: argument parsing and calls into
npfm.tasks.bert (what the model brings to the shared loop), nothing else.
"""

import os
import numpy as np
from .flags import add_reference_flag
from .. import argtypes
from ..checkpoint import load_checkpoint
from ..runfolder import check_run_folder
from ..interop.hf_bert import from_pretrained
from ..models.bert import (PRESETS, BertConfig, BertForPreTraining, BertForSequenceClassification,
                           BertForTokenClassification, preset, sentence_embeddings)
from ..train import TrainConfig, train
from ..tasks.bert import (BertFinetuneTask, BertPretrainTask, PRETRAIN_KIND, TASKS, _set_dropout,
                          fill_mask, load_documents, load_encoder_from_pretraining,
                          load_sentence_model, load_task_data, majority_accuracy,
                          rank_by_similarity, resolve_model_dir, split_for_pretraining,
                          task_arrays, train_tokenizer)

DEFAULT_OUT = os.path.join("runs", "bert")


# defaults of the main job: tuned so `npfm train bert` ends within 15 minutes on 2 cores
JOB_DEFAULTS = {"tiny": dict(steps=200, lr=3e-3, eval_every=50, batch_size=16),
                "default": dict(steps=2000, lr=2e-3, eval_every=200, batch_size=32)}


def pretrain_command(args):
    from ..tokenizers.wordpiece import WordPieceTokenizer
    defaults = JOB_DEFAULTS[args.preset]
    check_run_folder(args.out, args.resume, args.overwrite)
    steps = args.steps or defaults["steps"]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr or defaults["lr"]
    docs = load_documents(args.data)
    train_docs, val_docs = split_for_pretraining(docs)
    print(f"data: {args.data}: {len(docs)} documents, {sum(map(len, docs)):,} sentences "
          f"({len(train_docs)} documents for training, {len(val_docs)} held out)")
    if args.resume:
        ckpt = load_checkpoint(os.path.join(args.out, "checkpoint.npz"), kind=PRETRAIN_KIND)
        tokenizer = WordPieceTokenizer.from_dict(ckpt.need("tokenizer"))
        config = BertConfig.from_dict(ckpt.config)
    else:
        tokenizer = train_tokenizer(train_docs, args.vocab_size)
        overrides = {"vocab_size": tokenizer.vocab_size}
        if args.max_len:
            overrides["max_len"] = args.max_len
        if args.dropout is not None:
            overrides["dropout"] = args.dropout
        config = preset(args.preset, **overrides)
    model = BertForPreTraining(config, seed=args.seed)
    print(f"model: BERT {config.n_layers} layers, width {config.dim}, {config.n_heads} heads, "
          f"{config.max_len} positions, WordPiece vocabulary {config.vocab_size}; "
          f"{model.num_parameters():,} parameters")
    task = BertPretrainTask(model, tokenizer, train_docs, val_docs, batch_size=batch_size,
                            seed=args.seed)
    eval_every = args.eval_every or defaults["eval_every"]
    cfg = TrainConfig(steps=steps, lr=lr, min_lr=lr / 10, warmup=min(100, steps // 10),
                      weight_decay=0.01, beta2=0.98, eval_every=eval_every,
                      checkpoint_every=eval_every, seed=args.seed)
    result = train(task, cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    ev = result.last_eval
    print(f"\nheld-out MLM accuracy {ev['val_mlm_acc']:.1%} (most-frequent-token baseline "
          f"{ev['val_mlm_baseline_acc']:.1%}), MLM loss {ev['val_mlm_loss']:.3f}; "
          f"NSP accuracy {ev['val_nsp_acc']:.1%}; {cfg.steps} steps in "
          f"{result.seconds / 60:.1f} min")
    print(f"checkpoint, metrics.jsonl and loss.png in {args.out}")
    example = 'The "[MASK]" statement is used to leave a loop early.'   # pydoc quotes keywords
    print(f"\n{example}\n  -> " + ", ".join(f"{tok} {p:.2f}" for tok, p in
                                              fill_mask(model, tokenizer, example)))
    return 0


# learning rates: a small encoder, fresh or pre-trained here, and a published checkpoint
FINETUNE_LR = {"scratch": 1e-3, "init": 1e-3, "pretrained": 5e-5}


def finetune_command(args):
    if args.init and args.pretrained:
        raise ValueError("give --init (an `npfm train bert` checkpoint) or --pretrained "
                         "(a Hugging Face directory), not both")
    if args.scratch and not args.init:
        raise ValueError("--scratch needs --init: it keeps that checkpoint's tokenizer and "
                         "architecture and starts from random weights")
    encoder, state = None, None
    if args.pretrained:
        directory = resolve_model_dir(None if args.pretrained == "minilm" else args.pretrained)
        encoder, tokenizer = from_pretrained(directory)
        config, base, mode = encoder.config, f"pretrained:{directory}", "pretrained"
        if args.dropout is not None:
            encoder.config = config = BertConfig.from_dict({**config.to_dict(),
                                                            "dropout": args.dropout})
            _set_dropout(encoder, args.dropout)
    elif args.init:
        config, tokenizer, state = load_encoder_from_pretraining(args.init)
        if args.scratch:
            state, base, mode = None, "scratch", "scratch"
        else:
            base, mode = f"init:{args.init}", "init"
    else:
        docs = load_documents("pydoc")
        tokenizer = train_tokenizer(split_for_pretraining(docs)[0], args.vocab_size)
        config = preset("default", vocab_size=tokenizer.vocab_size)
        base, mode = "scratch", "scratch"
    if encoder is None and args.dropout is not None:
        config = BertConfig.from_dict({**config.to_dict(), "dropout": args.dropout})

    train_set, test_set, labels = load_task_data(args.task, args.n_train, args.n_test, seed=0)
    max_len = min(args.max_len, config.max_len)
    train_arrays = task_arrays(args.task, tokenizer, train_set, max_len)
    test_arrays = task_arrays(args.task, tokenizer, test_set, max_len)
    sequence_task = args.task == "acceptability"
    cls = BertForSequenceClassification if sequence_task else BertForTokenClassification
    model = cls(config, len(labels), seed=args.seed, encoder=encoder)
    if state is not None:
        model.bert.load_state_dict(state)          # the encoder only: the head starts fresh
    print(f"task: {args.task} ({len(train_set)} training and {len(test_set)} test examples; "
          f"labels {labels})")
    print(f"model: BERT {config.n_layers} layers, width {config.dim}, from {base}; "
          f"{model.num_parameters():,} parameters")
    lr = args.lr or FINETUNE_LR[mode]
    steps = args.steps
    task = BertFinetuneTask(model, tokenizer, args.task, train_arrays, test_arrays, labels,
                            batch_size=args.batch_size, base=base)
    eval_every = args.eval_every or max(steps // 4, 1)
    cfg = TrainConfig(steps=steps, lr=lr, min_lr=lr / 10, warmup=max(1, steps // 10),
                      weight_decay=0.01, beta2=0.98, eval_every=eval_every,
                      checkpoint_every=steps, seed=args.seed)
    out = args.out or os.path.join("runs", f"bert-{args.task}")
    result = train(task, cfg, out, overwrite=args.overwrite)
    ev = result.last_eval
    majority = majority_accuracy(test_arrays[3])
    print(f"\ntest accuracy {ev['val_acc']:.1%} on {args.task} (majority class {majority:.1%}) "
          f"after {steps} steps from {base}; {result.seconds / 60:.1f} min. Checkpoint in {out}")
    return 0


def embed_command(args):
    if not args.sentences:
        raise ValueError("give at least one sentence to embed")
    model, tokenizer = load_sentence_model(args.model)
    emb = sentence_embeddings(model, tokenizer, args.sentences)                  # (N, C)
    if args.save:
        np.save(args.save, emb)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    for sentence, e in zip(args.sentences, emb):
        if args.full:
            print(f"{sentence}\n{' '.join(f'{v:.6f}' for v in e)}")
        else:
            print(f"{sentence}\n  [{', '.join(f'{v:.4f}' for v in e[:8])}, ...] "
                  f"({e.size} values, unit length)")
    if args.save:
        print(f"saved {emb.shape} float32 array to {args.save}")
    return 0


def search_command(args):
    sentences = list(args.sentences)
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            sentences += [line.strip() for line in f if line.strip()]
    if not sentences:
        raise ValueError("give sentences to search (as arguments or with --file)")
    if not args.query.strip():
        raise ValueError("--query is empty")
    model, tokenizer = load_sentence_model(args.model)
    ranked = rank_by_similarity(model, tokenizer, args.query, sentences)
    print(f"query: {args.query}")
    for score, sentence in ranked[:args.top]:
        print(f"  {score:6.3f}  {sentence}")
    return 0


def add_commands(sub, train_models, finetune_models):
    p = train_models.add_parser("bert", help="pre-train a BERT (masked LM + next sentence)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--data", default="pydoc",
                   help="pydoc (Python's documentation prose, default) or a text file / folder")
    p.add_argument("--vocab-size", type=argtypes.positive_int, default=4096, help="WordPiece vocabulary size")
    p.add_argument("--steps", type=argtypes.positive_int, default=None)
    p.add_argument("--batch-size", type=argtypes.positive_int, default=None)
    p.add_argument("--lr", type=argtypes.positive_float, default=None)
    p.add_argument("--max-len", type=argtypes.positive_int, default=None, help="override the preset's positions")
    p.add_argument("--dropout", type=argtypes.dropout_rate, default=None)
    p.add_argument("--eval-every", type=argtypes.positive_int, default=None)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (its checkpoint and metrics)")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    add_reference_flag(p)
    p.set_defaults(func=pretrain_command)

    f = finetune_models.add_parser("bert", help="fine-tune a BERT on a code task")
    f.add_argument("--task", required=True, choices=TASKS,
                   help="acceptability (does a snippet parse?) or ner (the kind of each token)")
    f.add_argument("--init", default=None,
                   help="start the encoder from an `npfm train bert` checkpoint")
    f.add_argument("--scratch", action="store_true",
                   help="with --init: its tokenizer and architecture, but random weights "
                        "(the baseline that shows what pre-training gives)")
    f.add_argument("--pretrained", nargs="?", const="minilm", default=None, metavar="DIR",
                   help="start from a Hugging Face BERT directory (no DIR: the installed MiniLM)")
    f.add_argument("--steps", type=argtypes.positive_int, default=300)
    f.add_argument("--batch-size", type=argtypes.positive_int, default=32)
    f.add_argument("--lr", type=argtypes.positive_float, default=None)
    f.add_argument("--dropout", type=argtypes.dropout_rate, default=None)
    f.add_argument("--max-len", type=argtypes.positive_int, default=64)
    f.add_argument("--n-train", type=argtypes.positive_int, default=2000)
    f.add_argument("--n-test", type=argtypes.positive_int, default=500)
    f.add_argument("--vocab-size", type=argtypes.positive_int, default=4096,
                   help="without --init/--pretrained: the WordPiece vocabulary learned from pydoc")
    f.add_argument("--eval-every", type=argtypes.positive_int, default=None)
    f.add_argument("--out", default=None, help="default runs/bert-TASK")
    f.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (its checkpoint and metrics)")
    f.add_argument("--seed", type=argtypes.seed, default=0)
    add_reference_flag(f)
    f.set_defaults(func=finetune_command)

    e = sub.add_parser("embed", help="sentence embeddings (MiniLM by default)")
    e.add_argument("sentences", nargs="*")
    e.add_argument("--model", default=None, help="a Hugging Face BERT directory")
    e.add_argument("--full", action="store_true", help="print every value")
    e.add_argument("--save", default=None, help="also save the (N, C) array as .npy")
    e.set_defaults(func=embed_command)

    s = sub.add_parser("search", help="rank sentences by similarity to a query (MiniLM by default)")
    s.add_argument("sentences", nargs="*")
    s.add_argument("--query", required=True)
    s.add_argument("--file", default=None, help="a text file, one sentence per line")
    s.add_argument("--model", default=None, help="a Hugging Face BERT directory")
    s.add_argument("--top", type=argtypes.positive_int, default=10)
    s.set_defaults(func=search_command)
