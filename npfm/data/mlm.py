"""BERT's pre-training data: masked-language-model (MLM) and next-sentence (NSP) batches.

Documents are lists of sentences. They come from ``pydoc_data.topics`` (one
document per help topic) or from a file or folder the user gives.

**Sentences.** ``split_sentences`` cuts a text into paragraphs at blank lines,
then each paragraph into sentences after ``.``, ``!`` or ``?`` followed by
whitespace and a capital letter or "(":  ``(?<=[.!?])\\s+(?=[A-Z(])``. Each
sentence has its whitespace runs collapsed to one space; whitespace-only ones
are dropped. A paragraph of code or a table is one "sentence" too.

**NSP pairs** (``make_nsp_pairs``), as in the original BERT: walk through each
document, gathering consecutive sentences into a chunk until it holds about
``max_len - 3`` tokens (and at least two sentences). Cut the chunk at a random
sentence boundary: the part before is segment A. With probability 1/2, B is
the rest of the chunk (label 0, IsNext); otherwise B is a run of sentences
from a random start in a random *other* document (label 1, NotNext), and the
chunk's unused sentences are put back for the next chunk. A pair too long is
cut longest-first; with probability ``short_seq_prob`` a chunk aims at a
shorter random length, so the model also sees short inputs.

    [CLS] a1 a2 a3 [SEP] b1 b2 [SEP] [PAD] ...

**Masking** (``mask_tokens``): in each sequence choose 15% of the real,
non-special positions (at least one); of those, 80% become [MASK], 10% a
random non-special token and 10% stay as they are. The model must predict the
original token at every chosen position (label = the id) and nothing
elsewhere (label = -100, the "ignore" value of the loss).
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..tokenizers.bert_pairs import pack_pair, truncate_longest_first
from .sources import pydoc_documents, read_text

IGNORE_INDEX = -100

PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


# ----- documents ----------------------------------------------------------------

def split_sentences(text):
    """The sentences of ``text``: paragraphs at blank lines, then sentences at ``. X``."""
    sentences = []
    for paragraph in PARAGRAPH_BREAK.split(text):
        for sentence in SENTENCE_BREAK.split(paragraph):
            sentence = " ".join(sentence.split())
            if sentence:
                sentences.append(sentence)
    return sentences


def documents_from_pydoc():
    """One document per topic of ``pydoc_data.topics``: a list of lists of sentences."""
    docs = [split_sentences(text) for _, text in pydoc_documents()]
    return [doc for doc in docs if doc]


def _is_binary(path):
    with open(path, "rb") as f:
        return b"\0" in f.read(1024)


def documents_from_path(path):
    """Documents from a folder (one per text file, hidden and binary files skipped,
    sorted by path) or from one file (one per blank-line separated block)."""
    if os.path.isdir(path):
        files = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend(os.path.join(dirpath, name) for name in sorted(filenames)
                         if not name.startswith("."))
        docs = [split_sentences(read_text(f)) for f in sorted(files) if not _is_binary(f)]
    elif os.path.isfile(path):
        docs = [split_sentences(block) for block in PARAGRAPH_BREAK.split(read_text(path))]
    else:
        raise ValueError(f"documents_from_path: {path!r} is neither a file nor a folder")
    docs = [doc for doc in docs if doc]
    if not docs:
        raise ValueError(f"documents_from_path: found no text in {path!r}")
    return docs


def split_documents(docs, val_fraction=0.1, seed=0):
    """(train_docs, val_docs): a seeded random ``val_fraction`` of whole documents held out.

    At least one document goes to each side when there are two or more and
    ``val_fraction > 0``.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"split_documents: val_fraction must be in [0, 1), got {val_fraction}")
    n = len(docs)
    n_val = 0 if val_fraction == 0 or n < 2 else min(n - 1, max(1, round(n * val_fraction)))
    order = np.random.default_rng(seed).permutation(n)
    val = set(order[:n_val].tolist())
    return ([d for i, d in enumerate(docs) if i not in val],
            [d for i, d in enumerate(docs) if i in val])


def tokenize_documents(docs, tokenizer):
    """Each sentence as an int32 array of ids; sentences with no tokens are dropped."""
    if isinstance(docs, str) or not all(isinstance(d, (list, tuple)) for d in docs):
        raise TypeError("tokenize_documents expects a list of documents, each a list of "
                        "sentence strings")
    out = []
    for doc in docs:
        sentences = [tokenizer.encode(s) for s in doc]
        out.append([s for s in sentences if len(s)])
    return out


# ----- next-sentence pairs ---------------------------------------------------------

