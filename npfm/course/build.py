"""Building an assignment: OUT/student (the copy handed out), OUT/autograder
(what Gradescope runs) and OUT/instructor (the notebooks with solutions).

The student copy is made from this source tree, never from a hand-kept copy:
the package is copied, and in each asked function the body after the
docstring is replaced, through the positions ``ast`` gives, by

    raise NotImplementedError("assignment N: write npfm.functional.<module>.<name>")

The rest of each file keeps its text and comments. The fast floor of the copy
holds no kernel at all (``KERNELS = {}``, the kernel files deleted), so every
Module runs the student's textbook pair. The copy holds none of this kit
(npfm/course), no test of the project, no reference data.

The autograder folder holds, per test, one .npz of its inputs, its upstream
gradient and its expected outputs (computed here: the instructor's forward,
and float64 central differences of it for the gradients), ``tests.json``
(names, points, visibility), ``grade.py`` (a copy of npfm/course/grade.py),
``run_autograder`` and ``setup.sh``.
"""

import ast
import inspect
import json
import os
import secrets
import shutil
import importlib

import numpy as np

from .assignments import GRADIENT_INPUTS, TOLERANCE, file_path, import_name, select
from . import notebooks

PUBLIC_SEED = 2024
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GRADIENT_NAMES = {
    "linear": ("dx", "dW", "db"), "relu": ("dx",), "gelu": ("dx",),
    "layernorm": ("dx", "dgamma", "dbeta"), "softmax": ("dx",), "cross_entropy": ("dlogits",),
    "embedding": ("dW",), "attention": ("dq", "dk", "dv"), "l2_normalize": ("dx",),
    "clip_loss": ("dimage_emb", "dtext_emb", "dlogit_scale"),
}


def stub_message(number, module, name):
    return f"assignment {number}: write {import_name(module)}.{name}"


