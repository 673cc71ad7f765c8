"""The GPT of ``npfm.models.gpt`` written in PyTorch, loading npfm's weights.

Used by ``tests/models/test_torch_gpt.py`` (same logits and gradients as our
hand-written backward) and ``benchmarks/bench_gpt.py`` (the same model timed
in PyTorch eager in the same process). Needs torch.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F


class TorchGPT(torch.nn.Module):
    """Pre-LN causal GPT with a tied head; parameter names follow npfm's."""

    def __init__(self, config, dtype=torch.float32):
        super().__init__()
        c = self.config = config
        V, C, L = c.vocab_size, c.dim, c.n_layers

        def p(*shape):
            return torch.nn.Parameter(torch.zeros(*shape, dtype=dtype))

        params = {"tok_emb.W": p(V, C), "ln_f.gamma": p(C), "ln_f.beta": p(C)}
        if c.positions == "learned":
            params["pos.W"] = p(c.context, C)
        for i in range(L):
            b = f"blocks.{i}."
            for name, shape in [("ln1.gamma", (C,)), ("ln1.beta", (C,)), ("attn.W_qkv", (C, 3 * C)),
                                ("attn.b_qkv", (3 * C,)), ("attn.W_out", (C, C)), ("attn.b_out", (C,)),
                                ("ln2.gamma", (C,)), ("ln2.beta", (C,)), ("ffn.fc1.W", (C, c.hidden)),
                                ("ffn.fc1.b", (c.hidden,)), ("ffn.fc2.W", (c.hidden, C)), ("ffn.fc2.b", (C,))]:
                params[b + name] = p(*shape)
        # ParameterDict keys may not contain "."
        self.params = torch.nn.ParameterDict({k.replace(".", "__"): v for k, v in params.items()})

    def P(self, name):
        return self.params[name.replace(".", "__")]

    def load_npfm(self, model):
        """Copy an npfm GPT's weights (state_dict names) into this module."""
        with torch.no_grad():
            for name, value in model.state_dict().items():
                self.P(name).copy_(torch.from_numpy(np.asarray(value)))
        return self

    def positions(self, T, offset=0):
        c = self.config
        if c.positions == "learned":
            return self.P("pos.W")[offset:offset + T]
        from npfm.functional import sinusoidal_positions
        table = sinusoidal_positions(c.context, c.dim, dtype=np.float64)
        return torch.from_numpy(table[offset:offset + T]).to(self.P("tok_emb.W").dtype)

    def forward(self, ids, caches=None):
        """ids (B, T) long -> logits (B, T, V). caches: list of [k, v] per block (or None)."""
        c = self.config
        B, T = ids.shape
        H, D, C = c.n_heads, c.dim // c.n_heads, c.dim
        offset = 0 if not caches or caches[0][0] is None else caches[0][0].shape[2]
        x = self.P("tok_emb.W")[ids] + self.positions(T, offset)
        for i in range(c.n_layers):
            b = f"blocks.{i}."
            h = F.layer_norm(x, (C,), self.P(b + "ln1.gamma"), self.P(b + "ln1.beta"), 1e-5)
            qkv = h @ self.P(b + "attn.W_qkv") + self.P(b + "attn.b_qkv")
            q, k, v = qkv.view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)
            if caches is not None:
                if caches[i][0] is not None:
                    k = torch.cat([caches[i][0], k], 2)
                    v = torch.cat([caches[i][1], v], 2)
                caches[i] = [k, v]
            Tk = k.shape[2]
            mask = torch.ones(T, Tk, dtype=torch.bool).tril(Tk - T)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
            a = s.masked_fill(~mask, float("-inf")).softmax(-1) @ v
            a = a.transpose(1, 2).reshape(B, T, C)
            x = x + a @ self.P(b + "attn.W_out") + self.P(b + "attn.b_out")
            h = F.layer_norm(x, (C,), self.P(b + "ln2.gamma"), self.P(b + "ln2.beta"), 1e-5)
            h = F.gelu(h @ self.P(b + "ffn.fc1.W") + self.P(b + "ffn.fc1.b"), approximate="tanh")
            x = x + h @ self.P(b + "ffn.fc2.W") + self.P(b + "ffn.fc2.b")
        x = F.layer_norm(x, (C,), self.P("ln_f.gamma"), self.P("ln_f.beta"), 1e-5)
        return x @ self.P("tok_emb.W").T

    def named_npfm_grads(self):
        return {k.replace("__", "."): v.grad for k, v in self.params.items()}
