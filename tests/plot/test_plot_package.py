import ast
import inspect

import npfm.plot as plot
from npfm.plot import canvas, curves, figures, text


def defined_names(module):
    """The public names a file defines at its top level (functions and constants)."""
    names = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(t.id for t in ast.walk(target) if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def test_npfm_plot_offers_every_name_of_its_files():
    """``from npfm.plot import draw_text`` keeps working: the package re-exports its files."""
    for module in (canvas, curves, figures, text):
        missing = defined_names(module) - set(plot.__all__)
        assert not missing, f"{module.__name__}: {sorted(missing)}"
    assert all(getattr(plot, n) is not None for n in plot.__all__)
