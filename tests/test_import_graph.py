"""The import graph of npfm runs one way and has no cycles.

Every ``import`` and ``from ... import`` inside npfm that names an npfm module
is an edge, wherever it sits in the file (an import inside a function is a
dependency too, only a later one). The ladder, lowest first:

    textbook -> fast -> Modules -> models -> tasks -> evaluation -> CLI

A module may import from its own part of the package and from any lower
level, never from a higher one. Each part of the package has a level below,
with the reason it sits there. The implicit import of a parent package
(``npfm.fast.layernorm`` runs ``npfm/fast/__init__.py`` first, and every
module runs ``npfm/__init__.py``) is not an edge: only what a file writes is.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "npfm"

LEVELS = {
    # the textbook floor: the pure pairs, NumPy only
    "functional": 0,
    # the fast floor: the same pairs with threads and BLAS; it imports the
    # textbook for what it does not rewrite (constants, erf, the lookup) and
    # to fall back on the textbook pair where no kernel pays
    "fast": 1,
    # Modules: Parameter and Module (core), the layers (nn), and what works on
    # any Module: the gradient check, the optimisers, the config mixin of the
    # model configs. The package's face (npfm/__init__.py) re-exports core and
    # the fast floor's switch, so it sits here too.
    "core": 2, "nn": 2, "gradcheck": 2, "optim": 2, "config": 2, "": 2,
    # the models, built from Modules
    "models": 3,
    # beside the models, above them so that no model reads text or files:
    # what a model eats (tokenizers), what a run writes (checkpoints, PNGs,
    # plots, safetensors, run folders, progress lines, argument types). They
    # import only core, the package's face or one another.
    "tokenizers": 4, "checkpoint": 4, "png": 4, "plot": 4, "safetensors": 4,
    "runfolder": 4, "progress": 4, "argtypes": 4,
    # built on those: data sets (from tokenizers), Hugging Face weights
    # (models + tokenizers + safetensors), the shared training loop (Modules,
    # optimisers, checkpoints, plots: it takes a task and never imports one),
    # and the notebooks' inline pictures (plot)
    "data": 5, "interop": 5, "train": 5, "pictures": 5,
    # what a model brings to the loop: batches, loss, metrics, data adapters;
    # beside them the other things a command runs: the gradient check of every
    # model (checks) and the coursework kit (course)
    "tasks": 6, "checks": 6, "course": 6,
    # evaluation uses tasks (the DALL-E judge trains on the task's data)
    "evaluation": 7,
    # the command line: parses arguments and calls everything below
    "cli": 8, "__main__": 8,
    # the PyTorch twins are references outside the ladder, as the benchmarks
    # are: they may import the floors, and nothing in npfm imports them
    "torch_twins": 9,
}


def module_name(path, root=PACKAGE):
    """npfm/fast/layernorm.py -> 'npfm.fast.layernorm'; npfm/nn/__init__.py -> 'npfm.nn'."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module):
    """The part of the package a module belongs to: 'npfm.fast.layernorm' -> 'fast'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(source, module, is_package, modules):
    """The npfm modules that ``source`` (the text of ``module``) imports."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in import_statements(source):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from . import plot`` names a module; ``from .plot import draw_text`` a name in one
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            if name != "npfm" and not name.startswith("npfm."):
                continue
            while name not in modules and "." in name:
                name = name.rpartition(".")[0]          # npfm.fast.pair -> npfm.fast
            if name != module:
                found.add(name)
    return found


@functools.lru_cache(maxsize=None)
def import_statements(source):
    """The import statements of a file's text, parsed once per text: the copies of
    the package that the can-fail tests make differ from it in one file only."""
    return tuple(node for node in ast.walk(ast.parse(source))
                 if isinstance(node, (ast.Import, ast.ImportFrom)))


def import_graph(root=PACKAGE):
    """{module: set of npfm modules it imports} for every .py file under ``root``."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    return {m: imports_of(p.read_text(encoding="utf-8"), m, p.name == "__init__.py", paths)
            for m, p in paths.items()}


def find_cycle(graph):
    """One cycle [a, b, ..., a] of the graph, or None."""
    state = {}                                          # 1: on the path, 2: done

    def visit(node, path):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def upward_edges(graph):
    """(importer, imported) pairs where a lower level imports a higher one."""
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if part_of(a) != part_of(b) and LEVELS[part_of(a)] < LEVELS[part_of(b)])


GRAPH = import_graph()


def test_every_part_of_the_package_has_a_level():
    assert sorted({part_of(m) for m in GRAPH} - set(LEVELS)) == []


def test_the_import_graph_has_no_cycle():
    assert find_cycle(GRAPH) is None


def test_no_lower_level_imports_a_higher_one():
    assert upward_edges(GRAPH) == []


def test_nothing_in_npfm_imports_the_pytorch_twins():
    assert sorted(a for a, targets in GRAPH.items() for b in targets
                  if part_of(b) == "torch_twins" and part_of(a) != "torch_twins") == []


@pytest.mark.parametrize("name, text, wrong", [
    ("functional/bad.py", "from ..fast.layernorm import layernorm_forward\n",
     ("npfm.functional.bad", "npfm.fast.layernorm")),
    ("models/bad.py", "def f():\n    from ..tokenizers import WordTokenizer\n",
     ("npfm.models.bad", "npfm.tokenizers")),
    ("nn/bad.py", "import npfm.tasks.gpt\n", ("npfm.nn.bad", "npfm.tasks.gpt")),
])
def test_the_level_check_can_fail(tmp_path, name, text, wrong):
    """A copy of the package with one upward import (lazy ones too) is caught."""
    copy = _copy_package(tmp_path)
    (copy / name).write_text(text, encoding="utf-8")
    assert wrong in upward_edges(import_graph(copy))


def test_the_cycle_check_can_fail(tmp_path):
    copy = _copy_package(tmp_path)
    (copy / "png.py").write_text((PACKAGE / "png.py").read_text(encoding="utf-8")
                                 + "\nfrom . import plot\n", encoding="utf-8")
    cycle = find_cycle(import_graph(copy))
    assert cycle is not None and "npfm.png" in cycle


def _copy_package(tmp_path):
    copy = tmp_path / "npfm"
    for path in PACKAGE.rglob("*.py"):
        target = copy / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return copy
