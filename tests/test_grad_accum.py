"""Gradient accumulation in the shared loop: K micro-batches make the update of
one batch K times larger, counting every target once (not a mean of means)."""

import io

import numpy as np
import pytest

from npfm.checkpoint import load_checkpoint
from npfm.cli import main
from npfm.tasks.gpt import GPTTask
from npfm.models.gpt import GPT, preset
from npfm.tokenizers import ByteTokenizer
from npfm.train import TrainConfig, train

IGNORE = -100
V, T, B = 32, 8, 2


class FixedBatches(GPTTask):
    """A GPTTask whose training batches are given in advance (the rng is not used)."""

    def __init__(self, batches, dtype=np.float64, seed=0):
        model = GPT(preset("tiny", vocab_size=V, context=T, dropout=0.0), seed=seed, dtype=dtype)
        ids = np.random.default_rng(99).integers(0, V, size=200).astype(np.int64)
        super().__init__(model, ByteTokenizer(), ids, ids, batch_size=2, eval_batches=1)
        self.batches = list(batches)

    def train_batch(self, rng):
        return self.batches.pop(0)


class MeansOnly(FixedBatches):
    """A task without loss_sum_and_backward: the loop gives each micro-batch weight 1 / K."""
    loss_sum_and_backward = property()      # no getter: hasattr(task, ...) is False


def micro_batches(ignored, seed=0):
    """One (x, y) of B rows per entry of ``ignored``: that many targets set to IGNORE."""
    rng = np.random.default_rng(seed)
    out = []
    for n_ignored in ignored:
        x = rng.integers(0, V, size=(B, T))
        y = rng.integers(0, V, size=(B, T))
        y.reshape(-1)[rng.permutation(B * T)[:n_ignored]] = IGNORE
        out.append((x, y))
    return out


def concat(batches):
    return (np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]))


def run(task, k, out, **overrides):
    cfg = TrainConfig(**{**dict(steps=1, lr=1e-2, warmup=0, eval_every=1, log_every=1,
                                weight_decay=0.1), **overrides, "grad_accum": k})
    before = {n: p.data.copy() for n, p in task.model.named_parameters()}
    result = train(task, cfg, str(out), save=False, plot=False, stream=io.StringIO())
    grads = {n: p.grad.copy() for n, p in task.model.named_parameters()}
    params = {n: p.data.copy() for n, p in task.model.named_parameters()}
    return result, before, grads, params


