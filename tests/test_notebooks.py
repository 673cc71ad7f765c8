"""Every notebook in notebooks/ runs top to bottom: code cells executed in order
in one fresh namespace with plain json + exec (no Jupyter needed)."""

import json
import os
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def code_cells(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            # IPython magics and shell escapes are not Python
            yield "\n".join(line for line in source.splitlines()
                            if not line.lstrip().startswith(("%", "!")))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                    # files a notebook writes land here
    namespace = {"__name__": "__main__"}
    for i, source in enumerate(code_cells(path)):
        try:
            exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{path.name}, code cell {i} failed: {err!r}\n{source}") from err
