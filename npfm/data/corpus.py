"""Text corpora for language models, split into training and validation.

    load_corpus("stdlib")         the standard library's .py files (the default)
    load_corpus("pydoc")          Python's documentation topics, in English
    load_corpus("notes.txt")      one text file
    load_corpus("my/folder")      every text file beneath a folder

The split is by *document* (a file, or a pydoc topic), so no document is in
both parts. A document goes to validation when a stable hash of its name is
small:

    crc32(name) < val_fraction * 2**32

The decision depends only on the name, so it is the same on every machine
and does not move when files are added or removed. If no document lands in
validation (a tiny folder), the last document goes there. A corpus of one
document (a single file) is split by position instead: the last
``val_fraction`` of its text, starting at a line, is the validation part.

``max_bytes`` reads only the first documents, in a fixed order (sorted by
name), until the training part holds ``max_bytes`` bytes (the document that
crosses the limit is kept whole) and the validation part about
``max_bytes * val_fraction``. Files are read only when needed, so a small
``max_bytes`` is fast.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field

from . import sources

SEPARATOR = "\n\n"          # between documents in train_text and val_text
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__"}
SNIFF_BYTES = 8192          # a file with a NUL byte this early is binary


@dataclass
class Corpus:
    """Documents split into training and validation.

    train_docs, val_docs: lists of (name, text). train_text and val_text are
    the documents' texts joined by ``separator`` (a blank line), ready for a
    tokenizer.
    """

    name: str
    train_docs: list
    val_docs: list
    separator: str = SEPARATOR
    train_text: str = field(init=False, repr=False)
    val_text: str = field(init=False, repr=False)

    def __post_init__(self):
        self.train_text = self.separator.join(text for _, text in self.train_docs)
        self.val_text = self.separator.join(text for _, text in self.val_docs)

    def describe(self):
        """One line: where the text came from and how it is split."""
        def part(docs, text):
            n = utf8_size(text)
            size = f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} KB"
            return f"{len(docs):,} docs, {size}"
        return (f"corpus {self.name}: train {part(self.train_docs, self.train_text)}; "
                f"validation {part(self.val_docs, self.val_text)}")


def in_validation(name, val_fraction):
    """True when the document ``name`` belongs to validation (a hash of the name decides)."""
    return zlib.crc32(name.encode("utf-8")) < val_fraction * 2**32


def utf8_size(text):
    return len(text.encode("utf-8"))


def split_documents(items, val_fraction, max_bytes=None):
    """Split (name, load) items into train and validation documents by name.

    items: (name, load) pairs in a fixed order, where ``load()`` returns the
    document's text, or None to skip it (a binary file). Only the documents
    kept are loaded. Returns (train_docs, val_docs), lists of (name, text).
    """
    train_cap = float("inf") if max_bytes is None else max_bytes
    val_cap = float("inf") if max_bytes is None else max(max_bytes * val_fraction, 1)
    train, val = [], []
    train_bytes = val_bytes = 0
    for name, load in items:
        goes_to_val = in_validation(name, val_fraction)
        full = val_bytes >= val_cap if goes_to_val else train_bytes >= train_cap
        if full:
            if train_bytes >= train_cap and val_bytes >= val_cap:
                break
            continue
        text = load()
        if not text:
            continue
        if goes_to_val:
            val.append((name, text))
            val_bytes += utf8_size(text)
        else:
            train.append((name, text))
            train_bytes += utf8_size(text)
    if not val and val_fraction > 0 and len(train) > 1:
        val.append(train.pop())
    if not train and len(val) > 1:
        train.append(val.pop(0))
    return train, val


def split_by_position(name, text, val_fraction):
    """One document cut in two: the last ``val_fraction`` of it, from a line start, is validation."""
    cut = round(len(text) * (1 - val_fraction))
    line_start = text.find("\n", cut) + 1
    if 0 < line_start < len(text):
        cut = line_start
    train = [(name, text[:cut])] if text[:cut] else []
    val = [(name, text[cut:])] if text[cut:] else []
    return train, val


def read_text_file(path):
    """A file's text, or None when it looks binary (a NUL byte early, or not UTF-8).

    Windows line ends become "\\n"; a UTF-8 byte-order mark is dropped.
    """
    with open(path, "rb") as f:
        data = f.read()
    if b"\0" in data[:SNIFF_BYTES]:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n")


def folder_files(root):
    """Paths of the files beneath ``root``, relative with '/', sorted."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for filename in filenames:
            rel = os.path.relpath(os.path.join(dirpath, filename), root)
            paths.append(rel.replace(os.sep, "/"))
    return sorted(paths)


def _read_later(read, arg):
    """A function of no arguments that returns read(arg)."""
    return lambda: read(arg)


def load_corpus(spec="stdlib", val_fraction=0.05, max_bytes=None):
    """Read a corpus and split it into training and validation documents.

    spec: "stdlib" (the running Python's standard library .py files),
    "pydoc" (the documentation topics of ``pydoc_data``), or the path of a
    text file or of a folder (every text file beneath it, recursively, in
    order of relative path; binary files, ``.git`` and ``__pycache__`` are
    skipped). To read a folder named "stdlib" or "pydoc", write "./stdlib".

    val_fraction: in [0, 1), the share of documents kept for validation.
    max_bytes: stop reading once the training part holds this many bytes.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"load_corpus: val_fraction must be in [0, 1), got {val_fraction}")
    if max_bytes is not None and max_bytes <= 0:
        raise ValueError(f"load_corpus: max_bytes must be positive, got {max_bytes}")

    if spec == "stdlib":
        root = sources.stdlib_dir()
        items = [(rel, _read_later(sources.read_text, os.path.join(root, rel)))
                 for rel in sources.stdlib_python_files(root)]
        train, val = split_documents(items, val_fraction, max_bytes)
        return Corpus("stdlib", train, val)

    if spec == "pydoc":
        items = [(name, _read_later(str, text)) for name, text in sources.pydoc_documents()]
        train, val = split_documents(items, val_fraction, max_bytes)
        return Corpus("pydoc", train, val)

    path = os.fspath(spec)
    if os.path.isfile(path):
        text = read_text_file(path)
        if not text:
            raise ValueError(f"load_corpus: {path} is empty or not a UTF-8 text file")
        if max_bytes is not None:
            limit = int(max_bytes + max(max_bytes * val_fraction, 1))
            text = text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
        train, val = split_by_position(os.path.basename(path), text, val_fraction)
        return Corpus(path, train, val)

    if os.path.isdir(path):
        items = [(rel, _read_later(read_text_file, os.path.join(path, rel)))
                 for rel in folder_files(path)]
        train, val = split_documents(items, val_fraction, max_bytes)
        if len(train) + len(val) == 1:
            (name, text), = train + val
            train, val = split_by_position(name, text, val_fraction)
        if not train and not val:
            raise ValueError(f"load_corpus: no text files found under {path}")
        return Corpus(path, train, val)

    raise ValueError(f"load_corpus: {spec!r} is not 'stdlib', 'pydoc', a file or a folder "
                     f"(no such path)")
