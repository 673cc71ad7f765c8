"""npfm/nn/data_parallel.py: a training batch in micro-batches, one replica per thread.

The split forward and backward are the whole batch's within float rounding;
they give the same bits on one thread, two or three; the replicas share the
model's weights (and follow them when they change) but never show up among
its Parameters; and the batch runs whole wherever splitting would change the
computation (textbook floor, eval mode, dropout, KV caches).
"""

import numpy as np
import pytest

import npfm
from npfm.fast.threads import num_threads, set_num_threads
from npfm.models.gpt import GPT, preset
from npfm.nn import add_lora, data_parallel
from npfm.optim import AdamW


@pytest.fixture
def split_small(monkeypatch):
    """Split even the tiny test batches (one token per micro-batch is enough)."""
    monkeypatch.setattr(data_parallel, "MIN_TOKENS", 1)
    previous = num_threads()
    yield
    set_num_threads(previous)


def _ids(B=8, seed=4):
    config = preset("tiny")
    return np.random.default_rng(seed).integers(0, config.vocab_size, size=(B, config.context))


def _step(model, ids):
    """Logits and every Parameter's grad after a forward and backward with a fixed dy."""
    model.zero_grad()
    logits = model(ids)
    model.backward(np.cos(logits))                            # any fixed upstream gradient
    return logits, [p.grad.copy() for p in model.parameters()]


def _whole(model, ids, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(data_parallel, "MIN_TOKENS", 10**9)
        return _step(model, ids)


def test_the_split_step_is_the_whole_batch_step(split_small, monkeypatch):
    model = GPT(preset("tiny")).astype(np.float64)
    ids = _ids()
    logits, grads = _step(model, ids)
    assert data_parallel.ran_split(model)
    whole_logits, whole_grads = _whole(model, ids, monkeypatch)
    assert not data_parallel.ran_split(model)
    np.testing.assert_allclose(logits, whole_logits, rtol=0, atol=1e-13)
    for (name, _), g, w in zip(model.named_parameters(), grads, whole_grads):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12 * np.abs(w).max(), err_msg=name)


def test_the_split_step_gives_the_same_bits_on_any_number_of_threads(split_small):
    ids = _ids(B=9)                                           # micro-batches of 5 and 4
    results = []
    for n in (1, 2, 3):
        set_num_threads(n)
        results.append(_step(GPT(preset("tiny")), ids))
    for logits, grads in results[1:]:
        np.testing.assert_array_equal(logits, results[0][0])
        for g, want in zip(grads, results[0][1]):
            np.testing.assert_array_equal(g, want)


def test_the_replicas_share_the_weights_and_stay_out_of_the_parameters(split_small):
    model = GPT(preset("tiny"))
    names = [name for name, _ in model.named_parameters()]
    _step(model, _ids())
    assert [name for name, _ in model.named_parameters()] == names
    assert sorted(model.state_dict()) == sorted(names)
    replicas = model._split.replicas
    assert len(replicas) == data_parallel.MICRO_BATCHES
    for replica in replicas:
        for p, q in zip(model.parameters(), replica.parameters()):
            assert q.data is p.data and q.grad is not p.grad   # one weight array, grads of its own


def _assert_split_is_whole(model, ids, monkeypatch):
    logits, grads = _step(model, ids)
    assert data_parallel.ran_split(model)
    whole_logits, whole_grads = _whole(model, ids, monkeypatch)
    np.testing.assert_allclose(logits, whole_logits, rtol=0, atol=1e-13 * np.abs(whole_logits).max())
    scale = max(np.abs(w).max() for w in whole_grads)
    for g, w in zip(grads, whole_grads):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12 * scale)


def test_the_split_forward_follows_changed_weights(split_small, monkeypatch):
    model = GPT(preset("tiny")).astype(np.float64)
    ids = _ids()
    _step(model, ids)                                          # the replicas are made
    AdamW(model.parameters(), lr=0.1).step()                   # weights changed in place
    model.load_state_dict({k: v * 1.5 for k, v in model.state_dict().items()})   # copied in
    for p in model.parameters():
        p.data = p.data[::-1].copy()                           # new arrays of the same shapes
    _assert_split_is_whole(model, ids, monkeypatch)
    model.astype(np.float32).astype(np.float64)                # cast: new arrays again
    add_lora(model, r=2, freeze=True)                          # new Parameters, the rest frozen
    rng = np.random.default_rng(5)
    for p in model.parameters():
        if p.trainable:                                        # LoRA's A and B (B starts at 0)
            p.data[...] = rng.standard_normal(p.shape) * 0.1
    _assert_split_is_whole(model, ids, monkeypatch)


def test_backward_twice_adds_twice_and_a_wrong_dy_is_refused(split_small):
    model = GPT(preset("tiny")).astype(np.float64)
    ids = _ids()
    logits, once = _step(model, ids)
    model.backward(np.cos(logits))
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="the output of forward had shape"):
        model.backward(np.cos(logits[:5]))


@pytest.mark.parametrize("case", ["textbook floor", "eval mode", "dropout", "one sequence",
                                  "KV caches", "few tokens"])
def test_the_batch_runs_whole_where_a_split_would_change_it(case, split_small, monkeypatch):
    config = preset("tiny", dropout=0.1 if case == "dropout" else 0.0)
    model = GPT(config)
    ids = _ids(B=1 if case == "one sequence" else 8)
    if case == "eval mode":
        model.eval()
    if case == "few tokens":
        monkeypatch.setattr(data_parallel, "MIN_TOKENS", ids.size // 2 + 1)
    if case == "textbook floor":
        with npfm.reference():
            model(ids)
    elif case == "KV caches":
        model(ids, kv_caches=model.new_kv_caches(len(ids)))
    else:
        model(ids)
    assert not data_parallel.ran_split(model)
    assert "_split" not in vars(model) or not vars(model)["_split"].replicas
