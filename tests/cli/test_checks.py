"""`npfm gradcheck`: the table, exit 0, and exit 1 when a backward is broken."""

import npfm.functional as layernorm_module
from npfm.cli import main


def test_gradcheck_passes_and_prints_the_table(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for name in ("linear", "layernorm", "attention (causal)", "cross_entropy", "MultiHeadAttention",
                 "Block (post-LN, causal)", "GPT (tiny)"):
        assert name in out
    assert "all passed" in out and "FAIL" not in out


def test_gradcheck_fails_when_a_backward_is_broken(monkeypatch, capsys):
    original = layernorm_module.layernorm_backward

    def broken(dy, cache):
        dx, dgamma, dbeta = original(dy, cache)
        return dx * 1.01, dgamma, dbeta                  # 1% wrong

    monkeypatch.setattr(layernorm_module, "layernorm_backward", broken)
    import npfm.functional as F
    monkeypatch.setattr(F, "layernorm_backward", broken)
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILED" in out
