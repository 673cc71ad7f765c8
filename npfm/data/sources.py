"""Real text that every Python installation carries.

* the standard library's own ``.py`` files (a code corpus), and
* ``pydoc_data.topics``: the English prose of Python's documentation
  (the text ``help("for")`` shows), one document per topic.
"""

from __future__ import annotations

import os
import sysconfig


def stdlib_dir():
    """The folder of the running interpreter's standard library."""
    return sysconfig.get_paths()["stdlib"]


def stdlib_python_files(root=None):
    """Relative paths of the standard library's ``.py`` files, sorted.

    Deterministic order: sorted by relative path with '/' separators.
    ``site-packages`` (third-party code) is left out.
    """
    root = root or stdlib_dir()
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in ("site-packages", "dist-packages", "__pycache__"))
        for name in filenames:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                paths.append(rel.replace(os.sep, "/"))
    return sorted(paths)


def read_text(path):
    """A file's text as UTF-8 (undecodable bytes replaced, never an error)."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def pydoc_documents():
    """The topics of ``pydoc_data.topics`` as a list of (name, text), sorted by name."""
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some distributions strip it
        raise RuntimeError("this Python has no pydoc_data.topics; pass --data PATH instead") from err
    return [(name, topics[name]) for name in sorted(topics)]
