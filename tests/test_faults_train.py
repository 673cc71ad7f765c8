"""Faults of a training run that must lose nothing (issue 10, items 1, 3, 4, 6).

Non-finite values stop the run before they reach the weights or a checkpoint;
the run folder is locked; a fresh run does not silently replace another run;
what killed runs leave behind (.tmp files, a torn metrics line) is cleaned up.
"""

import errno
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from npfm.checkpoint import load_checkpoint
from npfm.cli import main
from npfm.tasks.gpt import GPTTask
from npfm.models.gpt import GPT, preset
from npfm.runfolder import LOCK_NAME, RunFolderError
from npfm.tokenizers import ByteTokenizer
from npfm.train import TrainConfig, TrainingDivergedError, read_metrics, train

TEXT = ("def add(a, b):\n    return a + b\n\n" * 40 + "class Point:\n    x = 0\n" * 30)


def make_task(seed=0):
    tok = ByteTokenizer()
    ids = tok.encode(TEXT).astype(np.uint8)
    model = GPT(preset("tiny", context=16), seed=seed)
    return GPTTask(model, tok, ids[:1500], ids[1500:], batch_size=4, eval_batches=2)


def config(steps=8, **kw):
    return TrainConfig(**{**dict(steps=steps, lr=1e-2, warmup=2, eval_every=4, log_every=1,
                                 checkpoint_every=4, seed=3), **kw})


def all_finite(path):
    return all(np.isfinite(a).all() for a in load_checkpoint(path).model_state.values())


def poison_gradients_at(task, call):
    """From the call-th training step on, the backward leaves a NaN in one gradient."""
    calls = {"n": 0}
    original = task.loss_and_backward

    def poisoned(batch):
        calls["n"] += 1
        loss, n = original(batch)
        if calls["n"] >= call:
            task.model.tok_emb.W.grad[0, 0] = np.nan
        return loss, n

    task.loss_and_backward = poisoned
    return task


def test_nan_gradient_stops_before_the_step_and_keeps_the_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDivergedError) as info:
        train(poison_gradients_at(make_task(), 6), config(8), tmp_path, plot=False)
    message = str(info.value)
    assert "gradient norm" in message and "step 6" in message and "--lr" in message
    assert "(step 4)" in message
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.step == 4 and all_finite(tmp_path / "checkpoint.npz")


def test_non_finite_weights_are_never_saved(tmp_path):
    task = make_task()
    calls = {"n": 0}

    def after_step():                       # the weights go bad in step 8 (loss, grads fine)
        calls["n"] += 1
        if calls["n"] == 8:
            task.model.ln_f.gamma.data[:] = np.inf

    task.after_step = after_step
    with pytest.raises(TrainingDivergedError, match=r"weights became non-finite .* at step 8"):
        train(task, config(8), tmp_path, plot=False)
    assert load_checkpoint(tmp_path / "checkpoint.npz").step == 4
    assert all_finite(tmp_path / "checkpoint.npz")


def test_a_diverging_loss_gets_a_warning(tmp_path):
    task = make_task()
    losses = iter([3.0, 3.0, 2.9, 3.5, 5.0, 9.0, 20.0, 50.0])
    original = task.loss_and_backward
    task.loss_and_backward = lambda batch: (next(losses), original(batch)[1])
    out = io.StringIO()
    train(task, config(8), tmp_path, plot=False, stream=out)
    text = out.getvalue()
    assert text.count("diverging") == 1 and "--lr" in text
    quiet = io.StringIO()
    train(make_task(), config(8), tmp_path / "b", plot=False, stream=quiet)
    assert "diverging" not in quiet.getvalue()


def test_cli_at_a_huge_learning_rate_stops_with_one_line_and_a_finite_checkpoint(tmp_path, capsys):
    (tmp_path / "data.txt").write_text(TEXT * 3)
    out = tmp_path / "r"
    code = main(["train", "gpt", "--preset", "tiny", "--data", str(tmp_path / "data.txt"),
                 "--steps", "30", "--lr", "100", "--eval-every", "1", "--sample-tokens", "0",
                 "--batch-size", "4", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("npfm: error:")]
    assert len(lines) == 1 and "step" in lines[0] and "--lr" in lines[0]
    assert "Traceback" not in err
    if (out / "checkpoint.npz").exists():
        assert all_finite(out / "checkpoint.npz")


# ----- the folder lock -------------------------------------------------------------

def test_a_second_run_into_a_busy_folder_is_refused_naming_the_holder(tmp_path):
    inner = {}
    task = make_task()
    original = task.loss_and_backward

    def loss_and_backward(batch):            # while this run holds the folder, start another
        if not inner:
            with pytest.raises(RunFolderError, match=f"process {os.getpid()}") as info:
                train(make_task(), config(4), tmp_path, plot=False)
            inner["error"] = str(info.value)
        return original(batch)

    task.loss_and_backward = loss_and_backward
    train(task, config(4), tmp_path, plot=False)
    assert "in use by another run" in inner["error"]
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]
    assert not (tmp_path / LOCK_NAME).exists()          # released at the end


