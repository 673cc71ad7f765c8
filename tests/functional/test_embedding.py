"""Embedding: gradients with repeated ids, tied tables, state, dtype, id errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.core import Module
from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.fast.embedding import scatter_add_rows
from npfm.functional.embedding import embedding_backward, embedding_forward
from npfm.nn.embedding import Embedding
from npfm.functional.linear import linear_backward, linear_forward

id_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple)


@settings(max_examples=25, deadline=None)
@given(shape=id_shapes, V=st.integers(1, 5), C=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_embedding_pair_gradient(shape, V, C, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, shape)                       # small V: ids repeat
    errors = check_pair(embedding_forward, embedding_backward, [ids, rng.standard_normal((V, C))],
                        seed=seed)
    assert list(errors) == [1] and errors[1] < TOLERANCE, errors


@settings(max_examples=15, deadline=None)
@given(shape=id_shapes, V=st.integers(1, 5), C=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_embedding_module_gradient(shape, V, C, seed):
    rng = np.random.default_rng(seed)
    report = check_module(Embedding(V, C, std=1.0, rng=rng), rng.integers(0, V, shape), seed=seed)
    assert report.passed and [r.name for r in report.rows] == ["W"], str(report)


def test_repeated_ids_sum_their_gradients():
    W = np.zeros((4, 2))
    ids = np.array([[1, 3, 1], [1, 0, 3]])
    dy = np.arange(12.0).reshape(2, 3, 2)
    _, cache = embedding_forward(ids, W)
    dW = embedding_backward(dy, cache)
    expected = np.zeros((4, 2))
    for i, v in enumerate(ids.reshape(-1)):
        expected[v] += dy.reshape(-1, 2)[i]
    np.testing.assert_array_equal(dW, expected)
    np.testing.assert_array_equal(dW[1], dy[0, 0] + dy[0, 2] + dy[1, 0])
    np.testing.assert_array_equal(scatter_add_rows(np.ones((4, 2)), ids.reshape(-1), dy.reshape(-1, 2)),
                                  expected + 1)


def test_embedding_module_returns_none_and_accumulates():
    emb = Embedding(5, 3).astype(np.float64)
    emb.zero_grad()
    ids = np.array([[0, 2, 2]])
    emb(ids)
    assert emb.backward(np.ones((1, 3, 3))) is None
    emb(np.array([2]))
    emb.backward(np.ones((1, 3)))
    np.testing.assert_array_equal(emb.W.grad[:, 0], [1, 0, 3, 0, 0])


class TwoLookups(Module):
    """One table used by two Embeddings and, transposed, as an output head (GPT's tying)."""

    def __init__(self, V, C, rng):
        self.a = Embedding(V, C, std=1.0, rng=rng)
        self.b = Embedding(V, C, rng=rng)
        self.b.W = self.a.W

    def forward(self, ids):
        h = self.a(ids) * self.b(ids[..., ::-1])
        logits, self._cache = linear_forward(h, self.a.W.data.T)
        return logits

    def backward(self, dlogits):
        dh, dWT, _ = linear_backward(dlogits, self._saved())
        self.a.W.grad += dWT.T
        self.a.backward(dh * self.b.W.data[self.b._saved()[0]])
        self.b.backward(dh * self.a.W.data[self.a._saved()[0]])


def test_tied_table_collects_every_gradient():
    rng = np.random.default_rng(0)
    model = TwoLookups(6, 3, rng)
    assert [n for n, _ in model.named_parameters()] == ["a.W"]
    report = check_module(model, rng.integers(0, 6, (2, 4)))
    assert report.passed, str(report)


def test_embedding_state_dtype_and_decay():
    emb = Embedding(7, 3, rng=np.random.default_rng(1))
    assert not emb.W.decay and emb.W.dtype == np.float32
    other = Embedding(7, 3, rng=np.random.default_rng(2))
    other.load_state_dict(emb.state_dict())
    np.testing.assert_array_equal(other.W.data, emb.W.data)
    y = emb(np.array([[1, 2]], dtype=np.int32))
    assert y.dtype == np.float32 and y.shape == (1, 2, 3)
    emb.backward(np.ones_like(y))
    assert emb.W.grad.dtype == np.float32
    _, cache = embedding_forward(np.array([1, 1]), emb.W.data)
    assert embedding_backward(np.ones((2, 3), np.float32), cache).dtype == np.float32


def test_embedding_bad_ids():
    emb = Embedding(10, 4)
    with pytest.raises(TypeError, match=r"Embedding\(10, 4\): ids must be integers, got dtype float"):
        emb(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="ids must be integers"):
        emb(np.array([True, False]))
    with pytest.raises(ValueError, match=r"id 12 outside the vocabulary \[0, 10\)"):
        emb(np.array([[3, 12]]))
    with pytest.raises(ValueError, match=r"id -1 outside the vocabulary \[0, 10\)"):
        emb(np.array([-1]))
