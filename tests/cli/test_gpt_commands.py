"""`npfm train gpt` and `npfm generate` end to end on a small folder of text."""

import re

import numpy as np
import pytest

from npfm.checkpoint import load_checkpoint, save_checkpoint
from npfm.cli import main
from npfm.data.corpus import load_corpus
from npfm.tasks.gpt import GPTTask, encode_corpus, load_model

CODE = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(300))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt")
    data = root / "data"
    data.mkdir()
    (data / "a.py").write_text(CODE)
    (data / "b.py").write_text(CODE.replace("x", "y"))
    out = root / "run"
    code = main(["train", "gpt", "--preset", "tiny", "--data", str(data), "--steps", "30",
                 "--eval-every", "15", "--out", str(out), "--sample-tokens", "20"])
    assert code == 0
    return root, data, out


def test_train_writes_checkpoint_metrics_curve_and_sample(trained, capsys):
    root, data, out = trained
    assert (out / "checkpoint.npz").exists() and (out / "loss.png").exists()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) >= 3 and '"val_loss"' in lines[-1]
    assert load_checkpoint(out / "checkpoint.npz", kind="gpt").step == 30


def test_generate_greedy_is_deterministic_and_streams(trained, capsys):
    _, _, out = trained
    args = ["generate", "--checkpoint", str(out / "checkpoint.npz"), "--prompt", "def ",
            "--max-new-tokens", "24", "--temperature", "0"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args + ["--no-cache"]) == 0
    assert capsys.readouterr().out == first          # the KV cache changes nothing
    assert first.startswith("def ") and len(first) > 10


def test_fine_tune_from_a_checkpoint(trained, tmp_path, capsys):
    _, data, out = trained
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "prose.txt").write_text("The quick brown fox jumps over the lazy dog. " * 200)
    capsys.readouterr()
    code = main(["train", "gpt", "--init", str(out / "checkpoint.npz"), "--data", str(tmp_path / "d"),
                 "--steps", "5", "--eval-every", "5", "--out", str(tmp_path / "ft"), "--sample-tokens", "0"])
    assert code == 0
    assert load_checkpoint(tmp_path / "ft" / "checkpoint.npz").config["context"] == 16
    printed = capsys.readouterr().out
    before = float(re.search(r"before: validation loss ([0-9.]+) nats/token", printed)[1])
    after = float(re.search(r"\nvalidation loss ([0-9.]+) nats/token", printed)[1])
    model, tokenizer = load_model(str(out / "checkpoint.npz"))      # the untouched start
    train_ids, val_ids, per_byte = encode_corpus(tokenizer, load_corpus(str(tmp_path / "d")))
    start = GPTTask(model, tokenizer, train_ids, val_ids, val_bytes_per_token=per_byte).evaluate()
    assert before == pytest.approx(start["val_loss"], abs=1e-4)      # measured before any step
    assert after < before


def test_val_fraction_sets_the_validation_share(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    for i in range(40):
        (tmp_path / "d" / f"doc{i}.py").write_text(CODE[: 2000 + 37 * i])
    for fraction in (0.05, 0.5):
        capsys.readouterr()
        assert main(["train", "gpt", "--preset", "tiny", "--data", str(tmp_path / "d"),
                     "--val-fraction", str(fraction), "--steps", "1", "--sample-tokens", "0",
                     "--out", str(tmp_path / f"o{fraction}")]) == 0
        expected = load_corpus(str(tmp_path / "d"), val_fraction=fraction).describe()
        assert f"data: {expected}" in capsys.readouterr().out
    assert (load_corpus(str(tmp_path / "d"), val_fraction=0.5).describe()
            != load_corpus(str(tmp_path / "d"), val_fraction=0.05).describe())
    for bad in ("0", "1", "-0.1", "nan"):
        assert main(["train", "gpt", "--val-fraction", bad, "--out", str(tmp_path / "bad")]) == 2
        assert "--val-fraction must be" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--top-p", "1.5"], "--top-p must be in"),
    (["--top-p", "0"], "--top-p must be in"),
    (["--temperature", "-1"], "--temperature must be >= 0"),
])
def test_generate_rejects_bad_sampling_arguments(trained, capsys, args, message):
    _, _, out = trained
    assert main(["generate", "--checkpoint", str(out / "checkpoint.npz")] + args) == 2
    assert message in capsys.readouterr().err


def test_bad_checkpoints(trained, tmp_path, capsys):
    _, _, out = trained
    blob = (out / "checkpoint.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(blob[: len(blob) // 2])
    assert main(["generate", "--checkpoint", str(tmp_path / "cut.npz")]) == 2
    assert "truncated or corrupted" in capsys.readouterr().err
    save_checkpoint(tmp_path / "bert.npz", kind="bert", config={}, model_state={"w": np.zeros(2)})
    assert main(["generate", "--checkpoint", str(tmp_path / "bert.npz")]) == 2
    assert "expected gpt" in capsys.readouterr().err
    ckpt = load_checkpoint(out / "checkpoint.npz")
    save_checkpoint(tmp_path / "mismatch.npz", kind="gpt", config=ckpt.config,
                    model_state=ckpt.model_state,
                    extra={"tokenizer": {"type": "bpe", "merges": [[32, 32]], "special_tokens": {}}})
    assert main(["generate", "--checkpoint", str(tmp_path / "mismatch.npz")]) == 2
    assert "tokenizer has 257 tokens but the model 256" in capsys.readouterr().err


def test_bad_data(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "gpt", "--preset", "tiny", "--data", str(tmp_path / "empty"),
                 "--steps", "1", "--out", str(tmp_path / "o")]) == 2
    assert "no text files" in capsys.readouterr().err
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "a.txt").write_text("tiny text")
    assert main(["train", "gpt", "--preset", "tiny", "--data", str(tmp_path / "short"),
                 "--steps", "1", "--out", str(tmp_path / "o")]) == 2
    assert "shorter than one context window" in capsys.readouterr().err
