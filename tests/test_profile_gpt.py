"""benchmarks/profile_gpt.py: the step's parts in npfm, and with --torch / --products in PyTorch."""

import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import profile_gpt  # noqa: E402

from npfm.models.gpt import GPT, preset  # noqa: E402


def test_the_profile_accounts_for_the_step(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["profile_gpt.py", "--preset", "tiny", "--steps", "1"])
    profile_gpt.main()
    out = capsys.readouterr().out
    shares = [float(s) for s in re.findall(r"([\d.]+)%", out)]
    assert "linear forward" in out and "layernorm backward" in out
    assert 99.0 <= sum(shares) <= 101.0, out        # the parts and "other" make the whole step


def test_torch_profile_and_the_weight_products_beside_pytorch(capsys):
    torch = pytest.importorskip("torch")
    model = GPT(preset("tiny"))
    ids = np.random.default_rng(0).integers(0, model.config.vocab_size, (2, model.config.context + 1))
    profile_gpt.torch_profile(torch, model, ids, steps=1)
    profile_gpt.weight_products(torch, model, B=2, T=model.config.context, rounds=2)
    out = capsys.readouterr().out
    products = re.search(r"matrix products \(mm, bmm, addmm, baddbmm\)\s+([\d.]+)\s+([\d.]+)%", out)
    assert products and float(products.group(1)) > 0, out
    n_weights = 4 * model.config.n_layers + 1                # each block's four, and the LM head
    assert f"({n_weights} weights x forward, dx, dW" in out, out
    ratio = re.search(r"ratio ([\d.]+)x", out)
    assert ratio and float(ratio.group(1)) > 0, out
