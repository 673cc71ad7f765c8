"""Each pair against PyTorch autograd in float64, to 1e-10 absolute."""

import numpy as np
import pytest

from npfm.functional.activations import gelu_backward, gelu_forward, relu_backward, relu_forward
from npfm.functional.dropout import dropout_backward, dropout_forward
from npfm.functional.embedding import embedding_backward, embedding_forward
from npfm.functional.layernorm import layernorm_backward, layernorm_forward
from npfm.functional.linear import linear_backward, linear_forward
from npfm.functional.softmax import softmax_backward, softmax_forward
from npfm.functional.cross_entropy import cross_entropy_backward, cross_entropy_forward

torch = pytest.importorskip("torch")
F = torch.nn.functional
ATOL = 1e-10


def tensors(*arrays):
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


def assert_close(ours, theirs):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=ATOL)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, bias):
    x, W, b = rng.standard_normal((2, 3, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    dy = rng.standard_normal((2, 3, 4))
    y, cache = linear_forward(x, W, b if bias else None)
    dx, dW, db = linear_backward(dy, cache)
    tx, tW, tb = tensors(x, W, b)
    ty = F.linear(tx, tW.T, tb if bias else None)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty)
    assert_close(dx, tx.grad)
    assert_close(dW, tW.grad)
    if bias:
        assert_close(db, tb.grad)


def test_embedding(rng):
    ids, W = rng.integers(0, 6, (3, 7)), rng.standard_normal((6, 4))
    dy = rng.standard_normal((3, 7, 4))
    y, cache = embedding_forward(ids, W)
    (tW,) = tensors(W)
    ty = F.embedding(torch.tensor(ids), tW)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty)
    assert_close(embedding_backward(dy, cache), tW.grad)


def test_layernorm(rng):
    x, gamma, beta = rng.standard_normal((2, 3, 8)) * 3 + 1, rng.standard_normal(8), rng.standard_normal(8)
    dy = rng.standard_normal((2, 3, 8))
    y, cache = layernorm_forward(x, gamma, beta, eps=1e-5)
    dx, dgamma, dbeta = layernorm_backward(dy, cache)
    tx, tg, tb = tensors(x, gamma, beta)
    ty = F.layer_norm(tx, (8,), tg, tb, eps=1e-5)
    ty.backward(torch.tensor(dy))
    for ours, theirs in [(y, ty), (dx, tx.grad), (dgamma, tg.grad), (dbeta, tb.grad)]:
        assert_close(ours, theirs)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu(rng, approximate):
    x = np.concatenate([rng.standard_normal(200) * 3, [-12.0, -6.0, 0.0, 6.0, 12.0]])
    dy = rng.standard_normal(x.shape)
    y, cache = gelu_forward(x, approximate)
    (tx,) = tensors(x)
    ty = F.gelu(tx, approximate=approximate)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty)
    assert_close(gelu_backward(dy, cache), tx.grad)


def test_relu(rng):
    x = np.concatenate([rng.standard_normal(50), [0.0]])
    dy = rng.standard_normal(x.shape)
    y, cache = relu_forward(x)
    (tx,) = tensors(x)
    ty = F.relu(tx)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty)
    assert_close(relu_backward(dy, cache), tx.grad)


def test_softmax(rng):
    x, dy = rng.standard_normal((2, 3, 6)) * 4, rng.standard_normal((2, 3, 6))
    y, cache = softmax_forward(x)
    (tx,) = tensors(x)
    ty = F.softmax(tx, dim=-1)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty)
    assert_close(softmax_backward(dy, cache), tx.grad)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy_with_ignore_index(rng, scale):
    logits = rng.standard_normal((3, 4, 7)) * scale
    targets = rng.integers(0, 7, (3, 4))
    targets[0, 1] = targets[2, 3] = -100
    loss, cache = cross_entropy_forward(logits, targets, ignore_index=-100)
    dlogits = cross_entropy_backward(0.7, cache)
    (tz,) = tensors(logits)
    tloss = F.cross_entropy(tz.reshape(-1, 7), torch.tensor(targets).reshape(-1), ignore_index=-100)
    (tloss * 0.7).backward()
    np.testing.assert_allclose(float(loss), tloss.item(), rtol=0, atol=ATOL * scale)
    assert_close(dlogits, tz.grad)


def test_dropout_backward_with_the_same_mask(rng):
    x, dy = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    y, cache = dropout_forward(x, 0.4, np.random.default_rng(1))
    keep, _ = cache
    (tx,) = tensors(x)
    ty = tx * torch.tensor(keep, dtype=torch.float64) / (1 - 0.4)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty)
    assert_close(dropout_backward(dy, cache), tx.grad)