def rel(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("ignored", [(0, 0, 0), (0, 9, 15), (3, 16, 0, 7)])
def test_k_micro_batches_equal_one_large_batch_in_float64(ignored, tmp_path):
    micro = micro_batches(ignored)
    big_res, big_before, big_grads, big_params = run(FixedBatches([concat(micro)]), 1, tmp_path)
    acc_res, acc_before, acc_grads, acc_params = run(FixedBatches(micro), len(micro), tmp_path)
    for n in big_grads:
        np.testing.assert_array_equal(acc_before[n], big_before[n])
        assert rel(acc_grads[n], big_grads[n]) < 1e-12, n                 # after clipping
        # the AdamW update (about lr = 1e-2 per entry) agrees to 1e-12 absolutely; not
        # relatively: the key bias's true gradient is 0, Adam divides rounding by rounding
        update_acc, update_big = acc_params[n] - acc_before[n], big_params[n] - big_before[n]
        assert np.abs(update_acc - update_big).max() < 1e-12, n
        np.testing.assert_allclose(acc_params[n], big_params[n], rtol=1e-12, atol=1e-12)
    assert acc_res.history[0]["train_loss"] == pytest.approx(big_res.history[0]["train_loss"],
                                                             rel=1e-12)
    assert any(np.abs(acc_params[n] - acc_before[n]).max() > 1e-4 for n in acc_params)  # it moved


def test_a_mean_of_means_would_differ(tmp_path):
    """The case above has power: weighting each micro-batch 1 / K gives other gradients,
    unless every micro-batch counts as many targets."""
    micro = micro_batches((0, 9, 15))
    _, _, big, _ = run(FixedBatches([concat(micro)]), 1, tmp_path, grad_clip=1e9)
    _, _, means, _ = run(MeansOnly(micro), 3, tmp_path, grad_clip=1e9)
    singles = [run(FixedBatches([m]), 1, tmp_path, grad_clip=1e9)[2] for m in micro]
    for n in big:
        np.testing.assert_allclose(means[n], sum(s[n] for s in singles) / 3, rtol=1e-12, atol=1e-15)
    assert max(rel(means[n], big[n]) for n in big) > 1e-2
    equal = micro_batches((4, 4, 4), seed=1)
    _, _, big, _ = run(FixedBatches([concat(equal)]), 1, tmp_path, grad_clip=1e9)
    _, _, means, _ = run(MeansOnly(equal), 3, tmp_path, grad_clip=1e9)
    assert max(rel(means[n], big[n]) for n in big) < 1e-12


def test_a_fully_ignored_micro_batch_adds_nothing(tmp_path):
    micro = micro_batches((5, B * T))
    _, _, alone, p_alone = run(FixedBatches(micro[:1]), 1, tmp_path)
    res, _, acc, p_acc = run(FixedBatches(micro), 2, tmp_path)
    for n in alone:
        assert rel(acc[n], alone[n]) < 1e-12, n
        np.testing.assert_allclose(p_acc[n], p_alone[n], rtol=1e-12, atol=1e-12)
    everything = micro_batches((B * T, B * T))
    res, before, grads, params = run(FixedBatches(everything), 2, tmp_path)
    assert res.history[0]["train_loss"] == 0.0
    assert not any(g.any() for g in grads.values())


def test_float32_accumulation_and_exact_resume(tmp_path):
    """float32 stays float32; a resumed accumulating run repeats the straight one."""
    text = "def add(a, b):\n    return a + b\n\n" * 60
    ids = ByteTokenizer().encode(text).astype(np.uint8)

    def task():
        model = GPT(preset("tiny", context=16, dropout=0.1), seed=0)
        return GPTTask(model, ByteTokenizer(), ids[:1500], ids[1500:], batch_size=2, eval_batches=1)

    cfg = TrainConfig(steps=6, lr=1e-2, warmup=1, eval_every=2, log_every=1, checkpoint_every=2,
                      seed=3, grad_accum=3)
    straight = train(task(), cfg, str(tmp_path / "a"), plot=False, stream=io.StringIO())
    t = task()
    calls, original = {"n": 0}, t.loss_sum_and_backward

    def interrupted(batch):
        calls["n"] += 1
        if calls["n"] == 14:                 # step 5, second micro-batch
            raise KeyboardInterrupt
        return original(batch)

    t.loss_sum_and_backward = interrupted
    with pytest.raises(KeyboardInterrupt):
        train(t, cfg, str(tmp_path / "b"), plot=False, stream=io.StringIO())
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz").step == 4
    t = task()
    resumed = train(t, cfg, str(tmp_path / "b"), resume=True, plot=False, stream=io.StringIO())
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    assert all(p.data.dtype == p.grad.dtype == np.float32 for p in t.model.parameters())


@pytest.mark.parametrize("k", [0, -2, 1.5, True])
def test_bad_grad_accum(k):
    with pytest.raises(ValueError, match=r"grad_accum \(--grad-accum\) must be an integer >= 1"):
        TrainConfig(grad_accum=k)


def test_cli_grad_accum(tmp_path, capsys):
    assert main(["train", "gpt", "--grad-accum", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("npfm: error: --grad-accum must be a positive integer, got 0")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.py").write_text("".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(200)))
    out = tmp_path / "run"
    assert main(["train", "gpt", "--preset", "tiny", "--data", str(data), "--steps", "2",
                 "--eval-every", "2", "--grad-accum", "2", "--batch-size", "4", "--out", str(out),
                 "--sample-tokens", "0"]) == 0
    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt.extra["train_config"]["grad_accum"] == 2 and ckpt.step == 2
