"""TransformerBlock (pre-LN and post-LN, causal or not) and FeedForward."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npfm.gradcheck import check_module
from npfm.nn import FeedForward, TransformerBlock


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("causal", [True, False])
def test_block_gradients(norm_first, causal):
    rng = np.random.default_rng(0)
    block = TransformerBlock(8, 2, 12, causal=causal, norm_first=norm_first, std=0.3, rng=rng)
    x = rng.standard_normal((2, 4, 8))
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    report = check_module(block, x, mask=mask)
    assert report.passed, str(report)
    assert len(report.rows) == 1 + len(block.parameters())


@settings(max_examples=10, deadline=None)
@given(T=st.integers(1, 4), H=st.sampled_from([1, 2]), D=st.sampled_from([3, 5]),
       activation=st.sampled_from(["gelu", "gelu_exact", "relu"]), norm_first=st.booleans(),
       seed=st.integers(0, 1000))
def test_block_gradients_hypothesis(T, H, D, activation, norm_first, seed):
    # widths 3, 5, 6, 10 (odd ones included); not 2: a LayerNorm over two channels
    # outputs +-1 whatever its input, so its gradient is rounding noise
    rng = np.random.default_rng(seed)
    block = TransformerBlock(H * D, H, 5, causal=True, norm_first=norm_first,
                             activation=activation, std=0.4, rng=rng)
    x = rng.standard_normal((2, T, H * D))
    report = check_module(block, x, seed=seed)
    assert report.passed, str(report)


def test_feedforward_gradients():
    rng = np.random.default_rng(1)
    report = check_module(FeedForward(6, 10, activation="gelu_exact", std=0.5, rng=rng),
                          rng.standard_normal((3, 6)))
    assert report.passed, str(report)


def test_feedforward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        FeedForward(4, 8, activation="swish")


def test_block_dropout_eval_is_deterministic_and_train_is_not():
    rng = np.random.default_rng(2)
    block = TransformerBlock(8, 2, 16, dropout=0.5, rng=rng)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    block.eval()
    np.testing.assert_array_equal(block(x), block(x))
    block.train()
    assert not np.array_equal(block(x), block(x))
    y = block(x)
    assert y.dtype == np.float32 and block.backward(np.ones_like(y)).dtype == np.float32


def test_block_names_are_stable():
    names = [n for n, _ in TransformerBlock(8, 2, 16).named_parameters()]
    assert names == ["ln1.gamma", "ln1.beta", "attn.W_qkv", "attn.b_qkv", "attn.W_out", "attn.b_out",
                     "ln2.gamma", "ln2.beta", "ffn.fc1.W", "ffn.fc1.b", "ffn.fc2.W", "ffn.fc2.b"]
