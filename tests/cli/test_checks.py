"""`npfm gradcheck`: the table, exit 0, and exit 1 when a backward is broken; --only NAME."""

import npfm.functional as layernorm_module
from npfm.cli import main


def test_gradcheck_passes_and_prints_the_table(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for name in ("linear", "layernorm", "attention (causal)", "cross_entropy", "MultiHeadAttention",
                 "Block (post-LN, causal)", "GPT (tiny)"):
        assert name in out
    assert "all passed" in out and "FAIL" not in out


def rows_of(out):
    """{(check, array): result} of the table's rows."""
    rows = {}
    for line in out.splitlines():
        if line.endswith((" ok", " FAIL")):
            check, array = line[:28].rstrip(), line[29:57].rstrip()
            rows[check, array] = line.rsplit(" ", 1)[1]
    return rows


def test_gradcheck_fails_when_a_backward_is_broken(monkeypatch, capsys):
    """The broken pair's dx row fails, in a table of the checks asked for: the same
    concept's Module and others, which still pass."""
    original = layernorm_module.layernorm_backward

    def broken(dy, cache):
        dx, dgamma, dbeta = original(dy, cache)
        return dx * 1.01, dgamma, dbeta                  # 1% wrong

    monkeypatch.setattr(layernorm_module, "layernorm_backward", broken)
    import npfm.functional as F
    monkeypatch.setattr(F, "layernorm_backward", broken)
    assert main(["gradcheck", "--only", "layernorm", "linear", "attention (causal)",
                 "Block (post-LN, causal)"]) == 1
    out = capsys.readouterr().out
    rows = rows_of(out)
    assert {check for check, _ in rows} == {"layernorm", "LayerNorm", "linear", "Linear",
                                            "attention (causal)", "Block (post-LN, causal)"}
    assert rows.pop(("layernorm", "x")) == "FAIL"
    assert rows and set(rows.values()) == {"ok"}
    assert "1 FAILED" in out


def test_gradcheck_only_a_name_that_is_no_check_is_one_line(capsys):
    assert main(["gradcheck", "--only", "linear", "layrnorm"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                            # nothing ran
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("npfm: error: --only: no check named 'layrnorm'")
    assert "layernorm" in err[0] and "attention" in err[0]