def nsp_pairs_from_ids(doc_ids, max_len, rng, cls_id, sep_id, pad_id, short_seq_prob=0.1):
    """NSP pairs from tokenized documents (see the module docstring).

    doc_ids: list of documents, each a list of 1-D id arrays (sentences).
    Returns a dict of arrays over N pairs: ``ids``, ``segments``,
    ``attention_mask`` (N, T) int32 with T = max_len; ``nsp_labels`` (N,)
    (0 IsNext, 1 NotNext); ``doc_a``, ``doc_b`` (N,) the documents that A and
    B came from. A document of one sentence gives no pair of its own but can
    supply a NotNext segment B.
    """
    if max_len < 5:
        raise ValueError(f"nsp_pairs_from_ids: max_len must be >= 5, got {max_len}")
    sources = [d for d, doc in enumerate(doc_ids) if doc]
    if len(sources) < 2:
        raise ValueError("nsp_pairs_from_ids: need at least two non-empty documents "
                         "(NotNext pairs take B from another document)")
    position = {d: k for k, d in enumerate(sources)}
    budget = max_len - 3
    rows, labels, doc_a, doc_b = [], [], [], []
    for d in range(len(doc_ids)):
        doc = doc_ids[d]
        i = 0
        while i < len(doc):
            target = budget
            if rng.random() < short_seq_prob:
                target = int(rng.integers(2, budget + 1))
            j, length = i, 0                   # the chunk is doc[i:j]
            while j < len(doc) and (j - i < 2 or length < target):
                length += len(doc[j])
                j += 1
            if len(doc) - j == 1:
                j += 1                         # a lone last sentence joins this chunk
            chunk = doc[i:j]
            if len(chunk) < 2:
                break
            a_end = int(rng.integers(1, len(chunk)))           # A = chunk[:a_end]
            a = np.concatenate(chunk[:a_end])
            if rng.random() < 0.5:
                label, other = 0, d
                b = np.concatenate(chunk[a_end:])
                i = j
            else:
                label = 1
                k = int(rng.integers(len(sources) - 1))     # uniform over the other documents
                other = sources[k if k < position[d] else k + 1]
                other_doc = doc_ids[other]
                start = int(rng.integers(len(other_doc)))
                pieces, b_len = [], 0
                for sentence in other_doc[start:]:
                    pieces.append(sentence)
                    b_len += len(sentence)
                    if b_len >= target - len(a):
                        break
                b = np.concatenate(pieces)
                i = i + a_end                  # the unused sentences go back
            a, b = truncate_longest_first(a, b, budget)
            rows.append(pack_pair(a, b, max_len, cls_id, sep_id, pad_id))
            labels.append(label)
            doc_a.append(d)
            doc_b.append(other)
    if not rows:
        raise ValueError("nsp_pairs_from_ids: no document has two sentences to make a pair")
    ids, segments, masks = (np.stack(x) for x in zip(*rows))  # (N, T) each
    return {"ids": ids, "segments": segments, "attention_mask": masks,
            "nsp_labels": np.array(labels, dtype=np.int32),       # (N,)
            "doc_a": np.array(doc_a, dtype=np.int32), "doc_b": np.array(doc_b, dtype=np.int32)}


def make_nsp_pairs(docs, tokenizer, max_len, rng, short_seq_prob=0.1):
    """NSP pairs from documents of sentence strings (see ``nsp_pairs_from_ids``)."""
    return nsp_pairs_from_ids(tokenize_documents(docs, tokenizer), max_len, rng,
                              tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                              short_seq_prob)


# ----- masking ------------------------------------------------------------------------

def mask_tokens(ids, special_mask, tokenizer_vocab_size, mask_id, rng, mask_prob=0.15,
                special_ids=()):
    """BERT's masking of a (B, T) batch, vectorised; returns (input_ids, labels).

    special_mask: (B, T) bool, True where a position must never be chosen
    ([CLS], [SEP], [PAD]). In each row, round(mask_prob * n) of its n
    candidate positions (at least 1 if n > 0) are chosen uniformly: give each
    candidate a uniform random key and take the smallest keys. Of the chosen,
    80% become ``mask_id``, 10% a random id from [0, V) other than ``mask_id``
    and ``special_ids``, 10% stay. labels = ids at chosen positions, -100 elsewhere.
    """
    ids = np.asarray(ids)
    special_mask = np.asarray(special_mask, dtype=bool)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"mask_tokens: ids must be a (B, T) integer array, got "
                         f"{ids.dtype} of shape {ids.shape}")
    if special_mask.shape != ids.shape:
        raise ValueError(f"mask_tokens: special_mask has shape {special_mask.shape}, "
                         f"ids have {ids.shape}")
    if not 0 < mask_prob < 1:
        raise ValueError(f"mask_tokens: mask_prob must be in (0, 1), got {mask_prob}")
    candidates = ~special_mask                                       # (B, T)
    n_candidates = candidates.sum(axis=1)                            # (B,)
    n_chosen = np.where(n_candidates > 0,
                        np.maximum(1, np.round(n_candidates * mask_prob)), 0)  # (B,)
    keys = np.where(candidates, rng.random(ids.shape), np.inf)       # (B, T)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)              # (B, T) 0 = smallest key
    chosen = rank < n_chosen[:, None]                                # (B, T)

    labels = np.where(chosen, ids, IGNORE_INDEX).astype(ids.dtype)   # (B, T)
    action = rng.random(ids.shape)                                   # (B, T)
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)
    allowed = np.setdiff1d(np.arange(tokenizer_vocab_size), [mask_id, *special_ids])  # (V',)
    if allowed.size == 0:
        raise ValueError("mask_tokens: no token is left to draw random replacements from")
    random_ids = allowed[rng.integers(allowed.size, size=ids.shape)]  # (B, T)
    input_ids = ids.copy()
    input_ids[to_mask] = mask_id
    input_ids[to_random] = random_ids[to_random]
    return input_ids, labels


