"""Forward + backward time of attention, LayerNorm, GELU and a TransformerBlock
at a GPT-small-like size (B=16, T=128, C=256, H=8, float32), beside PyTorch
eager on the CPU in the same process where torch is importable.

    python benchmarks/bench_layers.py [--repeat 5]

Prints a table: npfm ms, PyTorch ms, ratio (npfm / PyTorch; lower is better).
"""

import argparse
import os
import sys

import npfm  # noqa: F401  first: it sets OpenBLAS's thread timeout before NumPy loads
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_of_pair, row, torch_or_none  # noqa: E402

from npfm.fast.activations import gelu_backward, gelu_forward  # noqa: E402  (the fast floor)
from npfm.fast.attention import attention_backward, attention_forward  # noqa: E402
from npfm.fast.layernorm import layernorm_backward, layernorm_forward  # noqa: E402
from npfm.functional import causal_mask  # noqa: E402
from npfm.nn import TransformerBlock  # noqa: E402

B, T, C, H = 16, 128, 256, 8
D, F = C // H, 4 * C


def numpy_cases(rng):
    x = rng.standard_normal((B, T, C)).astype(np.float32)
    dy = rng.standard_normal((B, T, C)).astype(np.float32)
    q, k, v, dq = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(4))
    h = rng.standard_normal((B, T, F)).astype(np.float32)
    dh = rng.standard_normal((B, T, F)).astype(np.float32)
    gamma, beta = np.ones(C, np.float32), np.zeros(C, np.float32)
    mask = causal_mask(T)
    block = TransformerBlock(C, H, F, causal=True, rng=rng)

    def attention():
        y, cache = attention_forward(q, k, v, mask)
        attention_backward(dq, cache)

    def layernorm():
        y, cache = layernorm_forward(x, gamma, beta)
        layernorm_backward(dy, cache)

    def gelu():
        y, cache = gelu_forward(h)
        gelu_backward(dh, cache)

    def blockfb():
        block(x)
        block.backward(dy)

    return {"causal attention (B,H,T,D)": attention, "LayerNorm (B,T,C)": layernorm,
            "GELU tanh (B,T,4C)": gelu, "TransformerBlock pre-LN causal": blockfb}


def torch_cases(torch, rng):
    torch.manual_seed(0)
    f = torch.nn.functional

    def t(*shape):
        return torch.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)

    x, q, k, v, h = t(B, T, C), t(B, H, T, D), t(B, H, T, D), t(B, H, T, D), t(B, T, F)
    dy, dq, dh = torch.randn(B, T, C), torch.randn(B, H, T, D), torch.randn(B, T, F)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    ln = torch.nn.LayerNorm(C)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = torch.nn.LayerNorm(C), torch.nn.LayerNorm(C)
            self.qkv, self.proj = torch.nn.Linear(C, 3 * C), torch.nn.Linear(C, C)
            self.fc1, self.fc2 = torch.nn.Linear(C, F), torch.nn.Linear(F, C)

        def forward(self, x):
            qkv = self.qkv(self.ln1(x)).view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)
            s = (qkv[0] @ qkv[1].transpose(-1, -2)) / D ** 0.5
            s = s.masked_fill(~mask, float("-inf")).softmax(-1)
            a = (s @ qkv[2]).transpose(1, 2).reshape(B, T, C)
            x = x + self.proj(a)
            return x + self.fc2(f.gelu(self.fc1(self.ln2(x)), approximate="tanh"))

    block = Block()

    def attention():
        s = (q @ k.transpose(-1, -2)) / D ** 0.5
        y = s.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        y.backward(dq)

    def layernorm():
        ln(x).backward(dy)

    def gelu():
        f.gelu(h, approximate="tanh").backward(dh)

    def blockfb():
        block(x).backward(dy)

    return {"causal attention (B,H,T,D)": attention, "LayerNorm (B,T,C)": layernorm,
            "GELU tanh (B,T,4C)": gelu, "TransformerBlock pre-LN causal": blockfb}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ours = numpy_cases(rng)
    torch = torch_or_none()
    ref = torch_cases(torch, rng) if torch else {}
    print(f"forward + backward, B={B} T={T} C={C} H={H}, float32, best of {args.repeat}")
    if torch:
        print(f"PyTorch {torch.__version__} eager, {torch.get_num_threads()} threads; "
              f"NumPy {np.__version__}")
    else:
        print("torch is not importable: npfm times only")
    print(f"{'':<34} {'npfm':>12} {'PyTorch':>12} {'ratio':>7}")
    for name, fn in ours.items():
        t_ours, t_ref = best_of_pair(fn, ref.get(name), args.repeat)
        print(row(name, t_ours, t_ref), flush=True)


if __name__ == "__main__":
    main()
