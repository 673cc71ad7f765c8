"""The textbook floor reads as the math and nothing else.

What ``inspect.getsource`` shows a student of a pair holds no thread
machinery, no output buffers, no input checks; and the floor's files stand on
NumPy alone: they import nothing from npfm outside ``npfm.functional``.
"""

import ast
import inspect
import os

import pytest

import npfm.functional as F

# the pairs whose fast twins are written with blocks, buffers and threads
PAGES = ["layernorm_forward", "layernorm_backward", "attention_forward", "attention_backward",
         "gelu_forward", "gelu_backward", "softmax_forward", "softmax_backward",
         "cross_entropy_forward", "cross_entropy_backward", "linear_forward", "linear_backward",
         "embedding_forward", "embedding_backward"]
NOT_ON_A_PAGE = ["map_rows", "out=", "partial", "thread", "check_array"]
MACHINERY = {"threading", "concurrent", "multiprocessing", "ctypes", "functools", "os"}
FLOOR = os.path.dirname(F.__file__)
FILES = sorted(name for name in os.listdir(FLOOR) if name.endswith(".py"))


@pytest.mark.parametrize("name", PAGES)
def test_a_textbook_pair_is_the_math_alone(name):
    source = inspect.getsource(getattr(F, name))
    assert inspect.getsourcefile(getattr(F, name)).startswith(FLOOR)
    for word in NOT_ON_A_PAGE:
        assert word not in source, f"npfm.functional.{name} mentions {word!r}"


@pytest.mark.parametrize("name", sorted(F.__all__))
def test_no_exported_function_uses_buffers_or_threads(name):
    """Every function the floor exports: no ``out=`` argument, no map_rows or partial."""
    tree = ast.parse(inspect.getsource(getattr(F, name)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            assert "out" not in {k.arg for k in node.keywords}, f"{name} calls with out="
        if isinstance(node, ast.Name):
            assert node.id not in ("map_rows", "partial", "check_array"), f"{name} uses {node.id}"


def imports_of(path):
    """(module, level) for every import statement of a file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


@pytest.mark.parametrize("filename", FILES)
def test_the_floor_imports_nothing_from_npfm_but_itself(filename):
    assert "layernorm.py" in FILES and "attention.py" in FILES         # the folder is right
    for module, level in imports_of(os.path.join(FLOOR, filename)):
        where = f"{filename}: import {'.' * level}{module}"
        if level == 0:
            assert module.split(".")[0] not in MACHINERY, where
            assert not module.startswith("npfm") or module.startswith("npfm.functional"), where
        else:
            assert level == 1, where                                       # within npfm/functional


def test_the_import_check_can_fail(tmp_path):
    """The checker sees an import from the fast floor or a thread module."""
    path = tmp_path / "student.py"
    path.write_text("import threading\nfrom ..fast.threads import map_rows\n")
    assert list(imports_of(path)) == [("threading", 0), ("fast.threads", 2)]
