"""Building: the student copy is made from the source, keeps every asked
function's signature and docstring, holds no solution (no body, no fast
kernel, no reference data, no test of the project), and runs until a stub."""

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from npfm.cli import main
from npfm.course.assignments import ASSIGNMENTS, file_path, import_name
from npfm.course.build import build

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUNCTIONAL = os.path.join(ROOT, "npfm", "functional")
ASKED = [(a.number, m, n) for a in ASSIGNMENTS.values() for m, n in a.functions]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    build(str(root), [1, 2, 3, 4, 5, 6], seed=3)
    return root


def functions(path):
    """{name: def} of a file's functions, methods also as Class.method."""
    tree = ast.parse(open(path).read())
    found = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
        found.update({f"{cls.name}.{n.name}": n for n in cls.body if isinstance(n, ast.FunctionDef)})
    return found


def body_dump(node):
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def py_files(folder):
    for root, _, files in os.walk(folder):
        for name in files:
            yield os.path.join(root, name)


def _name(node):
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def stable_softmaxes(path):
    """Lines of a file that compute exp(z - max z), at once or through a name
    (shifted = z - z.max(); np.exp(shifted)): a softmax, whatever it is called."""
    def minus_max(node):
        return (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub)
                and any(isinstance(n, ast.Call) and "max" in _name(n.func) for n in ast.walk(node.right)))

    tree = ast.parse(open(path).read())
    shifted = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and minus_max(n.value)
               for t in n.targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) == "exp" and node.args and (
                minus_max(node.args[0]) or getattr(node.args[0], "id", None) in shifted):
            yield node.lineno


def test_stable_softmax_finder_finds_them(tmp_path):
    """The finder sees the textbook softmax, log_softmax, and a sampler's own copy."""
    assert len(list(stable_softmaxes(os.path.join(FUNCTIONAL, "softmax.py")))) == 2
    path = tmp_path / "sampler.py"
    path.write_text("import numpy as np\ndef sample(z):\n    p = np.exp(z - z.max(axis=1, keepdims=True))\n")
    assert list(stable_softmaxes(path)) == [3]


def test_student_copy_holds_no_solution(out):
    solutions = {name: body_dump(functions(os.path.join(ROOT, file_path(m)))[name])
                 for _, m, name in ASKED}
    concepts = {name.rsplit("_", 1)[0] for _, _, name in ASKED}
    student = out / "student"
    seen = 0
    for path in py_files(student):
        assert not path.endswith((".npz", ".npy", ".pkl")), path
        if not path.endswith(".py"):
            continue
        seen += 1
        for name, node in functions(path).items():
            dump = body_dump(node)
            assert dump not in solutions.values(), f"{path}: {name} holds a solution's body"
            if os.sep + "fast" + os.sep in path:
                assert name.rsplit("_", 1)[0] not in concepts, f"fast kernel {name} in {path}"
        # softmax is asked (assignment 1): no sampler or head may keep a softmax of its own
        assert not list(stable_softmaxes(path)), f"{path} computes a softmax (lines {list(stable_softmaxes(path))})"
    assert seen > 30
    assert not (student / "npfm" / "course").exists()
    assert sorted(os.listdir(student / "tests")) == ["test_public.py"]
    assert not (student / "benchmarks").exists()


def test_stubs_keep_signature_and_docstring(out):
    for number, module, name in ASKED:
        mine = functions(os.path.join(ROOT, file_path(module)))[name]
        stub = functions(out / "student" / file_path(module))[name]
        assert ast.dump(stub.args) == ast.dump(mine.args)
        assert ast.get_docstring(stub) == ast.get_docstring(mine)
        has_doc = ast.get_docstring(mine) is not None
        assert len(stub.body) == 1 + has_doc and isinstance(stub.body[-1], ast.Raise)
        assert (ast.literal_eval(stub.body[-1].exc.args[0])
                == f"assignment {number}: write {import_name(module)}.{name}")
    kernels = open(out / "student" / "npfm" / "fast" / "__init__.py").read()
    assert "KERNELS = {}" in kernels


