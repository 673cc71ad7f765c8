"""What a GPT brings to the shared loop (``npfm.train``): its batches (random
windows of the token stream), its loss (next-token cross-entropy) and its
metrics (validation loss in nats per token and per byte).
"""

import os

import numpy as np
from ..checkpoint import load_checkpoint
from ..nn.cross_entropy import CrossEntropyLoss
from ..interop.hf_gpt2 import load_gpt2
from ..models.gpt import GPT, GPTConfig

BPE_TRAIN_BYTES = 1_000_000        # the BPE vocabulary is learned from the first MB


BPE_MAX_BYTES = 8_000_000          # and encodes at most this much text


class GPTTask:
    """Next-token prediction on a token stream, for ``npfm.train.train``."""

    kind = "gpt"
    unit = "tok"

    def __init__(self, model: GPT, tokenizer, train_ids, val_ids, batch_size=32,
                 val_bytes_per_token=1.0, eval_batches=16, eval_seed=1234):
        T = model.config.context
        for name, ids in (("training", train_ids), ("validation", val_ids)):
            if len(ids) < T + 1:
                raise ValueError(f"the {name} text has {len(ids)} tokens, shorter than one context "
                                 f"window of {T + 1}: give more text or a smaller --context")
        self.model, self.tokenizer = model, tokenizer
        self.loss = CrossEntropyLoss()
        self.train_ids, self.val_ids = train_ids, val_ids
        self.batch_size = batch_size
        self.val_bytes_per_token = val_bytes_per_token
        self.extra_info = {}                 # more for the checkpoint's extra (LoRA's r, alpha)
        rng = np.random.default_rng(eval_seed)
        self.eval_set = [self._windows(val_ids, rng) for _ in range(eval_batches)]

    def _windows(self, ids, rng):
        """B random windows of T + 1 tokens -> inputs (B, T) and targets (B, T)."""
        T = self.model.config.context
        starts = rng.integers(0, len(ids) - T, size=self.batch_size)            # (B,)
        chunk = ids[starts[:, None] + np.arange(T + 1)].astype(np.int64)          # (B, T+1)
        return chunk[:, :-1], chunk[:, 1:]

    def config_dict(self):
        return self.model.config.to_dict()

    def extra(self):
        return {"tokenizer": self.tokenizer.to_dict(), **self.extra_info}

    def train_batch(self, rng):
        return self._windows(self.train_ids, rng)

    def loss_and_backward(self, batch):
        x, y = batch
        logits = self.model.forward(x)                              # (B, T, V)
        loss = self.loss(logits, y)
        self.model.backward(self.loss.backward())
        return loss, x.size

    def loss_sum_and_backward(self, batch):
        """For gradient accumulation: (loss summed over the counted targets, their
        number, tokens), leaving the gradient of the sum (not of the mean)."""
        x, y = batch
        loss = self.loss(self.model.forward(x), y)                  # mean over counted targets
        n = self.loss.count
        self.model.backward(self.loss.backward(float(n)))           # dloss = n: d(sum)
        return float(loss) * n, n, x.size

    def evaluate(self):
        losses = [float(self.loss(self.model.forward(x), y)) for x, y in self.eval_set]
        val = float(np.mean(losses))
        return {"val_loss": val, "val_nats_per_byte": val / self.val_bytes_per_token}


def make_tokenizer(kind, corpus, vocab_size):
    from ..tokenizers import BPETokenizer, ByteTokenizer
    from ..tokenizers.bpe import GPT2_PATTERN
    if kind == "bytes":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.train(corpus.train_text[:BPE_TRAIN_BYTES], vocab_size,
                                  pattern=GPT2_PATTERN)
    raise ValueError(f"unknown tokenizer {kind!r}: choose bytes or bpe")


def encode_corpus(tokenizer, corpus, max_bytes=None):
    """(train ids, val ids, bytes per validation token)."""
    train_text, val_text = corpus.train_text, corpus.val_text
    if max_bytes is not None:
        train_text, val_text = train_text[:max_bytes], val_text[:max(max_bytes // 10, 1)]
    dtype = np.uint8 if tokenizer.vocab_size <= 256 else np.int32
    train_ids = tokenizer.encode(train_text).astype(dtype)
    val_ids = tokenizer.encode(val_text).astype(dtype)
    val_bytes = len(val_text.encode("utf-8"))
    return train_ids, val_ids, val_bytes / max(len(val_ids), 1)


def model_from_checkpoint(ckpt):
    """The GPT of a checkpoint. One written during a LoRA run (``npfm train gpt
    --lora``, before its end) holds W, A and B apart: they are merged here."""
    from ..nn.lora import add_lora, merge_lora
    model = GPT(GPTConfig.from_dict(ckpt.config))
    lora = (ckpt.extra or {}).get("lora")
    if lora:
        add_lora(model, lora["r"], lora["alpha"])
    model.load_state_dict(ckpt.model_state)
    if lora:
        merge_lora(model)
    return model


def load_model(path):
    """(GPT, tokenizer) from a checkpoint written by ``npfm train gpt``, or from a
    Hugging Face GPT-2 directory (config.json, model.safetensors, vocab.json, merges.txt)."""
    from ..tokenizers import tokenizer_from_dict
    if os.path.isdir(path):
        return load_gpt2(path)
    ckpt = load_checkpoint(path, kind="gpt")
    model = model_from_checkpoint(ckpt)
    tokenizer = tokenizer_from_dict(ckpt.need("tokenizer"))
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the model "
                         f"{model.config.vocab_size}")
    return model.eval(), tokenizer