def stub_source(text, names, number, module):
    """``text`` with the body of each function in ``names`` replaced by its
    docstring and a NotImplementedError naming the assignment."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            found[node.name] = node
        if isinstance(node, ast.ClassDef):                      # methods: "Class.method"
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and f"{node.name}.{item.name}" in names:
                    found[f"{node.name}.{item.name}"] = item
    missing = set(names) - set(found)
    if missing:
        raise ValueError(f"{file_path(module)} has no function {sorted(missing)[0]}")
    for qualname, node in sorted(found.items(), key=lambda kv: kv[1].lineno, reverse=True):
        body = node.body
        has_doc = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                   and isinstance(body[0].value.value, str))
        first = body[1] if has_doc and len(body) > 1 else body[0]
        indent = " " * first.col_offset
        start = (body[0].end_lineno if has_doc else body[0].lineno - 1)
        raise_line = f'{indent}raise NotImplementedError("{stub_message(number, module, qualname)}")\n'
        lines[start:node.end_lineno] = [raise_line]
    return "".join(lines)


def strip_fast(fast_dir):
    """Leave npfm/fast with its switch and threads but no kernel: KERNELS = {}."""
    path = os.path.join(fast_dir, "__init__.py")
    text = open(path).read()
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    edits, kernels = [], set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None:
            kernels |= {a.name for a in node.names}
            edits.append((node.lineno - 1, node.end_lineno, []))
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "KERNELS" for t in node.targets):
            edits.append((node.lineno - 1, node.end_lineno,
                          ["KERNELS = {}                     # the student copy: the textbook floor alone\n"]))
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = new
    with open(path, "w") as f:
        f.write("".join(lines))
    for name in kernels - {"threads"}:
        os.remove(os.path.join(fast_dir, f"{name}.py"))


def make_student(out, chosen):
    student = os.path.join(out, "student")
    if os.path.exists(student):
        shutil.rmtree(student)
    shutil.copytree(os.path.join(SOURCE, "npfm"), os.path.join(student, "npfm"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.npz", "course"))
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(os.path.join(SOURCE, name), os.path.join(student, name))
    by_module = {}
    for a in chosen:
        for module, name in a.functions:
            by_module.setdefault(module, []).append((a.number, name))
    for module, asked in by_module.items():
        path = os.path.join(student, file_path(module))
        text = open(path).read()
        for number in sorted({n for n, _ in asked}):
            text = stub_source(text, [name for n, name in asked if n == number], number, module)
        with open(path, "w") as f:
            f.write(text)
    strip_fast(os.path.join(student, "npfm", "fast"))
    notebooks.write_student_files(student, chosen)
    return student


def _describe(inputs, names, kwargs):
    parts = [f"{k}={v!r}" for k, v in kwargs.items() if not isinstance(v, list)]
    for name, x in zip(names, inputs):
        if x is None:
            parts.append(f"{name}=None")
        else:
            parts.append(f"{name} {tuple(x.shape)} {x.dtype}")
    return ", ".join(parts)


def reference_data(test, seed, index):
    """(record for tests.json, arrays for the .npz) of one test."""
    from ..gradcheck import numerical_gradient
    rng = np.random.default_rng([seed, index])
    inputs, kwargs = test.make(rng)
    if test.kind == "scenario":
        return _scenario_data(test, inputs, kwargs, rng, index)
    mod = importlib.import_module(import_name(test.module))
    forward = getattr(mod, test.concept if test.kind in ("statistics", "call")
                      else f"{test.concept}_forward")
    names = list(inspect.signature(forward).parameters)[:len(inputs)]
    arrays = {f"in_{i}": x for i, x in enumerate(inputs) if x is not None}
    if test.kind == "statistics":
        compare, out_names, function = [], [], test.concept
    elif test.kind == "call":
        built = dict(kwargs)
        for key, cls in (test.construct or {}).items():
            built[key] = getattr(mod, cls)(**built[key])
        out = forward(*inputs, **built)
        out = out if isinstance(out, tuple) else (out,)
        compare, function = list(test.compare), test.concept
        out_names = [f"output {c}" if len(out) > 1 else "the result" for c in compare]
        for j, c in enumerate(compare):
            arrays[f"expected_{j}"] = np.asarray(out[c])
    elif test.kind == "weights":
        arrays["expected_0"] = mod.attention_weights(inputs[0], inputs[1], inputs[3])
        compare, out_names, function = [0], ["P"], "attention_weights"
    elif test.kind == "forward":
        arrays["expected_0"] = np.asarray(forward(*inputs, **kwargs)[0])
        compare, out_names, function = [0], ["loss" if test.concept in ("cross_entropy", "clip_loss") else "y"], \
            f"{test.concept}_forward"
    else:
        y = np.asarray(forward(*inputs, **kwargs)[0])
        dy = rng.standard_normal(y.shape) if y.ndim else np.asarray(0.5 + rng.random())
        arrays["dy"] = dy
        which = GRADIENT_INPUTS[test.concept]
        compare = list(test.compare if test.compare is not None else range(len(which)))
        out_names = [GRADIENT_NAMES[test.concept][c] for c in compare]
        work = [None if x is None else x.copy() for x in inputs]
        for j, c in enumerate(compare):
            x = work[which[c]]
            if x is not None:
                arrays[f"expected_{j}"] = numerical_gradient(
                    lambda: forward(*work, **kwargs)[0], x, dy)
        function = f"{test.concept}_backward"
    record = {
        "name": test.name, "function": function, "module": test.module,
        "import": import_name(test.module), "concept": test.concept, "check": test.check,
        "construct": test.construct or {},
        "kind": test.kind, "points": float(test.points), "hidden": test.hidden,
        "visibility": "visible", "compare": compare, "output_names": out_names,
        "n_inputs": len(inputs), "none_inputs": [i for i, x in enumerate(inputs) if x is None],
        "kwargs": kwargs, "input_names": names, "data": f"test_{index:03d}.npz",
        "shapes": _describe(inputs, names, kwargs) if not test.hidden else "hidden",
    }
    return record, arrays


MODULE_SCENARIOS = ("block_backward", "mha_backward", "gpt_backward", "mlm_head_backward")


def _module_expected(test, inputs, kwargs, rng, arrays):
    """A Module's backward: its Parameters moved off their initial values (so that
    each gain and bias matters), a random upstream gradient, with ``accumulate`` a
    random gradient already in each grad, and central differences of the forward
    for the compared gradients. Returns the names of the module's outputs."""
    from ..gradcheck import numerical_gradient
    from .grade import SCENARIOS
    harness = {}
    exec(SCENARIOS, harness)
    module = harness["make_module"](kwargs)
    named = list(module.named_parameters())
    for i, (_, p) in enumerate(named):
        p.data[...] = p.data + kwargs["perturb"] * rng.standard_normal(p.data.shape)
        arrays[f"param_{i:03d}"] = p.data.copy()
    forward = lambda: module.forward(*harness["module_inputs"](arrays, kwargs))   # noqa: E731
    dy = rng.standard_normal(np.shape(forward()))
    arrays["dy"] = dy
    start = [rng.standard_normal(p.data.shape) if kwargs.get("accumulate") else np.zeros(p.data.shape)
             for _, p in named]
    if kwargs.get("accumulate"):
        arrays.update({f"grad_{i:03d}": g for i, g in enumerate(start)})
    with_dx = harness["has_dx"](kwargs)
    targets = ([arrays["in_0"]] if with_dx else []) + [p.data for _, p in named]
    starts = ([0.0] if with_dx else []) + start
    names = (["dx"] if with_dx else []) + [name for name, _ in named]
    compare = list(range(len(targets)))
    if test.compare is not None:
        compare = compare[test.compare] if isinstance(test.compare, slice) else list(test.compare)
    for j, c in enumerate(compare):
        arrays[f"expected_{j}"] = starts[c] + numerical_gradient(forward, targets[c], dy)
    got = harness["module_backward"](arrays, kwargs)               # the harness agrees with them
    assert np.allclose(got[compare[0]], arrays["expected_0"], atol=1e-6), test.name
    return compare, [names[c] for c in compare]