def run_in(folder, code):
    env = dict(os.environ, NPFM_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-c", code], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_student_copy_runs_until_a_stub(out):
    proc = run_in(out / "student", "import numpy as np, npfm\n"
                  "assert npfm.__file__.startswith(__import__('os').getcwd())\n"
                  "from npfm.nn import LayerNorm\n"
                  "LayerNorm(4).forward(np.ones((2, 4), np.float32))")
    assert "NotImplementedError: assignment 1: write npfm.functional.layernorm.layernorm_forward" \
        in proc.stderr, proc.stderr
    proc = run_in(out / "student", "import sys; from npfm.cli import main; sys.exit(main(['gradcheck']))")
    assert proc.returncode == 2
    assert proc.stderr.startswith("npfm: error: assignment "), proc.stderr


def solution_source(numbers):
    """The instructor's functions of some assignments, as one file a student might
    write (a method at top level, as a notebook cell defines it)."""
    import textwrap
    parts = ["import math\nimport numpy as np\n"]
    for a in [ASSIGNMENTS[n] for n in numbers]:
        for module, name in a.functions:
            text = open(os.path.join(ROOT, file_path(module))).read()
            node = functions(os.path.join(ROOT, file_path(module)))[name]
            parts.append(textwrap.dedent("\n".join(text.splitlines()[node.lineno - 1:node.end_lineno])) + "\n")
    return "\n\n".join(parts)


def test_notebook_workflow_save_then_check(out, tmp_path):
    """coursework.check fails on the stubs; coursework.save writes a student's
    functions into the copy, after which the public checks pass, in a new process too."""
    import shutil
    copy = tmp_path / "student"
    shutil.copytree(out / "student", copy)
    proc = run_in(copy, "import coursework, sys; sys.exit(0 if coursework.check(1) else 1)")
    assert proc.returncode == 1 and "FAIL" in proc.stdout and "NotImplementedError" in proc.stdout
    # clip_loss.py imported the stub of l2_normalize_forward: save must replace that one too
    (copy / "my_answers.py").write_text(solution_source([1, 5]))
    names = [n for k in (1, 5) for _, n in ASSIGNMENTS[k].functions]
    proc = run_in(copy, "import coursework, my_answers, sys\n"
                  "import npfm.functional.clip_loss\n"
                  f"for name in {names!r}: coursework.save(getattr(my_answers, name))\n"
                  "sys.exit(0 if coursework.check(1) and coursework.check(5) else 1)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (copy / "my_answers.py").unlink()
    proc = run_in(copy, "import coursework, sys; sys.exit(0 if coursework.check(1) else 1)")
    assert proc.returncode == 0, proc.stdout
    assert "FAIL" not in proc.stdout and proc.stdout.count("PASS") >= 14
    # a method (a notebook cell defines it at top level) is saved into its class
    (copy / "my_answers.py").write_text(solution_source([4]))
    proc = run_in(copy, "import coursework, my_answers, sys\n"
                  "from npfm.models.bert import MLMHead\n"
                  "coursework.save(my_answers.mask_tokens)\n"
                  "coursework.save(my_answers.backward, MLMHead)\n"
                  "sys.exit(0 if coursework.check(4) else 1)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "saved MLMHead.backward into npfm/models/bert.py" in proc.stdout
    (copy / "my_answers.py").unlink()
    proc = run_in(copy, "import coursework, sys; sys.exit(0 if coursework.check(4) else 1)")
    assert proc.returncode == 0 and "MLMHead.backward: adds into the grads" in proc.stdout, proc.stdout


def test_notebooks_student_and_instructor(out):
    for number in (1, 2, 3, 4, 5, 6):
        student = json.load(open(out / "student" / "notebooks" / f"assignment{number}.ipynb"))
        teacher = json.load(open(out / "instructor" / f"assignment{number}.ipynb"))
        assert student["nbformat"] == teacher["nbformat"] == 4
        s_text = "".join("".join(c["source"]) for c in student["cells"])
        t_text = "".join("".join(c["source"]) for c in teacher["cells"])
        asked = ASSIGNMENTS[number].functions
        assert "### BEGIN SOLUTION" not in s_text and "# YOUR CODE HERE" in s_text
        assert t_text.count("### BEGIN SOLUTION") == t_text.count("### END SOLUTION") == len(asked)
        assert s_text.count("raise NotImplementedError()") == len(asked)
        assert f"coursework.check({number})" in s_text
        for module, name in asked:               # a method's cell saves it into its class
            cls, _, method = name.rpartition(".")
            save = f"coursework.save({method}, {cls})" if cls else f"coursework.save({name})"
            assert save in s_text and save in t_text
            assert not cls or f"from {import_name(module)} import {cls}" in s_text
        graded = [c for c in teacher["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
        assert len(graded) == len(asked)


def test_autograder_folder(out):
    folder = out / "autograder"
    for name in ("run_autograder", "setup.sh"):
        assert os.access(folder / name, os.X_OK)
    config = json.load(open(folder / "tests.json"))
    assert config["tolerance"] == 1e-6
    functions_asked = {n for _, _, n in ASKED}
    for test in config["tests"]:
        graded = test["name"].split(":")[0]          # the function (or method) the test grades
        if test["kind"] == "scenario":
            assert graded.endswith((".backward", ".update")) or graded in functions_asked
        else:
            assert graded in functions_asked and graded == test["function"]
        with np.load(folder / "data" / test["data"], allow_pickle=False) as f:
            assert (any(k.startswith("expected_") for k in f.files) or test["compare"] == [0, 1, 2]
                    or test["check"])
            assert test["kind"] != "call" or len(test["compare"]) == sum(
                k.startswith("expected_") for k in f.files)
            assert all(f[k].dtype != object for k in f.files)
        if test["hidden"]:
            assert test["shapes"] == "hidden"
    assert {t["assignment"] for t in config["tests"]} == {1, 2, 3, 4, 5, 6}


def test_cli_list_and_bad_input(tmp_path, capsys):
    assert main(["course", "list"]) == 0
    text = capsys.readouterr().out
    for _, module, name in ASKED:
        assert f"{import_name(module)}.{name}" in text
    assert main(["course", "build", str(tmp_path / "x"), "--assignments", "9"]) == 2
    assert main(["course", "build", str(tmp_path / "x"), "--assignments", "one"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("npfm: error: ") for line in err)
    assert not (tmp_path / "x").exists()
