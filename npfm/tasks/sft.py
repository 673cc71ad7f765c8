"""Supervised fine-tuning with a loss mask: ``npfm train gpt --sft``.

The pairs come from what every Python carries: each documented function of
the standard library gives a prompt (the first line of its docstring, as a
comment) and a response (its ``def`` line, normalised by ``ast.unparse``):

    prompt:    "# Return the number of items in the queue.\n"
    response:  "def qsize(self):\n"

The model reads prompt + response, but only the response is graded: the
targets under the prompt (and the padding) are IGNORE, so the cross-entropy
is the mean over response tokens only (npfm.nn.CrossEntropyLoss with
ignore_index), and the gradient of the prompt's positions is zero:

    ids      #  _  R  e  t  ...  \\n d  e  f  _  q  ...  :  \\n
    targets  -  -  -  -  -  ...  d  e  f  _  q  s  ...  \\n  (- = IGNORE)

Held out: the functions of the files that ``in_validation`` puts in the
corpus's validation split (the files a model pre-trained with
``npfm train gpt --data stdlib`` never saw). The measures, before and after:
the response loss (nats per response token), the exact match of the def
line the model writes greedily after the prompt, and the share of written
lines that parse as a def line at all.
"""

from __future__ import annotations

import ast
import os
import warnings

import numpy as np

from ..data.corpus import in_validation
from ..data.sources import read_text, stdlib_dir, stdlib_python_files
from ..models.gpt import generate
from ..nn.cross_entropy import CrossEntropyLoss

IGNORE = -100
VAL_FRACTION = 0.05            # the corpus's validation share (npfm.data.corpus.load_corpus)
MAX_PROMPT_CHARS = 72
MAX_RESPONSE_CHARS = 56


