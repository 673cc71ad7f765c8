"""RoPE: gradients, rotation properties, offsets (a KV cache), dtype, errors, torch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.gradcheck import TOLERANCE, check_module, check_pair
from npfm.functional.rope import rope_backward, rope_forward, rope_tables, rotate_half
from npfm.nn.rope import RoPE

lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
even = st.integers(1, 4).map(lambda h: 2 * h)              # D = 2 .. 8


@settings(max_examples=30, deadline=None)
@given(lead=lead_shapes, T=st.integers(1, 5), D=even, offset=st.integers(0, 50),
       base=st.sampled_from([10000.0, 10.0, 500000.0]), seed=st.integers(0, 2**16))
def test_rope_pair_and_module_gradients(lead, T, D, offset, base, seed):
    x = np.random.default_rng(seed).standard_normal((*lead, T, D))
    errors = check_pair(rope_forward, rope_backward, [x], seed=seed, offset=offset, base=base)
    assert errors[0] < TOLERANCE, errors
    report = check_module(RoPE(D, base=base), x, seed=seed, offset=offset)
    assert report.passed, str(report)


@settings(max_examples=25, deadline=None)
@given(lead=lead_shapes, T=st.integers(1, 6), D=even, offset=st.integers(0, 1000),
       seed=st.integers(0, 2**16))
def test_rope_preserves_norms_and_backward_inverts(lead, T, D, offset, seed):
    x = np.random.default_rng(seed).standard_normal((*lead, T, D))
    y, cache = rope_forward(x, offset)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(rope_backward(y, cache), x, rtol=1e-12, atol=1e-12)  # R^T R = I


@settings(max_examples=25, deadline=None)
@given(D=even, m=st.integers(0, 300), n=st.integers(0, 300), shift=st.integers(1, 500),
       seed=st.integers(0, 2**16))
def test_rope_scores_depend_only_on_the_position_difference(D, m, n, shift, seed):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((1, D)), rng.standard_normal((1, D))
    score = rope_forward(q, m)[0] @ rope_forward(k, n)[0].T
    shifted = rope_forward(q, m + shift)[0] @ rope_forward(k, n + shift)[0].T
    np.testing.assert_allclose(shifted, score, rtol=1e-9, atol=1e-9)
    if m != n and D >= 4:             # and the positions do matter
        assert not np.allclose(rope_forward(q, m)[0] @ rope_forward(k, m)[0].T, score)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 8), D=even, seed=st.integers(0, 2**16))
def test_rope_offset_equals_the_same_rows_of_a_longer_sequence(T, D, seed):
    """What a KV cache relies on: row t at offset o is row o + t of the whole sequence."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, T, D))
    whole, _ = rope_forward(x)
    for o in range(T):
        part, _ = rope_forward(x[..., o:, :], offset=o)
        np.testing.assert_allclose(part, whole[..., o:, :], rtol=1e-13, atol=1e-13)
        one, _ = rope_forward(x[..., o:o + 1, :], offset=o)      # one decoded token
        np.testing.assert_allclose(one, whole[..., o:o + 1, :], rtol=1e-13, atol=1e-13)


def test_rope_layout_is_half_split():
    D, p = 6, 3
    x = np.arange(1.0, D + 1)[None, :]                            # one row at position p
    y, _ = rope_forward(x, offset=p, base=100.0)
    for i in range(D // 2):
        a = p * 100.0 ** (-2 * i / D)
        x1, x2 = x[0, i], x[0, i + D // 2]
        np.testing.assert_allclose([y[0, i], y[0, i + D // 2]],
                                   [x1 * np.cos(a) - x2 * np.sin(a), x2 * np.cos(a) + x1 * np.sin(a)],
                                   rtol=1e-14)
    np.testing.assert_array_equal(rotate_half(x), [[-4.0, -5.0, -6.0, 1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(rope_forward(x, offset=0)[0], x)   # position 0: no rotation


def test_rope_keeps_float32_and_tables():
    x = np.random.default_rng(0).standard_normal((2, 4, 8)).astype(np.float32)
    y, cache = rope_forward(x, offset=5)
    assert y.dtype == np.float32 and rope_backward(np.ones_like(y), cache).dtype == np.float32
    m = RoPE(8)
    assert m(x, offset=3).dtype == np.float32 and m.backward(np.ones_like(x)).dtype == np.float32
    cos, sin = rope_tables(4, 8, offset=2)
    assert cos.shape == sin.shape == (4, 8) and cos.dtype == np.float64
    np.testing.assert_allclose(cos ** 2 + sin ** 2, 1, rtol=1e-15)


def test_rope_module_errors():
    with pytest.raises(ValueError, match="head_dim must be a positive even integer"):
        RoPE(5)
    with pytest.raises(ValueError, match="base must be a finite number > 0"):
        RoPE(4, base=0.0)
    with pytest.raises(ValueError, match=r"RoPE\(4\): x has last dimension 6"):
        RoPE(4)(np.ones((3, 6)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        RoPE(4)(np.ones(4))
    with pytest.raises(ValueError, match="offset must be an integer >= 0"):
        RoPE(4)(np.ones((3, 4)), offset=-1)
    with pytest.raises(ValueError, match="backward called before forward"):
        RoPE(4).backward(np.ones((3, 4)))


def test_rope_against_a_torch_rotate_half():
    """Hugging Face Llama's formula, written in torch: inv_freq, rotate_half, autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    B, H, T, D, offset, base = 2, 3, 7, 8, 11, 10000.0
    x, dy = rng.standard_normal((B, H, T, D)), rng.standard_normal((B, H, T, D))

    def torch_rotate_half(t):
        t1, t2 = t[..., : t.shape[-1] // 2], t[..., t.shape[-1] // 2:]
        return torch.cat((-t2, t1), dim=-1)

    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    positions = torch.arange(offset, offset + T, dtype=torch.float64)
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt * emb.cos() + torch_rotate_half(xt) * emb.sin()
    yt.backward(torch.tensor(dy))
    y, cache = rope_forward(x, offset=offset, base=base)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(rope_backward(dy, cache), xt.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_rope_matches_hugging_face_llama():
    """transformers' own LlamaRotaryEmbedding and apply_rotary_pos_emb (which compute
    the angles in float32: agreement to float32 rounding of angles up to ~T + offset)."""
    torch = pytest.importorskip("torch")
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig
    B, H, T, D, offset = 2, 4, 5, 16, 37
    config = LlamaConfig(hidden_size=H * D, num_attention_heads=H, rope_theta=500000.0,
                         max_position_embeddings=64)
    rotary = llama.LlamaRotaryEmbedding(config)
    rng = np.random.default_rng(6)
    q, k = rng.standard_normal((B, H, T, D)), rng.standard_normal((B, H, T, D))
    positions = torch.arange(offset, offset + T)[None].expand(B, T)
    cos, sin = rotary(torch.tensor(q), positions)
    q_hf, k_hf = llama.apply_rotary_pos_emb(torch.tensor(q), torch.tensor(k), cos, sin)
    for ours, theirs in ((rope_forward(q, offset, 500000.0)[0], q_hf),
                         (rope_forward(k, offset, 500000.0)[0], k_hf)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-5)
