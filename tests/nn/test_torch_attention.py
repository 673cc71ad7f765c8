"""Attention and the transformer block against PyTorch autograd (float64)."""

import numpy as np
import pytest

from npfm.functional import attention_backward, attention_forward, causal_mask
from npfm.nn import TransformerBlock

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("kind", ["none", "causal", "padding"])
def test_attention_pair_matches_pytorch(kind):
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 6, 4)), rng.standard_normal((2, 3, 6, 4))
    mask = {"none": None, "causal": causal_mask(5, 6),
            "padding": np.array([1, 1, 1, 1, 0, 0], bool)[None, None, None, :]}[kind]
    dy = rng.standard_normal((2, 3, 5, 4))
    y, cache = attention_forward(q, k, v, mask)
    dq, dk, dv = attention_backward(dy, cache)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    s = tq @ tk.transpose(-1, -2) / 2.0
    if mask is not None:
        s = s.masked_fill(~torch.from_numpy(np.broadcast_to(mask, s.shape).copy()), float("-inf"))
    ty = s.softmax(-1) @ tv
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10, rtol=0)
    for ours, theirs in ((dq, tq), (dk, tk), (dv, tv)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_matches_pytorch(norm_first):
    rng = np.random.default_rng(1)
    C, H, F, B, T = 8, 2, 16, 2, 5
    block = TransformerBlock(C, H, F, causal=True, norm_first=norm_first, std=0.3, rng=rng).astype(np.float64)
    for p in block.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.3 + (1.0 if p is block.ln1.gamma else 0.0)
    x, dy = rng.standard_normal((B, T, C)), rng.standard_normal((B, T, C))
    y = block(x)
    block.zero_grad()
    dx = block.backward(dy)

    P = {n: torch.tensor(p.data, requires_grad=True) for n, p in block.named_parameters()}
    tx = torch.tensor(x, requires_grad=True)
    f = torch.nn.functional

    def ln(z, name):
        return f.layer_norm(z, (C,), P[f"{name}.gamma"], P[f"{name}.beta"], 1e-5)

    def attn(z):
        qkv = (z @ P["attn.W_qkv"] + P["attn.b_qkv"]).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        s = qkv[0] @ qkv[1].transpose(-1, -2) / np.sqrt(C // H)
        s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        a = (s.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(B, T, C)
        return a @ P["attn.W_out"] + P["attn.b_out"]

    def ffn(z):
        h = f.gelu(z @ P["ffn.fc1.W"] + P["ffn.fc1.b"], approximate="tanh")
        return h @ P["ffn.fc2.W"] + P["ffn.fc2.b"]

    if norm_first:
        h = tx + attn(ln(tx, "ln1"))
        ty = h + ffn(ln(h, "ln2"))
    else:
        h = ln(tx + attn(tx), "ln1")
        ty = ln(h + ffn(h), "ln2")
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-10, rtol=0)
    for name, p in block.named_parameters():
        np.testing.assert_allclose(p.grad, P[name].grad.numpy(), atol=1e-10, rtol=0, err_msg=name)
