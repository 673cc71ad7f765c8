"""The notebooks in notebooks/: they run, they show real pictures, their stored outputs are current.

* Every notebook runs top to bottom with plain ``exec`` (no Jupyter needed),
  and, where nbclient and ipykernel are installed, in a real Jupyter kernel.
* Each shows at least four pictures, and each stored picture is a real PNG
  (decoded with npfm.png: more than 16 pixels each way, not one colour).
* Each "your turn" cell comes with a check that says "Not yet" as the notebook
  is shipped and "Yes" once the cell's recorded answer is put in. Both are seen
  in the one run top to bottom, as a reader sees them in Jupyter: the answer is
  put in, that cell and the cells to its check re-run, the shipped cell put back.

Staleness. The notebooks are committed with their outputs, so a reader sees
them on the repository's page; the outputs must then be the ones today's
code produces. notebooks/execute.py stores in each notebook's metadata the
SHA-256 of its code cells and of every npfm source file the run imported; the
test recomputes both and fails ("re-run notebooks/execute.py") when either
differs. We chose hashes over re-running and comparing outputs because the
outputs hold timings and sampled text that differ from run to run, and over
re-running on change because a committed notebook whose pictures came from
older code is exactly what the reader must not see. The price: any edit to an
imported npfm file asks for a re-run (about five minutes for all five).
"""

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]
sys.path.insert(0, str(ROOT / "notebooks"))
import execute  # noqa: E402  (notebooks/execute.py: the runner and the hashes)

from npfm.pictures import is_picture  # noqa: E402

MIN_PICTURES = 4


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def pictures_in(cells_outputs):
    """The PNG bytes of every image/png output, from a list of output lists."""
    import base64
    return [base64.b64decode("".join(out["data"]["image/png"]))
            for outputs in cells_outputs for out in outputs
            if "image/png" in out.get("data", {})]


def stored_outputs(nb):
    return [c.get("outputs", []) for c in nb["cells"] if c["cell_type"] == "code"]


def text_of(outputs):
    return "".join("".join(out.get("text", "")) for out in outputs)


def check_pictures(pngs, name):
    assert len(pngs) >= MIN_PICTURES, f"{name} shows {len(pngs)} pictures, at least {MIN_PICTURES} wanted"
    for i, png in enumerate(pngs):
        ok, why = is_picture(png)
        assert ok, f"{name}, picture {i}: {why}"


def turns(nb):
    """[(index of the your-turn code cell, its answer, index of its check cell)] among code cells."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    found = []
    for i, cell in enumerate(code):
        meta = cell.get("metadata", {}).get("npfm", {})
        if meta.get("your_turn"):
            check = next(j for j in range(i + 1, len(code))
                         if code[j].get("metadata", {}).get("npfm", {}).get("check"))
            found.append((i, meta["answer"], check))
    return found


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_with_exec_and_its_answers_pass_their_checks(path, tmp_path):
    """The notebook as shipped runs top to bottom and shows its pictures; at each
    your-turn cell the reader does what one does in Jupyter: runs the cell and its
    check as shipped (the check says "Not yet"), puts the recorded answer in the
    cell and runs it and the cells up to its check again ("Yes"), then puts the
    shipped cell back and re-runs them ("Not yet" once more) when cells follow."""
    nb = load(path)
    found = turns(nb)
    assert found, f"{path.name} has no 'your turn' cell"
    turn_of_check = {check: (cell, answer) for cell, answer, check in found}
    assert len(turn_of_check) == len(found), f"{path.name}: two your-turn cells share one check"
    sources = execute.code_sources(nb)
    kernel = execute.PlainKernel(tmp_path)
    outputs = []
    try:
        for i, source in enumerate(sources):
            outputs.append(kernel.run(source, i))
            if i not in turn_of_check:
                continue
            cell, answer = turn_of_check[i]
            assert text_of(outputs[i]).startswith("Not yet"), \
                f"{path.name}: the check of code cell {i} passes before the reader changed anything"
            for j in range(cell, i + 1):
                said = text_of(kernel.run(answer if j == cell else sources[j], j, " with the answer in"))
            assert said.startswith("Yes"), f"{path.name}: with the answer in code cell {cell}, the check says {said!r}"
            if i + 1 < len(sources):                 # cells follow: they run after the shipped cell
                for j in range(cell, i + 1):
                    said = text_of(kernel.run(sources[j], j, " once the shipped cell is back"))
                assert said.startswith("Not yet"), \
                    f"{path.name}: with code cell {cell} as shipped again, the check says {said!r}"
    except RuntimeError as err:
        raise AssertionError(f"{path.name}: {err}") from None
    check_pictures(pictures_in(outputs), path.name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_outputs_hold_real_pictures(path):
    nb = load(path)
    check_pictures(pictures_in(stored_outputs(nb)), path.name)
    for i, outputs in enumerate(stored_outputs(nb)):
        for out in outputs:
            assert out["output_type"] != "error", f"{path.name}: code cell {i} stored an error"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_outputs_are_current(path):
    nb = load(path)
    meta = nb.get("metadata", {}).get("npfm")
    assert meta, f"{path.name} has no stored run: re-run notebooks/execute.py"
    assert meta["code_sha256"] == execute.code_hash(nb), \
        f"{path.name}: its code cells changed since its outputs were made: re-run notebooks/execute.py"
    stale = [name for name, digest in meta["sources_sha256"].items()
             if not (ROOT / name).is_file() or execute.file_hash(ROOT / name) != digest]
    assert not stale, (f"{path.name}: outputs made before these npfm files changed: {stale}; "
                       "re-run notebooks/execute.py")
    assert any(name.startswith("npfm/") for name in meta["sources_sha256"]), \
        f"{path.name}: the stored run recorded no npfm source"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_jupyter(path, tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("nbformat")
    nb = load(path)
    try:
        done = execute.run_jupyter(nb, tmp_path)
    except Exception as err:                     # nbclient's CellExecutionError names the cell
        raise AssertionError(f"{path.name} failed in a Jupyter kernel: {err}") from None
    check_pictures(pictures_in(stored_outputs(done)), path.name)
