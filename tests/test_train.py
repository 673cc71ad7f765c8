"""The shared training loop: determinism, exact resume, metrics, checkpoints, interrupts."""

import json
import os

import numpy as np
import pytest

from npfm.checkpoint import load_checkpoint
from npfm.tasks.gpt import GPTTask
from npfm.models.gpt import GPT, preset
from npfm.tokenizers import ByteTokenizer
from npfm.train import TrainConfig, read_metrics, train

TEXT = ("def add(a, b):\n    return a + b\n\n" * 40 + "class Point:\n    x = 0\n" * 30)


def make_task(seed=0, dropout=0.1):
    tok = ByteTokenizer()
    ids = tok.encode(TEXT).astype(np.uint8)
    model = GPT(preset("tiny", context=16, dropout=dropout), seed=seed)
    return GPTTask(model, tok, ids[:1500], ids[1500:], batch_size=4, eval_batches=2)


def config(steps=12):
    return TrainConfig(steps=steps, lr=1e-2, warmup=3, eval_every=4, log_every=1,
                       checkpoint_every=4, seed=3)


def losses(history):
    return [r["train_loss"] for r in history]


def test_same_seed_same_losses_and_learning(tmp_path):
    a = train(make_task(), config(), tmp_path / "a", plot=False)
    b = train(make_task(), config(), tmp_path / "b", plot=False)
    assert losses(a.history) == losses(b.history)
    assert a.history[-1]["train_loss"] < a.history[0]["train_loss"] - 0.5
    c = train(make_task(), TrainConfig(**{**config().to_dict(), "seed": 4}), tmp_path / "c", plot=False)
    assert losses(c.history) != losses(a.history)


def interrupt_at(task, call):
    """Make the task raise KeyboardInterrupt (Ctrl-C) on its call-th training step."""
    calls = {"n": 0}
    original = task.loss_and_backward

    def interrupted(batch):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(batch)

    task.loss_and_backward = interrupted
    return task


def test_resume_continues_to_exactly_the_same_losses(tmp_path):
    straight = train(make_task(), config(12), tmp_path / "straight", plot=False)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):               # Ctrl-C during step 10
        train(interrupt_at(make_task(), 10), config(12), out, plot=False)
    assert load_checkpoint(out / "checkpoint.npz").step == 8
    # a fresh process rebuilds the task; the checkpoint restores the weights,
    # AdamW's moments, the step and both random generators (batches, dropout)
    resumed = train(make_task(), config(12), out, resume=True, plot=False)
    assert losses(resumed.history) == losses(straight.history)
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == list(range(1, 13))
    assert resumed.last_eval["val_loss"] == straight.last_eval["val_loss"]


def test_checkpoint_contents_and_metrics_file(tmp_path):
    result = train(make_task(), config(8), tmp_path, plot=True)
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz", kind="gpt")
    assert ckpt.step == 8 and ckpt.config["context"] == 16
    assert ckpt.extra["tokenizer"]["type"] == "bytes"
    assert set(ckpt.rng_state) == {"batches", "dropout"}
    assert "m.0" in ckpt.optimizer_state
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert {"step", "train_loss", "lr", "tok_per_s"} <= set(records[-1])
    assert "val_loss" in records[3] and "val_loss" not in records[0]
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.last_eval["val_loss"] > 0


def test_interrupt_leaves_the_last_checkpoint_intact(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(interrupt_at(make_task(), 7), config(12), tmp_path, plot=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")          # loads: not half-written
    assert ckpt.step == 4
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    task = make_task()
    task.loss_and_backward = lambda batch: (float("nan"), 1)
    with pytest.raises(FloatingPointError, match="became nan at step 1"):
        train(task, config(3), tmp_path, plot=False)


def test_resume_refuses_a_different_model(tmp_path):
    train(make_task(), config(4), tmp_path, plot=False)
    task = make_task()
    task.model = GPT(preset("tiny", context=8))
    with pytest.raises(ValueError, match="model config"):
        train(task, config(8), tmp_path, resume=True, plot=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(make_task(), config(8), tmp_path / "empty", resume=True, plot=False)
