"""Supervised fine-tuning with a loss mask (npfm/tasks/sft.py): the pairs, the
mask (no gradient from the prompt), learning a few pairs, and the command."""

import textwrap

import numpy as np
import pytest

from npfm.cli import main
from npfm.models.gpt import GPT, preset
from npfm.tasks.sft import (IGNORE, SFTTask, encode_pair, function_pairs, is_def_line,
                            make_sft_pairs)
from npfm.tasks.gpt import load_model
from npfm.tokenizers import ByteTokenizer
from npfm.train import TrainConfig, train

SOURCE = textwrap.dedent('''
    def add(a, b=1):
        """Add two numbers.

        More text that is not the prompt.
        """
        return a + b

    class Box:
        def size(self) -> int:
            """Return the size."""
            return 3

        def nodoc(self):
            return 0

    def   spaced( x ,y ):
        """   """
''')

PAIRS = [("# Add two numbers.\n", "def add(a, b=1):\n"),
         ("# Return the size.\n", "def size(self) -> int:\n"),
         ("# Close it.\n", "def close(self):\n"),
         ("# Open a file.\n", "def open_file(path, mode='r'):\n")]


def test_function_pairs_take_the_first_docstring_line_and_the_def_line():
    assert sorted(function_pairs(SOURCE)) == sorted(PAIRS[:2])
    assert function_pairs("def broken(:\n") == []


def test_is_def_line():
    assert is_def_line("def f(x, y=2):\n") and is_def_line("async def g() -> int:")
    assert not is_def_line("def f(x, y=2\n") and not is_def_line("    return 1\n")
    assert not is_def_line("def f():\nx = 1")


def test_pairs_split_by_file(tmp_path):
    for i in range(30):
        (tmp_path / f"mod{i}.py").write_text(f'def f{i}(x):\n    """Do thing {i}."""\n')
    train_pairs, held = make_sft_pairs(str(tmp_path))
    assert len(train_pairs) + len(held) == 30 and held and train_pairs
    assert not set(train_pairs) & set(held)


def test_targets_are_ignored_under_the_prompt():
    tok = ByteTokenizer()
    prompt, response = PAIRS[0]
    ids, targets = encode_pair(tok, prompt, response, context=64)
    assert len(ids) == len(targets) == len(prompt) + len(response) - 1
    counted = targets[targets != IGNORE]
    assert tok.decode(counted) == response                   # exactly the response is graded
    assert encode_pair(tok, prompt, response, context=10) is None


def test_the_prompt_gives_no_gradient_and_the_loss_is_the_response_mean():
    model = GPT(preset("tiny-llama", context=48), seed=0).astype(np.float64)
    task = SFTTask(model, ByteTokenizer(), PAIRS, PAIRS, batch_size=4)
    ids, targets = task._batch(task.train)
    logits = model.forward(ids)
    loss = task.loss(logits, targets)
    dlogits = task.loss.backward()
    mask = targets != IGNORE
    assert np.all(dlogits[~mask] == 0) and np.abs(dlogits[mask]).sum() > 0
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    by_hand = -np.mean(logp[mask, targets[mask]])
    np.testing.assert_allclose(loss, by_hand, rtol=1e-12)
    # and changing a prompt token's target changes nothing
    targets2 = targets.copy()
    targets2[0, 0] = IGNORE
    assert task.loss(logits, targets2) == loss


def test_fine_tuning_learns_the_pairs(tmp_path):
    model = GPT(preset("tiny-llama", context=48, dim=32, n_heads=4), seed=0)
    task = SFTTask(model, ByteTokenizer(), PAIRS, PAIRS, batch_size=8)
    model.eval()
    before = task.response_loss(), task.exact_match()
    assert before[1] == 0.0
    config = TrainConfig(steps=250, lr=1e-2, min_lr=1e-3, warmup=10, eval_every=250,
                         checkpoint_every=250, seed=0)
    train(task, config, str(tmp_path), plot=False)
    model.eval()
    after = task.response_loss(), task.exact_match()
    assert after[0] < 0.1 * before[0]
    assert after[1] == 1.0, [task.write(p, 30) for p, _ in PAIRS]
    assert task.generation_scores() == (1.0, 1.0)


def test_sft_command_reports_before_and_after(tmp_path, capsys):
    data = tmp_path / "code"
    data.mkdir()
    for i in range(60):
        (data / f"mod{i}.py").write_text(f'def get_{i}(x, y={i}):\n    """Return item {i}."""\n')
    base = tmp_path / "base"
    assert main(["train", "gpt", "--preset", "tiny-llama", "--context", "48", "--data", str(data),
                 "--steps", "2", "--out", str(base), "--sample-tokens", "0"]) == 0
    out = tmp_path / "sft"
    assert main(["train", "gpt", "--init", str(base / "checkpoint.npz"), "--sft", "--data",
                 str(data), "--steps", "3", "--eval-every", "3", "--batch-size", "4",
                 "--out", str(out), "--sample-tokens", "0"]) == 0
    text = capsys.readouterr().out
    assert "before: held-out response loss" in text and "after: held-out response loss" in text
    assert "exact match" in text and (out / "checkpoint.npz").exists()
    # "before" measures the --init weights, not a fresh model
    model, tok = load_model(str(base / "checkpoint.npz"))
    train_pairs, held = make_sft_pairs(str(data))
    expected = SFTTask(model, tok, train_pairs, held, batch_size=4).response_loss()
    assert f"before: held-out response loss {expected:.4f}" in text
    assert main(["train", "gpt", "--sft", "--data", str(data / "mod1.py"), "--steps", "1",
                 "--init", str(base / "checkpoint.npz")]) == 2
    assert capsys.readouterr().err.startswith("npfm: error: --sft")
