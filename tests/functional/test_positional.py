"""Positions: the sinusoidal table, learned and fixed Modules, offsets, errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.positional import (positional_embedding_backward,
                                        positional_embedding_forward, sinusoidal_positions)
from npfm.nn.positional import PositionalEmbedding, SinusoidalPositionalEncoding


@pytest.mark.parametrize("T, C", [(1, 1), (5, 4), (7, 5), (3, 9)])
def test_sinusoidal_table_matches_the_formula(T, C):
    table = sinusoidal_positions(T, C, dtype=np.float64)
    assert table.shape == (T, C)
    for t in range(T):
        for c in range(C):
            angle = t / 10000 ** ((c - c % 2) / C)
            expected = math.sin(angle) if c % 2 == 0 else math.cos(angle)
            assert abs(table[t, c] - expected) < 1e-12, (t, c)
    assert sinusoidal_positions(T, C).dtype == np.float32


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 4), C=st.integers(1, 5), extra=st.integers(0, 3),
       seed=st.integers(0, 2**16), data=st.data())
def test_learned_positions_pair_and_module_gradients(B, T, C, extra, seed, data):
    rng = np.random.default_rng(seed)
    max_len = T + extra
    offset = data.draw(st.integers(0, extra))
    x, W = rng.standard_normal((B, T, C)), rng.standard_normal((max_len, C))
    errors = check_pair(positional_embedding_forward, positional_embedding_backward, [x, W],
                        offset=offset, seed=seed)
    assert max(errors.values()) < TOLERANCE, errors
    pos = PositionalEmbedding(max_len, C, std=1.0, rng=rng)
    report = check_module(pos, x, offset=offset, seed=seed)
    assert report.passed, str(report)
    fixed = check_module(SinusoidalPositionalEncoding(max_len, C), x, offset=offset, seed=seed)
    assert fixed.passed and [r.name for r in fixed.rows] == ["input[0]"], str(fixed)


def test_learned_gradient_lands_on_the_offset_rows():
    pos = PositionalEmbedding(6, 2).astype(np.float64)
    pos.zero_grad()
    dy = np.arange(12.0).reshape(2, 3, 2)
    pos(np.zeros((2, 3, 2)), offset=2)
    assert pos.backward(dy) is dy
    np.testing.assert_array_equal(pos.W.grad[2:5], dy.sum(0))
    assert not pos.W.grad[:2].any() and not pos.W.grad[5:].any()
    _, cache = positional_embedding_forward(np.zeros((2, 3, 2)), pos.W.data, offset=2)
    np.testing.assert_array_equal(positional_embedding_backward(dy, cache)[1], pos.W.grad)


def test_offset_decoding_equals_the_whole_sequence():
    for pos in (PositionalEmbedding(8, 3, std=1.0), SinusoidalPositionalEncoding(8, 3)):
        x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
        whole = pos(x)
        pieces = [pos(x[:, :3]), pos(x[:, 3:4], offset=3), pos(x[:, 4:], offset=4)]
        np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


def test_positions_state_dtype_and_cast():
    pos = PositionalEmbedding(4, 3, rng=np.random.default_rng(1))
    assert not pos.W.decay
    other = PositionalEmbedding(4, 3, rng=np.random.default_rng(2))
    other.load_state_dict(pos.state_dict())
    np.testing.assert_array_equal(other.W.data, pos.W.data)
    fixed = SinusoidalPositionalEncoding(4, 3)
    assert fixed.state_dict() == {} and fixed.num_parameters() == 0
    x = np.ones((1, 2, 3), np.float32)
    for module in (pos, fixed):
        y = module(x)
        assert y.dtype == module.backward(y).dtype == np.float32
    assert pos.W.grad.dtype == np.float32
    fixed.astype(np.float64)
    assert fixed(x.astype(np.float64)).dtype == np.float64
    np.testing.assert_array_equal(fixed.table, sinusoidal_positions(4, 3, np.float64))


def test_positions_bad_input():
    for pos in (PositionalEmbedding(4, 3), SinusoidalPositionalEncoding(4, 3)):
        with pytest.raises(ValueError, match="longer than the position table.*max_len 4"):
            pos(np.zeros((1, 5, 3), np.float32))
        with pytest.raises(ValueError, match=r"offset 3 \+ length 2.*max_len 4"):
            pos(np.zeros((1, 2, 3), np.float32), offset=3)
        with pytest.raises(ValueError, match="last dimension 2"):
            pos(np.zeros((1, 2, 2), np.float32))
        with pytest.raises(ValueError, match="offset must be a non-negative integer"):
            pos(np.zeros((1, 2, 3), np.float32), offset=-1)
    with pytest.raises(ValueError, match="T >= 0 and C >= 1"):
        sinusoidal_positions(3, 0)