def function_pairs(source, max_prompt=MAX_PROMPT_CHARS, max_response=MAX_RESPONSE_CHARS):
    """(prompt, response) for each documented, short-signatured function in ``source``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return []
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        lines = (ast.get_docstring(node) or "").strip().splitlines()
        if not lines:
            continue
        first = lines[0].strip()
        if not first or len(first) > max_prompt:
            continue
        keyword = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
        response = f"{keyword} {node.name}({ast.unparse(node.args)}){returns}:\n"
        if len(response) > max_response or not response.isascii() or not first.isascii():
            continue
        pairs.append((f"# {first}\n", response))
    return pairs


def make_sft_pairs(root=None, val_fraction=VAL_FRACTION, max_files=None):
    """(train pairs, held-out pairs) from the standard library, split by file
    the way the corpus is; duplicates (same prompt and response) kept once."""
    root = root or stdlib_dir()
    train, held, seen = [], [], set()
    paths = stdlib_python_files(root)
    for path in paths[:max_files] if max_files else paths:
        for pair in function_pairs(read_text(os.path.join(root, path))):
            if pair in seen:
                continue
            seen.add(pair)
            (held if in_validation(path, val_fraction) else train).append(pair)
    return train, held


def is_def_line(text):
    """True when ``text`` is one complete ``def`` (or ``async def``) line."""
    line = text.rstrip("\n")
    if "\n" in line or not line.startswith(("def ", "async def ")):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ast.parse(line + "\n    pass\n")
        except (SyntaxError, ValueError):
            return False
    return True


def encode_pair(tokenizer, prompt, response, context):
    """ids (T,), targets (T,) with IGNORE under the prompt; None if it does not fit."""
    p, r = tokenizer.encode(prompt), tokenizer.encode(response)
    tokens = np.concatenate([p, r]).astype(np.int64)                   # (P + R,)
    if len(tokens) > context + 1:
        return None
    targets = tokens[1:].copy()                                        # (T,)
    targets[:len(p) - 1] = IGNORE               # the targets inside the prompt
    return tokens[:-1], targets


class SFTTask:
    """Prompt/response fine-tuning of a GPT for ``npfm.train.train``."""

    kind = "gpt"
    unit = "tok"

    def __init__(self, model, tokenizer, train_pairs, held_pairs, batch_size=32,
                 n_exact=64, seed=1234):
        T = model.config.context
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.loss = CrossEntropyLoss(ignore_index=IGNORE)
        self.extra_info = {}                 # more for the checkpoint's extra (LoRA's r, alpha)
        self.train = [e for e in (encode_pair(tokenizer, p, r, T) for p, r in train_pairs) if e]
        held = [(p, r) for p, r in held_pairs if encode_pair(tokenizer, p, r, T)]
        if not self.train or not held:
            raise ValueError(f"no prompt/response pair fits a context of {T} tokens: "
                             f"give a model with a longer context")
        order = np.random.default_rng(seed).permutation(len(held))
        self.held = [held[i] for i in order]
        self.held_encoded = [encode_pair(tokenizer, p, r, T) for p, r in self.held]
        self.n_exact = min(n_exact, len(self.held))

    def describe(self):
        return (f"SFT pairs: {len(self.train):,} train, {len(self.held):,} held out "
                f"(docstring line -> def line; loss on response tokens only)")

    def config_dict(self):
        return self.model.config.to_dict()

    def extra(self):
        return {"tokenizer": self.tokenizer.to_dict(), **self.extra_info}

    def _batch(self, examples):
        """Right-padded ids (B, T) and targets (B, T), IGNORE on the padding."""
        T = max(len(x) for x, _ in examples)
        ids = np.zeros((len(examples), T), np.int64)                   # (B, T)
        targets = np.full((len(examples), T), IGNORE, np.int64)        # (B, T)
        for i, (x, y) in enumerate(examples):
            ids[i, :len(x)], targets[i, :len(y)] = x, y
        return ids, targets

    def train_batch(self, rng):
        picks = rng.integers(0, len(self.train), size=self.batch_size)
        return self._batch([self.train[i] for i in picks])

    def loss_and_backward(self, batch):
        ids, targets = batch
        loss = self.loss(self.model.forward(ids), targets)   # mean over response tokens
        self.model.backward(self.loss.backward())
        return loss, ids.size

    def loss_sum_and_backward(self, batch):
        ids, targets = batch
        loss = self.loss(self.model.forward(ids), targets)
        n = self.loss.count
        self.model.backward(self.loss.backward(float(n)))
        return float(loss) * n, n, ids.size

    def response_loss(self):
        """Mean cross-entropy over every held-out response token (nats per token)."""
        total, count = 0.0, 0
        for start in range(0, len(self.held_encoded), self.batch_size):
            ids, targets = self._batch(self.held_encoded[start:start + self.batch_size])
            loss = float(self.loss(self.model.forward(ids), targets))
            total, count = total + loss * self.loss.count, count + self.loss.count
        return total / count

    def exact_match(self, n=None):
        """Share of held-out prompts after which greedy decoding writes the def line exactly."""
        return self.generation_scores(n)[0]

    def generation_scores(self, n=None):
        """(exact match, share of written lines that parse as a def line) over the
        first n held-out prompts (default n_exact), greedy."""
        hits = parses = 0
        pairs = self.held[:self.n_exact if n is None else n]
        for prompt, response in pairs:
            written = self.write(prompt, len(self.tokenizer.encode(response)) + 4)
            hits += written.rstrip("\n") == response.rstrip("\n")
            parses += is_def_line(written)
        return hits / len(pairs), parses / len(pairs)

    def write(self, prompt, max_tokens):
        """The model's greedy continuation of ``prompt``, up to its first newline."""
        ids = self.tokenizer.encode(prompt)
        room = self.model.config.context - len(ids)
        new = generate(self.model, ids, max(1, min(max_tokens, room)), temperature=0)
        text = self.tokenizer.decode(new)
        return text[:text.index("\n") + 1] if "\n" in text else text

    def evaluate(self):
        exact, parses = self.generation_scores()
        return {"val_loss": self.response_loss(), "val_exact_match": exact,
                "val_def_parses": parses}
