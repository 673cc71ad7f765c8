"""Parameter and Module: naming, sharing, state, dtype, modes."""

import numpy as np
import pytest

from npfm.core import Module, Parameter, check_ids


class Leaf(Module):
    def __init__(self, n, shared=None):
        self.w = Parameter(np.arange(n, dtype=np.float32))
        self.tied = shared

    def forward(self, x):
        self._cache = x
        return x * self.w.data

    def backward(self, dy):
        x = self._saved()
        self.w.grad += (dy * x).sum(axis=0)
        return dy * self.w.data


class Tree(Module):
    def __init__(self):
        self.a = Leaf(3)
        self.blocks = [Leaf(3), Leaf(2)]
        self.shared = self.a.w                  # the same Parameter under a second name


def test_named_parameters_are_dotted_stable_and_unique():
    tree = Tree()
    names = [n for n, _ in tree.named_parameters()]
    assert names == ["a.w", "blocks.0.w", "blocks.1.w"]
    assert len(tree.parameters()) == 3
    assert tree.num_parameters() == 8


def test_tied_parameter_collects_both_gradients():
    leaf = Leaf(3)
    x1, x2 = np.ones((2, 3), np.float32), 2 * np.ones((1, 3), np.float32)
    leaf.zero_grad()
    leaf(x1)
    leaf.backward(np.ones_like(x1))
    leaf(x2)
    leaf.backward(np.ones_like(x2))
    np.testing.assert_array_equal(leaf.w.grad, [4, 4, 4])
    leaf.zero_grad()
    assert not leaf.w.grad.any()


def test_state_dict_round_trips_exactly():
    t1, t2 = Tree(), Tree()
    for p in t1.parameters():
        p.data[:] = np.random.default_rng(0).standard_normal(p.shape)
    t2.load_state_dict(t1.state_dict())
    for (n1, p1), (n2, p2) in zip(t1.named_parameters(), t2.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)
    assert t2.shared is t2.a.w


def test_load_state_dict_errors_name_the_key():
    tree = Tree()
    state = tree.state_dict()
    missing = dict(state)
    del missing["blocks.1.w"]
    with pytest.raises(ValueError, match="missing keys.*blocks.1.w"):
        tree.load_state_dict(missing)
    with pytest.raises(ValueError, match="unexpected keys.*extra"):
        tree.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="'a.w' has shape \\(4,\\)"):
        tree.load_state_dict({**state, "a.w": np.zeros(4)})
    assert tree.load_state_dict(missing, strict=False) == (["blocks.1.w"], [])


def test_astype_and_modes():
    tree = Tree().astype(np.float64)
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in tree.parameters())
    tree.eval()
    assert not tree.training and not tree.blocks[1].training
    tree.train()
    assert tree.a.training


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(ValueError, match="Leaf.backward called before forward"):
        Leaf(2).backward(np.ones(2))


def test_parameter_rejects_integers_and_sets_decay():
    with pytest.raises(TypeError, match="float"):
        Parameter(np.arange(3))
    assert Parameter(np.zeros((2, 2))).decay and not Parameter(np.zeros(2)).decay
    assert not Parameter(np.zeros((2, 2)), decay=False).decay


def test_check_ids():
    with pytest.raises(TypeError, match="integers"):
        check_ids(np.array([0.5]), 4)
    with pytest.raises(ValueError, match="id 7 outside the vocabulary \\[0, 4\\)"):
        check_ids(np.array([1, 7]), 4)
    assert check_ids([0, 3], 4).tolist() == [0, 3]
