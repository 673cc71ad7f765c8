"""Re-execute the notebooks and store their outputs, so the repository page shows them.

    python notebooks/execute.py                 every notebook, in a Jupyter kernel if possible
    python notebooks/execute.py 02_gpt.ipynb    one notebook
    python notebooks/execute.py --plain         without Jupyter: exec each code cell

With nbclient and ipykernel importable the notebooks run in a real kernel
(PYTHONPATH set to the repository root, so the kernel imports this npfm).
Otherwise, or with --plain, each code cell is exec'd in one namespace; its
printed text becomes a "stream" output and each picture passed to
``npfm.pictures.show`` an "image/png" output, in nbformat 4 JSON.

Each notebook then records, in its metadata under "npfm", the SHA-256 of its
code cells and of every npfm source file it imported. tests/test_notebooks.py
recomputes both and fails when they differ: the stored outputs were made by
other code than the code there now.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import pathlib
import sys
import tempfile
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

# printed by a last, temporary cell: the npfm files the notebook imported
_IMPORTED = ("import json as _json, sys as _sys\n"
             "print('NPFM-IMPORTED ' + _json.dumps(sorted({m.__file__ for m in list(_sys.modules.values())"
             " if getattr(m, '__name__', '').split('.')[0] == 'npfm' and getattr(m, '__file__', None)})))")


def code_sources(nb):
    """The source of each code cell, as one string per cell."""
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]


def code_hash(nb):
    """SHA-256 of the code cells, in order (outputs and markdown do not count)."""
    h = hashlib.sha256()
    for source in code_sources(nb):
        h.update(source.encode("utf-8") + b"\0")
    return h.hexdigest()


def file_hash(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def source_hashes(files):
    """{path relative to the repository root: SHA-256} for npfm files under ROOT."""
    out = {}
    for f in files:
        f = pathlib.Path(f).resolve()
        try:
            rel = f.relative_to(ROOT)
        except ValueError:
            continue                                # an npfm from elsewhere: not ours to track
        out[rel.as_posix()] = file_hash(f)
    return dict(sorted(out.items()))


def strip_magics(source):
    """IPython magics and shell escapes are not Python: drop those lines for plain exec."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def _lines(text):
    return text.splitlines(keepends=True)


class PlainKernel:
    """Code cells exec'd one after another in one namespace, in directory ``cwd``,
    as a Jupyter kernel runs them: a cell may be run again, or with other source."""

    def __init__(self, cwd):
        self.cwd = cwd
        self.namespace = {"__name__": "__main__"}

    def run(self, source, index, what=""):
        """Exec ``source`` as code cell ``index``; return its outputs as an nbformat 4 list.

        Printed text becomes a "stream" output and each picture passed to
        ``npfm.pictures.show`` an "image/png" output. Raises RuntimeError naming
        the cell (and ``what`` ran in it, e.g. " with its answer") when it fails.
        """
        import npfm.pictures as pictures
        outputs, buffer = [], io.StringIO()

        def flush():
            text = buffer.getvalue()
            if text:
                outputs.append({"output_type": "stream", "name": "stdout", "text": _lines(text)})
            buffer.seek(0)
            buffer.truncate()

        def take(png):
            flush()
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"image/png": base64.b64encode(png).decode("ascii"),
                                     "text/plain": ["<PNG image>"]}})

        old_cwd, old_sink = os.getcwd(), pictures.sink
        os.chdir(self.cwd)
        pictures.sink = take
        try:
            with contextlib.redirect_stdout(buffer):
                exec(compile(strip_magics(source), f"cell {index}", "exec"), self.namespace)
        except Exception as err:
            flush()
            raise RuntimeError(f"code cell {index}{what} failed: {err!r}\n{source}\n"
                               f"{traceback.format_exc()}") from err
        finally:
            pictures.sink = old_sink
            os.chdir(old_cwd)
        flush()
        return outputs


def run_plain(nb, cwd):
    """Exec each code cell of ``nb`` in one namespace (a PlainKernel), in directory ``cwd``.

    Returns (outputs per code cell as nbformat 4 output lists, the namespace).
    Raises RuntimeError naming the cell that failed.
    """
    kernel = PlainKernel(cwd)
    outputs = [kernel.run(source, i) for i, source in enumerate(code_sources(nb))]
    return outputs, kernel.namespace


def jupyter_available():
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
    except ImportError:
        return False
    return True


def run_jupyter(nb, cwd, timeout=600):
    """Execute ``nb`` (a dict) in a fresh python3 kernel; returns the executed dict."""
    import nbclient
    import nbformat
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([before] if before else []))  # the kernel inherits it
    try:
        node = nbformat.reads(json.dumps(nb), as_version=4)          # sources as strings
        client = nbclient.NotebookClient(node, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    return json.loads(nbformat.writes(node))


def imported_files(outputs):
    """The file list printed by the temporary _IMPORTED cell."""
    for out in outputs:
        text = "".join(out.get("text", []))
        for line in text.splitlines():
            if line.startswith("NPFM-IMPORTED "):
                return json.loads(line[len("NPFM-IMPORTED "):])
    raise RuntimeError("the notebook did not report its imports")


def execute(path, plain=False):
    """Run one notebook and write it back with outputs and the npfm metadata. Returns seconds."""
    path = pathlib.Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    probe = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
             "source": _lines(_IMPORTED)}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="npfm_nb_") as cwd:
        if plain or not jupyter_available():
            outputs, _ = run_plain({"cells": nb["cells"] + [probe]}, cwd)
            files = imported_files(outputs[-1])
            count = 0
            for cell in nb["cells"]:
                if cell["cell_type"] == "code":
                    count += 1
                    cell["outputs"], cell["execution_count"] = outputs[count - 1], count
            runner = "exec"
        else:
            done = run_jupyter({**nb, "cells": nb["cells"] + [probe]}, cwd)
            files = imported_files(done["cells"][-1]["outputs"])
            nb["cells"] = done["cells"][:-1]
            runner = "jupyter"
    seconds = time.perf_counter() - t0
    nb.setdefault("metadata", {})["npfm"] = {
        "code_sha256": code_hash(nb),
        "sources_sha256": source_hashes(files),
        "executed_with": runner,
        "how": "python notebooks/execute.py",
    }
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)       # nbclient timestamps: noise in diffs
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(prog="notebooks/execute.py", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="names in notebooks/ (default: all)")
    parser.add_argument("--plain", action="store_true", help="exec the cells, without Jupyter")
    args = parser.parse_args(argv)
    paths = [HERE / n for n in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    for p in paths:
        if not p.is_file():
            print(f"npfm: error: no notebook {p}", file=sys.stderr)
            return 2
    sys.path.insert(0, str(ROOT))
    for p in paths:
        seconds = execute(p, args.plain)
        print(f"{p.name}: {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