def test_a_live_process_lock_is_respected_and_a_dead_one_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(f"{os.getppid()}\n")      # alive: our parent
    with pytest.raises(RunFolderError, match=f"process {os.getppid()}"):
        train(make_task(), config(4), tmp_path, plot=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid}\n")
    out = io.StringIO()
    train(make_task(), config(4), tmp_path, plot=False, stream=out)
    assert f"stale lock of process {dead.pid}" in out.getvalue()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_fresh_run_does_not_replace_another_runs_checkpoint(tmp_path):
    train(make_task(), config(4), tmp_path, plot=False)
    before = (tmp_path / "metrics.jsonl").read_bytes()
    with pytest.raises(RunFolderError, match="--resume .* --overwrite"):
        train(make_task(), config(4), tmp_path, plot=False)
    assert (tmp_path / "metrics.jsonl").read_bytes() == before          # nothing deleted
    assert load_checkpoint(tmp_path / "checkpoint.npz").step == 4
    train(make_task(), config(8), tmp_path, plot=False, resume=True)     # told: continue
    train(make_task(seed=1), config(4), tmp_path, plot=False, overwrite=True)   # told: replace
    assert load_checkpoint(tmp_path / "checkpoint.npz").step == 4
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]


def test_cli_refuses_a_folder_holding_a_run_unless_told(tmp_path, capsys):
    (tmp_path / "data.txt").write_text(TEXT * 3)
    args = ["train", "gpt", "--preset", "tiny", "--data", str(tmp_path / "data.txt"),
            "--steps", "2", "--eval-every", "2", "--sample-tokens", "0", "--batch-size", "2",
            "--out", str(tmp_path / "r")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_an_out_that_is_a_file_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("not a folder")
    with pytest.raises(RunFolderError, match="is a file"):
        train(make_task(), config(2), path, plot=False)
    assert main(["train", "gpt", "--preset", "tiny", "--steps", "2", "--out", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
    assert path.read_text() == "not a folder"


def test_an_unwritable_folder_is_refused_before_the_first_step(tmp_path, monkeypatch):
    import npfm.runfolder as runfolder
    task = make_task()
    steps = []
    original = task.loss_and_backward
    task.loss_and_backward = lambda batch: (steps.append(1), original(batch))[1]
    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).startswith(str(tmp_path)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(runfolder.os, "open", read_only)
    with pytest.raises(RunFolderError, match="not writable"):
        train(task, config(2), tmp_path, plot=False)
    assert steps == []                                  # no training step was wasted


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_really_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["train", "gpt", "--preset", "tiny", "--steps", "2", "--out", str(folder)]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        folder.chmod(0o700)


# ----- leftovers of killed runs ------------------------------------------------------

def test_leftover_temporary_files_are_removed(tmp_path):
    for i in range(3):
        (tmp_path / f".checkpoint.npz.{90000 + i}.deadbeef.tmp").write_bytes(b"x" * 1000)
    (tmp_path / "keep.tmp.txt").write_text("mine")
    out = io.StringIO()
    train(make_task(), config(4), tmp_path, plot=False, stream=out)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert (tmp_path / "keep.tmp.txt").exists()
    assert "removed 3 temporary file(s)" in out.getvalue()


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
    train(make_task(), config(8), tmp_path, plot=False)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 9, "train_lo')              # what a kill mid-append leaves
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == list(range(1, 9))
    out = io.StringIO()
    train(make_task(), config(12), tmp_path, plot=False, resume=True, stream=out)
    assert "torn last line" in out.getvalue()
    with open(tmp_path / "metrics.jsonl") as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == list(range(1, 13))


def test_a_damaged_middle_metrics_line_names_the_file(tmp_path):
    train(make_task(), config(4), tmp_path, plot=False)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][:10]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFolderError, match=r"metrics.jsonl line 2"):
        train(make_task(), config(8), tmp_path, plot=False, resume=True)


def test_resume_with_other_steps_says_so(tmp_path):
    train(make_task(), config(8), tmp_path, plot=False)
    out = io.StringIO()
    train(make_task(), config(12), tmp_path, plot=False, resume=True, stream=out)
    assert "a run of 8 steps with --steps 12" in out.getvalue()
    task = make_task()
    original, calls = task.loss_and_backward, []

    def interrupted(batch):                  # Ctrl-C during step 6 of 8
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return original(batch)

    task.loss_and_backward = interrupted
    with pytest.raises(KeyboardInterrupt):
        train(task, config(8), tmp_path / "b", plot=False, stream=io.StringIO())
    same = io.StringIO()
    train(make_task(), config(8), tmp_path / "b", plot=False, resume=True, stream=same)
    assert "stretched" not in same.getvalue()
