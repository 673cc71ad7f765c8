"""LoRA: gradients, B = 0 equals the base Linear, merge, frozen Parameters
(optimizers, param_groups, clipping, the training loop), add_lora on a GPT, torch."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.core import Parameter
from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.nn.linear import Linear
from npfm.functional.lora import lora_backward, lora_forward
from npfm.nn.lora import LoRALinear, add_lora, merge_lora
from npfm.optim import SGD, AdamW, clip_grad_norm, param_groups

lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@settings(max_examples=25, deadline=None)
@given(lead=lead_shapes, C_in=st.integers(1, 5), C_out=st.integers(1, 5), r=st.integers(1, 3),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_lora_pair_gradients(lead, C_in, C_out, r, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, C_in))
    W, A, B = (rng.standard_normal(s) for s in ((C_in, C_out), (C_in, r), (r, C_out)))
    b = rng.standard_normal(C_out) if bias else None
    errors = check_pair(lora_forward, lora_backward, [x, W, b, A, B], seed=seed, scale=1.7)
    assert len(errors) == (5 if bias else 4) and max(errors.values()) < TOLERANCE, errors


@settings(max_examples=15, deadline=None)
@given(lead=lead_shapes, C_in=st.integers(1, 4), C_out=st.integers(1, 4), r=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_lora_module_gradients_with_everything_trainable(lead, C_in, C_out, r, seed):
    rng = np.random.default_rng(seed)
    layer = LoRALinear(Linear(C_in, C_out, std=0.5, rng=rng), r, alpha=2.0, rng=rng)
    layer.B.data[:] = rng.standard_normal(layer.B.shape)      # B = 0 would hide dA
    layer.W.trainable = layer.b.trainable = True
    report = check_module(layer, rng.standard_normal((*lead, C_in)), seed=seed)
    assert report.passed and len(report.rows) == 5, str(report)


def test_lora_frozen_base_gets_no_gradient():
    rng = np.random.default_rng(1)
    layer = LoRALinear(Linear(3, 4, rng=rng), r=2, rng=rng)
    layer.B.data[:] = rng.standard_normal((2, 4))
    assert not layer.W.trainable and not layer.b.trainable
    assert layer.A.trainable and layer.B.trainable
    layer(rng.standard_normal((5, 3)))
    layer.backward(rng.standard_normal((5, 4)))
    assert not layer.W.grad.any() and not layer.b.grad.any()
    assert layer.A.grad.any() and layer.B.grad.any()
    report = check_module(layer, rng.standard_normal((2, 3)))            # frozen: not checked
    assert report.passed and [r.name for r in report.rows] == ["input[0]", "A", "B"], str(report)
    assert not layer.W.trainable and layer.W.dtype == np.float64          # astype keeps the flag


@settings(max_examples=20, deadline=None)
@given(C_in=st.integers(1, 6), C_out=st.integers(1, 6), r=st.integers(1, 4), bias=st.booleans(),
       alpha=st.sampled_from([1.0, 8.0, 16.0]), seed=st.integers(0, 2**16))
def test_lora_starts_as_the_base_linear_and_merge_is_exact(C_in, C_out, r, bias, alpha, seed):
    rng = np.random.default_rng(seed)
    base = Linear(C_in, C_out, bias=bias, std=0.3, rng=rng, dtype=np.float64)
    if bias:
        base.b.data[:] = rng.standard_normal(C_out)
    x = rng.standard_normal((2, 3, C_in))
    expected = base(x)
    layer = LoRALinear(base, r, alpha=alpha, rng=rng)
    assert layer.scale == alpha / r and not layer.B.data.any()
    np.testing.assert_array_equal(layer(x), expected)                     # B = 0
    layer.B.data[:] = rng.standard_normal((r, C_out))
    y = layer(x)
    np.testing.assert_allclose(y, expected + (alpha / r) * (x @ layer.A.data) @ layer.B.data,
                               rtol=1e-12, atol=1e-12)
    merged = layer.merge()
    assert type(merged) is Linear and merged.W.trainable and (merged.b is None) == (not bias)
    np.testing.assert_allclose(merged(x), y, rtol=1e-12, atol=1e-12)
    assert merged.W.data is not layer.W.data                               # the base is untouched
    np.testing.assert_allclose(layer(x), y)


def test_frozen_parameters_and_the_optimizers():
    rng = np.random.default_rng(2)
    frozen = Parameter(rng.standard_normal((3, 3)), trainable=False)
    free = Parameter(rng.standard_normal((3, 3)))
    for p in (frozen, free):
        p.grad[:] = rng.standard_normal((3, 3))
    before = frozen.data.copy()
    groups = param_groups([frozen, free], 0.1)
    assert [len(g["params"]) for g in groups] == [1] and groups[0]["params"][0] is free
    for opt in (AdamW([frozen, free], lr=0.1, weight_decay=0.5),
                SGD([frozen, free], lr=0.1, momentum=0.9, weight_decay=0.5)):
        moved = free.data.copy()
        opt.step()
        np.testing.assert_array_equal(frozen.data, before)               # no update, no decay
        assert not np.allclose(free.data, moved)
    # clipping measures and scales only what trains
    frozen_grad, free_norm = frozen.grad.copy(), np.linalg.norm(free.grad)
    assert clip_grad_norm([frozen, free], 1e-3) == pytest.approx(free_norm, rel=1e-12)
    np.testing.assert_array_equal(frozen.grad, frozen_grad)
    assert np.linalg.norm(free.grad) == pytest.approx(1e-3, rel=1e-5)


def test_clip_grad_norm_ignores_a_frozen_gradient():
    a = Parameter(np.zeros(2))
    a.grad[:] = [3.0, 4.0]
    b = Parameter(np.zeros(2), trainable=False)
    b.grad[:] = [100.0, 0.0]
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(5.0)
    b.trainable = True
    assert clip_grad_norm([a, b], 1e9) == pytest.approx(np.hypot(5.0, 100.0))


def tiny_gpt(dtype=np.float64):
    from npfm.models.gpt import GPT, preset
    return GPT(preset("tiny", vocab_size=32, context=8), seed=0, dtype=dtype)


def test_add_lora_on_a_gpt_trains_only_the_adapters(tmp_path):
    from npfm.tasks.gpt import GPTTask
    from npfm.tokenizers import ByteTokenizer
    from npfm.train import TrainConfig, train
    model = tiny_gpt(np.float32)
    n_before = model.num_parameters()
    ids = np.random.default_rng(0).integers(0, 32, size=2000).astype(np.int64)
    x = ids[None, :8]
    logits_before = model.forward(x)
    names = add_lora(model, r=2, alpha=4.0, targets=["fc1", "ffn.fc2"])
    assert names == ["blocks.0.ffn.fc1", "blocks.0.ffn.fc2", "blocks.1.ffn.fc1", "blocks.1.ffn.fc2"]
    assert isinstance(model.blocks[1].ffn.fc2, LoRALinear)
    np.testing.assert_array_equal(model.forward(x), logits_before)        # B = 0: same model
    trained = [n for n, p in model.named_parameters() if p.trainable]
    assert trained == [f"{m}.{ab}" for m in names for ab in ("A", "B")]
    assert sum(p.size for p in model.parameters() if p.trainable) == 2 * (2 * (16 + 64) * 2)
    assert model.num_parameters() == n_before + 2 * 2 * 2 * (16 + 64)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    task = GPTTask(model, ByteTokenizer(), ids, ids, batch_size=4, eval_batches=1)
    train(task, TrainConfig(steps=2, lr=1e-2, warmup=0, eval_every=2, log_every=1), str(tmp_path),
          save=False, plot=False, stream=io.StringIO())
    for n, p in model.named_parameters():
        changed = not np.array_equal(p.data, before[n])
        assert changed == p.trainable, n                                 # only A and B moved
    y = model.forward(x)
    assert not np.allclose(y, logits_before)
    assert merge_lora(model) == names and type(model.blocks[0].ffn.fc1) is Linear
    np.testing.assert_allclose(model.forward(x), y, rtol=1e-4, atol=1e-5)


def test_add_lora_every_linear_and_state_dict_names():
    model = tiny_gpt()
    state = model.state_dict()
    add_lora(model, r=1)
    names = [n for n, _ in model.named_parameters()]
    assert "blocks.0.ffn.fc1.W" in names and "blocks.0.ffn.fc1.A" in names
    missing, unexpected = model.load_state_dict(state, strict=False)    # a base checkpoint loads
    assert not unexpected and all(n.endswith((".A", ".B")) for n in missing) and len(missing) == 8


def test_lora_errors():
    with pytest.raises(ValueError, match="rank r must be a positive integer"):
        LoRALinear(Linear(2, 3), r=0)
    with pytest.raises(TypeError, match="expected an npfm Linear"):
        LoRALinear(Parameter(np.zeros((2, 3))), r=1)
    with pytest.raises(ValueError, match=r"LoRALinear\(2, 3, r=1\): x has last dimension 4"):
        LoRALinear(Linear(2, 3), r=1)(np.ones((1, 4)))
    with pytest.raises(ValueError, match="target 'attn' matches no Linear of GPT"):
        add_lora(tiny_gpt(), r=2, targets=["attn"])
    with pytest.raises(TypeError, match="the model itself is a Linear"):
        add_lora(Linear(2, 2), r=1)


def test_lora_keeps_float32():
    rng = np.random.default_rng(3)
    layer = LoRALinear(Linear(4, 5, rng=rng), r=2, alpha=16, rng=rng)
    assert layer.A.dtype == layer.B.dtype == np.float32
    x = rng.standard_normal((2, 4)).astype(np.float32)
    assert layer(x).dtype == np.float32
    assert layer.backward(np.ones((2, 5), np.float32)).dtype == np.float32
    assert layer.A.grad.dtype == np.float32 and layer.merge().W.dtype == np.float32


def test_lora_against_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5))
    arrays = [rng.standard_normal(s) for s in ((4, 5), (5,), (4, 2), (2, 5))]
    xt, Wt, bt, At, Bt = (torch.tensor(a, requires_grad=True) for a in (x, *arrays))
    (xt @ Wt + bt + 0.75 * (xt @ At) @ Bt).backward(torch.tensor(dy))
    y, cache = lora_forward(x, *arrays, 0.75)
    for ours, t in zip(lora_backward(dy, cache), (xt, Wt, bt, At, Bt)):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-12, atol=1e-13)