def _scenario_data(test, inputs, kwargs, rng, index):
    """A method's test: the harness of grade.SCENARIOS run on the instructor's npfm; a
    backward's expected gradients come from central differences of the forward; a
    scenario judged by a property (``check``) has no expected values."""
    from .grade import SCENARIOS
    arrays = {f"in_{i}": x for i, x in enumerate(inputs)}
    if test.concept in MODULE_SCENARIOS:
        compare, names = _module_expected(test, inputs, kwargs, rng, arrays)
    elif test.check:
        compare, names = [], []
    else:
        harness = {}
        exec(SCENARIOS, harness)
        out = harness[test.concept](arrays, kwargs)
        arrays["expected_0"] = out[0]
        compare, names = [0], ["w after the steps"]
    record = {
        "name": test.name, "function": test.concept, "module": test.module,
        "import": import_name(test.module), "concept": test.concept, "check": test.check,
        "construct": {}, "kind": "scenario", "points": float(test.points), "hidden": test.hidden,
        "visibility": "visible", "compare": compare, "output_names": names,
        "n_inputs": len(inputs), "none_inputs": [], "kwargs": kwargs,
        "input_names": [f"input {i}" for i in range(len(inputs))], "data": f"test_{index:03d}.npz",
        "shapes": _describe(inputs, [f"input {i}" for i in range(len(inputs))], kwargs)
        if not test.hidden else "hidden",
    }
    if test.timeout:
        record["timeout"] = float(test.timeout)
    return record, arrays


RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this: the submission is in /autograder/submission, and the
# results must be written to /autograder/results/results.json.
set -u
cd /autograder/source
python3 grade.py /autograder/submission --autograder /autograder/source \\
    --json /autograder/results/results.json --timeout {timeout}
"""

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -eu
apt-get install -y python3 python3-pip >/dev/null 2>&1 || true
python3 -m pip install --break-system-packages "numpy>=1.23" 2>/dev/null || python3 -m pip install "numpy>=1.23"
"""


def make_autograder(out, chosen, seed, timeout):
    folder = os.path.join(out, "autograder")
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(os.path.join(folder, "data"))
    records, index = [], 0
    for a in chosen:
        for test in a.tests:
            record, arrays = reference_data(test, PUBLIC_SEED if not test.hidden else seed, index)
            record["assignment"] = a.number
            np.savez(os.path.join(folder, "data", record["data"]), **arrays)
            records.append(record)
            index += 1
    config = {"tolerance": TOLERANCE, "timeout": timeout, "assignments": [a.number for a in chosen],
              "tests": records}
    with open(os.path.join(folder, "tests.json"), "w") as f:
        json.dump(config, f, indent=1)
    shutil.copy(os.path.join(os.path.dirname(__file__), "grade.py"), os.path.join(folder, "grade.py"))
    for name, text in (("run_autograder", RUN_AUTOGRADER.format(timeout=timeout)), ("setup.sh", SETUP_SH)):
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    return folder


def build(out, numbers=None, seed=None, timeout=20.0):
    """Write OUT/student, OUT/autograder and OUT/instructor; returns their paths."""
    chosen = select(numbers)
    seed = secrets.randbits(63) if seed is None else seed
    student = make_student(out, chosen)
    autograder = make_autograder(out, chosen, seed, timeout)
    instructor = notebooks.write_instructor_files(os.path.join(out, "instructor"), chosen)
    return {"student": student, "autograder": autograder, "instructor": instructor}