# ----- batches --------------------------------------------------------------------------

class MLMBatcher:
    """MLM + NSP batches from documents, deterministic given a ``np.random.Generator``.

    The documents are tokenized once. Each ``epoch(rng)`` draws fresh NSP
    pairs, shuffles them, and masks each batch anew (dynamic masking), yielding

        {"ids": (B, T) int32, "segments": (B, T) int32, "attention_mask": (B, T) int32,
         "mlm_labels": (B, T) int32 (-100 = ignored), "nsp_labels": (B,) int32}

    ``token_counts`` (V,) counts the tokens of the documents, for the
    most-frequent-token baseline.
    """

    def __init__(self, docs, tokenizer, max_len=128, batch_size=32, mask_prob=0.15,
                 short_seq_prob=0.1):
        if batch_size < 1:
            raise ValueError(f"MLMBatcher: batch_size must be >= 1, got {batch_size}")
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.batch_size = batch_size
        self.mask_prob = mask_prob
        self.short_seq_prob = short_seq_prob
        self.doc_ids = tokenize_documents(docs, tokenizer)
        every_id = [s for doc in self.doc_ids for s in doc]
        self.token_counts = np.bincount(np.concatenate(every_id) if every_id else
                                        np.zeros(0, np.int64), minlength=tokenizer.vocab_size)

    def pairs(self, rng):
        """One pass of NSP pairs over every document (see ``nsp_pairs_from_ids``)."""
        tok = self.tokenizer
        return nsp_pairs_from_ids(self.doc_ids, self.max_len, rng, tok.cls_id, tok.sep_id,
                                  tok.pad_id, self.short_seq_prob)

    def mask(self, ids, rng):
        """(input_ids, mlm_labels) of a (B, T) batch of packed pairs."""
        tok = self.tokenizer
        special = np.isin(ids, [tok.cls_id, tok.sep_id, tok.pad_id])   # (B, T)
        return mask_tokens(ids, special, tok.vocab_size, tok.mask_id, rng, self.mask_prob,
                           special_ids=tok.special_ids)

    def epoch(self, rng):
        """Yield the batches of one pass: fresh pairs, shuffled, freshly masked."""
        pairs = self.pairs(rng)
        order = rng.permutation(len(pairs["nsp_labels"]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            input_ids, labels = self.mask(pairs["ids"][rows], rng)
            yield {"ids": input_ids,                                   # (B, T)
                   "segments": pairs["segments"][rows],                # (B, T)
                   "attention_mask": pairs["attention_mask"][rows],    # (B, T)
                   "mlm_labels": labels,                               # (B, T)
                   "nsp_labels": pairs["nsp_labels"][rows]}            # (B,)

    def batches(self, rng):
        """An endless stream of batches, epoch after epoch."""
        while True:
            yield from self.epoch(rng)

    def most_frequent_token(self):
        """The id of the most frequent non-special token in these documents."""
        counts = self.token_counts.copy()
        counts[self.tokenizer.special_ids] = 0
        return int(np.argmax(counts))


def make_eval_batches(docs, tokenizer, max_len=128, batch_size=32, seed=0, mask_prob=0.15):
    """A fixed held-out set: one pass over ``docs`` with a fixed seed, built once.

    Use the validation documents; the same seed gives the same pairs and masks.
    """
    batcher = MLMBatcher(docs, tokenizer, max_len, batch_size, mask_prob)
    return list(batcher.epoch(np.random.default_rng(seed)))


def most_frequent_token_baseline(eval_batches, token_id):
    """Accuracy of always predicting ``token_id`` at the masked positions of ``eval_batches``.

    Take ``token_id`` from the training data (``MLMBatcher.most_frequent_token()``),
    and report this beside the model's MLM accuracy: a model must beat it.
    """
    hits = total = 0
    for batch in eval_batches:
        labels = np.asarray(batch["mlm_labels"])
        scored = labels != IGNORE_INDEX
        hits += int((labels[scored] == token_id).sum())
        total += int(scored.sum())
    if total == 0:
        raise ValueError("most_frequent_token_baseline: the batches have no masked position")
    return hits / total
