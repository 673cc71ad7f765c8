"""What the student copy carries besides the package, and the notebooks.

    OUT/student/README.md               how to work and what is graded
    OUT/student/coursework.py           save(fn) writes a notebook cell's function into the
                                        copy; check(n) runs assignment n's public checks
    OUT/student/tests/test_public.py    the same public checks under pytest
    OUT/student/notebooks/assignmentN.ipynb
    OUT/instructor/assignmentN.ipynb    the same notebook with the solutions between
                                        nbgrader's ### BEGIN SOLUTION / ### END SOLUTION

The public checks compare a student's backward with central differences of
the student's own forward on public shapes, and test properties any correct
forward has (rows of a softmax sum to 1, logits of size 1000 give no NaN, a
causal output ignores later tokens...). They hold no reference output: the
reference outputs on hidden inputs live in the autograder only.

Notebooks are nbformat 4 JSON written with ``json``: no Jupyter is needed to
build them.
"""

import ast
import inspect
import json
import os

from .assignments import TRAINING, file_path, import_name
from .build_texts import COURSEWORK, README, TEST_PUBLIC
from .grade import SCENARIOS


def _cell(kind, text, **metadata):
    cell = {"cell_type": kind, "metadata": metadata, "source": text.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _notebook(cells):
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:02d}"          # nbformat 4.5 wants an id on every cell
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"},
                         "language_info": {"name": "python"}}}


def _function_parts(module, name):
    """(header with docstring, body, the module's docstring) of the function ``name``
    of ``module``; a method ("Class.method") comes dedented, as a cell defines it."""
    import importlib
    mod = importlib.import_module(import_name(module))
    text = inspect.getsource(mod)
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    scope, _, name = name.rpartition(".")
    if scope:
        tree = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == scope)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    doc_end = node.body[0].end_lineno if ast.get_docstring(node) is not None else node.body[0].lineno - 1
    header, body = "".join(lines[node.lineno - 1:doc_end]), "".join(lines[doc_end:node.end_lineno])
    if scope:                                       # a method: dedent it by its own indent
        indent = " " * node.col_offset
        header, body = ("".join(line[len(indent):] if line.startswith(indent) else line
                                for line in part.splitlines(keepends=True))
                        for part in (header, body))
    return header, body, ast.get_docstring(ast.parse(text)) or ""


def _class_doc(module, cls):
    import importlib
    return inspect.getdoc(getattr(importlib.import_module(import_name(module)), cls)) or ""


def _assignment_notebook(a, solutions):
    cells = [_cell("markdown", f"# Assignment {a.number}: {a.title}\n\n"
                   "Write each function in the cell below its derivation, then run the cell: "
                   "`coursework.save` puts your function into your copy "
                   "(`npfm/functional/<module>.py`, or the file of its class for a method), "
                   "which is what the grader reads. "
                   "The last cell runs this assignment's public checks.\n\n"
                   f"The grader runs hidden tests as well ({a.points:g} points in all): "
                   "each backward against float64 central differences on shapes you do not see, "
                   "each forward against reference outputs. A relative error below 1e-6 "
                   "earns a test's points, anything else 0.")]
    cells.append(_cell("code", "import numpy as np\n\nimport coursework\nimport npfm"))
    seen = set()
    for module, name in a.functions:
        header, body, module_doc = _function_parts(module, name)
        if module not in seen:
            seen.add(module)
            cells.append(_cell("markdown", f"## `{file_path(module)}`\n\n```\n{module_doc}\n```"))
        cls, _, method = name.rpartition(".")
        if cls:
            cells.append(_cell("markdown", f"### `{name}`\n\nThe class it belongs to:\n\n```\n"
                               f"{_class_doc(module, cls)}\n```\n"))
        if solutions:
            code = (header + "    ### BEGIN SOLUTION\n" + body.rstrip("\n") + "\n"
                    "    ### END SOLUTION\n")
        else:
            code = header + "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
        if cls:                                     # a method: save it into its class
            code = (f"from {import_name(module)} import {cls}\n\n\n" + code
                    + f"\n\ncoursework.save({method}, {cls})")
        else:
            code += f"\n\ncoursework.save({name})"
        meta = {"nbgrader": {"grade": False, "solution": True, "locked": False,
                             "grade_id": f"a{a.number}_{name.replace('.', '_')}", "schema_version": 3}}
        cells.append(_cell("code", code, **meta))
    graded = "\n".join(f"- {t.name} ({t.points:g} {'point' if t.points == 1 else 'points'}, "
                        f"{'hidden' if t.hidden else 'public'})" for t in a.tests)
    cells.append(_cell("markdown", f"## What is graded\n\n{graded}"))
    cells.append(_cell("markdown", "## Check\n\nThe public checks: your backward against "
                       "central differences of your forward, and properties of the forward."))
    cells.append(_cell("code", f"assert coursework.check({a.number})"))
    return _notebook(cells)


def write_student_files(student, chosen):
    os.makedirs(os.path.join(student, "notebooks"), exist_ok=True)
    os.makedirs(os.path.join(student, "tests"), exist_ok=True)
    concepts = {a.number: a.concepts for a in chosen}
    with open(os.path.join(student, "coursework.py"), "w") as f:
        f.write(COURSEWORK.replace("ASSIGNMENTS = {}", f"ASSIGNMENTS = {concepts!r}")
                .replace("TRAINING = {}", f"TRAINING = {TRAINING!r}")
                .replace('SCENARIOS = ""', f"SCENARIOS = r'''{SCENARIOS}'''"))
    with open(os.path.join(student, "tests", "test_public.py"), "w") as f:
        f.write(TEST_PUBLIC)
    listing = "\n".join(f"- Assignment {a.number} ({a.points:g} points): {a.title}. Write "
                        + ", ".join(f"`{import_name(m)}.{n}`" for m, n in a.functions)
                        for a in chosen)
    with open(os.path.join(student, "README.md"), "w") as f:
        f.write(README.replace("LISTING", listing))
    for a in chosen:
        with open(os.path.join(student, "notebooks", f"assignment{a.number}.ipynb"), "w") as f:
            json.dump(_assignment_notebook(a, solutions=False), f, indent=1)


def write_instructor_files(folder, chosen):
    os.makedirs(folder, exist_ok=True)
    for a in chosen:
        with open(os.path.join(folder, f"assignment{a.number}.ipynb"), "w") as f:
            json.dump(_assignment_notebook(a, solutions=True), f, indent=1)
    return folder
