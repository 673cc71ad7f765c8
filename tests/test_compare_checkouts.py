"""benchmarks/compare_checkouts.py: an older checkout's npfm imported beside this one, and timed in turn."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import compare_checkouts  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def fresh_import():
    """Forget npfm_before (and its place on sys.path) after the test."""
    path = list(sys.path)
    yield
    for name in [m for m in sys.modules if m == "npfm_before" or m.startswith("npfm_before.")]:
        del sys.modules[name]
    sys.path[:] = path


def test_an_old_package_loads_under_its_new_name_with_its_own_imports(tmp_path, fresh_import):
    old = tmp_path / "old" / "npfm"
    (old / "models").mkdir(parents=True)
    (old / "__init__.py").write_text("__version__ = '0.0.1'\nimport npfm.models.gpt\n")
    (old / "models" / "__init__.py").write_text("")
    (old / "models" / "gpt.py").write_text(
        "from npfm.models import helper\n"
        "def f():\n"
        "    from npfm.models.helper import VALUE   # an import inside a function\n"
        "    return VALUE\n")
    (old / "models" / "helper.py").write_text("VALUE = 'old'\n")
    into = tmp_path / "copy"
    into.mkdir()
    package = compare_checkouts.load_checkout(str(tmp_path / "old"), str(into))
    assert package.__name__ == "npfm_before" and package.__version__ == "0.0.1"
    gpt = sys.modules["npfm_before.models.gpt"]
    assert gpt.f() == "old" and gpt.helper.__name__ == "npfm_before.models.helper"
    import npfm
    assert npfm.__version__ != "0.0.1"                   # this checkout's npfm is untouched


def test_a_folder_without_npfm_is_refused_with_one_line(tmp_path, fresh_import):
    with pytest.raises(SystemExit, match="holds no npfm package"):
        compare_checkouts.load_checkout(str(tmp_path), str(tmp_path / "copy"))


def test_this_checkout_against_itself_times_both_in_turn(tmp_path, fresh_import):
    """This checkout loaded a second time as 'before': the same steps, timed alternately."""
    before = compare_checkouts.load_checkout(ROOT, str(tmp_path))
    assert before.__file__.startswith(str(tmp_path))
    here = compare_checkouts.Version("npfm", "this")
    then = compare_checkouts.Version("npfm_before", "before")
    ids = np.random.default_rng(0).integers(0, 256, size=(2, 9))
    calls = []
    a, b = here.step("tiny", ids), then.step("tiny", ids)
    ours, theirs = compare_checkouts.in_turn(lambda: calls.append("a") or a(),
                                             lambda: calls.append("b") or b(), rounds=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]    # warm-up, then the order swapped each round
    assert len(ours) == len(theirs) == 3 and min(ours + theirs) > 0
    assert "x  [" in compare_checkouts.paired(ours, theirs)
    block = here.block("tiny", 2)
    block()
    assert here.TransformerBlock is not then.TransformerBlock      # each version's own class
