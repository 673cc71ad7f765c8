"""The switch between the floors: npfm.use_reference(), npfm.reference(),
NPFM_REFERENCE=1 and ``--reference`` on the commands all make the Modules run
the textbook pairs; off, they run the fast kernels where there are some.

The PyTorch twins live in ``npfm.torch_twins``, so that importing them never
replaces the switch ``npfm.reference()`` (a test below holds that).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import npfm
import npfm.fast as fast
import npfm.functional as F
from npfm.cli import main
from npfm.nn import LayerNorm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# each fast kernel and the file that proves it equal to its textbook twin
KERNEL_TESTS = {"layernorm": "test_fast_layernorm.py", "gelu": "test_fast_gelu.py",
                "attention": "test_fast_attention.py", "cross_entropy": "test_fast_cross_entropy.py",
                "embedding": "test_fast_embedding_linear.py", "linear": "test_fast_embedding_linear.py",
                "swiglu": "test_fast_modern.py", "lora": "test_fast_modern.py"}


def on_textbook(name):
    forward, backward = fast.pair(name)
    return forward is getattr(F, f"{name}_forward") and backward is getattr(F, f"{name}_backward")


def on_fast(name):
    module = fast.KERNELS[name]
    forward, backward = fast.pair(name)
    return forward is getattr(module, f"{name}_forward") and backward is getattr(module, f"{name}_backward")


def test_every_fast_kernel_has_its_comparison_test():
    assert set(fast.KERNELS) == set(KERNEL_TESTS)
    for filename in KERNEL_TESTS.values():
        assert os.path.exists(os.path.join(os.path.dirname(__file__), filename))


def test_the_fast_floor_is_the_default():
    assert not npfm.reference_enabled()
    assert all(on_fast(name) for name in fast.KERNELS)
    assert on_textbook("softmax") and on_textbook("dropout")          # no fast kernel: textbook


def test_use_reference_selects_the_textbook_pairs():
    assert npfm.use_reference is fast.use_reference
    previous = npfm.use_reference()
    try:
        assert previous is False and npfm.reference_enabled()
        assert all(on_textbook(name) for name in fast.KERNELS)
        assert fast.pair("layernorm")[0] is F.layernorm_forward
        assert fast.fast_kernel("attention", "backward") is None
        assert npfm.use_reference(False) is True
        assert all(on_fast(name) for name in fast.KERNELS)
    finally:
        npfm.use_reference(previous)
    assert not npfm.reference_enabled()


def test_the_package_face_offers_the_switch():
    assert npfm.use_reference is fast.use_reference
    assert npfm.reference_enabled is fast.reference_enabled
    assert "reference" in npfm.__dict__


def test_importing_the_torch_twins_keeps_npfm_reference_the_switch():
    pytest.importorskip("torch")
    code = ("import npfm\nimport npfm.torch_twins.torch_gpt\n"
            "assert npfm.reference is npfm.fast.reference, npfm.reference\n")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                   capture_output=True)


def test_the_context_manager_restores_the_floor_even_on_an_error():
    with fast.reference():
        assert all(on_textbook(name) for name in fast.KERNELS)
        with fast.reference(False):                                   # nested: fast inside
            assert all(on_fast(name) for name in fast.KERNELS)
        assert npfm.reference_enabled()
    assert not npfm.reference_enabled()
    with pytest.raises(ZeroDivisionError):
        with fast.reference():
            1 / 0
    assert not npfm.reference_enabled()


def test_the_pair_is_looked_up_when_a_module_runs(monkeypatch):
    """A pair patched into npfm.functional is the one the Modules run (a student's)."""
    calls, textbook = [], F.layernorm_forward

    def mine(x, gamma, beta, eps=1e-5):
        calls.append(x.shape)
        return textbook(x, gamma, beta, eps)

    monkeypatch.setattr(F, "layernorm_forward", mine)
    ln, x = LayerNorm(4), np.ones((2, 4), np.float32)
    ln(x)
    assert calls == []                                                # fast floor: not called
    with fast.reference():
        assert fast.pair("layernorm")[0] is mine
        ln(x)
    assert calls == [(2, 4)]


def test_a_module_runs_the_backward_of_the_pair_its_forward_used():
    """Forward on one floor, backward after switching: the cache goes to its own pair."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    ln = LayerNorm(5, dtype=np.float64)
    with fast.reference():
        ln(x)
    dx = ln.backward(dy)                                              # now on the fast floor
    np.testing.assert_allclose(dx, F.layernorm_backward(dy, F.layernorm_forward(
        x, ln.gamma.data, ln.beta.data)[1])[0], rtol=1e-12, atol=1e-14)


def floor_in_a_new_process(value):
    """Which floor a fresh ``import npfm`` picks with NPFM_REFERENCE=value (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "NPFM_REFERENCE"}
    if value is not None:
        env["NPFM_REFERENCE"] = value
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = ("import npfm, npfm.fast as fast, npfm.functional as F\n"
            "textbook = [fast.pair(n)[1] is getattr(F, n + '_backward') for n in fast.KERNELS]\n"
            "print(npfm.reference_enabled(), all(textbook), any(textbook))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return out.stdout.split()


def test_npfm_reference_in_the_environment():
    assert floor_in_a_new_process("1") == ["True", "True", "True"]
    assert floor_in_a_new_process("0") == ["False", "False", "False"]
    assert floor_in_a_new_process(None) == ["False", "False", "False"]


@pytest.fixture
def textbook_calls(monkeypatch):
    """Counts the calls of the textbook LayerNorm (the fast floor never makes one)."""
    calls = []
    textbook = F.layernorm_forward

    def counted(*args, **kwargs):
        calls.append(npfm.reference_enabled())
        return textbook(*args, **kwargs)

    monkeypatch.setattr(F, "layernorm_forward", counted)
    return calls


def test_reference_flag_on_train_gpt_and_generate(tmp_path, textbook_calls, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.py").write_text("def add(a, b):\n    return a + b\n\n" * 30)
    out = tmp_path / "run"
    args = ["train", "gpt", "--preset", "tiny", "--data", str(data), "--steps", "2",
            "--eval-every", "2", "--batch-size", "2", "--sample-tokens", "0", "--out", str(out)]
    assert main(args) == 0
    assert textbook_calls == []                                       # fast floor by default
    assert main(args + ["--reference", "--overwrite"]) == 0                # a second run, same folder
    assert textbook_calls and all(textbook_calls)                     # every LayerNorm: textbook
    assert not npfm.reference_enabled()                               # restored afterwards
    del textbook_calls[:]
    capsys.readouterr()
    generate = ["generate", "--checkpoint", str(out / "checkpoint.npz"), "--prompt", "def",
                "--max-new-tokens", "3", "--seed", "0"]
    assert main(generate) == 0 and textbook_calls == []
    fast_text = capsys.readouterr().out
    assert main(generate + ["--reference"]) == 0 and textbook_calls
    assert capsys.readouterr().out == fast_text                       # same seed, same tokens
    assert not npfm.reference_enabled()
