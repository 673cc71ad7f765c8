"""One checkpoint format for every model: a single ``.npz`` file, no pickle.

A checkpoint is a zip archive of ``.npy`` arrays (what ``np.savez`` writes):

    model/<name>    one array per Parameter, from ``model.state_dict()``
    optim/<name>    one array per optimizer entry, from ``optimizer.state_dict()``
    meta            UTF-8 JSON bytes, stored as a uint8 array:
                    {"format": "npfm-checkpoint", "version": 1, "kind": "gpt",
                     "config": {...}, "step": 1200, "rng_state": ...,
                     "extra": ..., "has_optimizer": true, "npfm_version": "0.1.0"}

Arrays keep their dtype and shape exactly. Everything else goes through JSON,
so it must be JSON-able: tuples come back as lists and dict keys as strings.
Nothing is ever unpickled, so loading a checkpoint cannot run code.

Saving is atomic: the archive is written to a temporary file next to the
target, flushed to disk, then renamed over it with ``os.replace`` (atomic on
POSIX and Windows). A crash while saving leaves the previous checkpoint whole.

Loading reads every array at once, inside one ``try``: zip checks each
member's CRC-32 as it is read, so a truncated or damaged file raises
``CheckpointError`` and nothing half-loaded is returned.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FORMAT_NAME = "npfm-checkpoint"


class CheckpointError(ValueError):
    """A checkpoint cannot be used: corrupted, another kind, or from a newer npfm."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the path (catchable as CheckpointError or FileNotFoundError)."""


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns."""
    kind: str                       # "gpt", "bert", "clip", ...
    version: int                    # FORMAT_VERSION of the writer
    config: dict                    # the model's configuration (JSON)
    model_state: dict               # {name: ndarray} for model.load_state_dict
    optimizer_state: dict | None    # {name: ndarray} for optimizer.load_state_dict, or None
    step: int                       # optimizer steps taken when saved
    rng_state: Any = None           # e.g. Generator.bit_generator.state
    extra: Any = None               # tokenizer description, metrics, ...


def save_checkpoint(path, *, kind, config, model_state, optimizer_state=None, step=0,
                    rng_state=None, extra=None):
    """Write a checkpoint to ``path`` atomically (parent folders are created).

    kind: a non-empty string naming the model family ("gpt", "bert", ...).
    config: a JSON-able dict. model_state / optimizer_state: {name: ndarray}
    (optimizer_state may be None). step: an int >= 0. rng_state, extra: any
    JSON-able values (a PCG64 state's 128-bit integers are fine: JSON integers
    have no size limit). The file is written exactly at ``path`` (no ".npz"
    is appended). Returns the path.
    """
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"save_checkpoint: kind must be a non-empty string such as 'gpt', got {kind!r}")
    if not isinstance(config, dict):
        raise TypeError(f"save_checkpoint: config must be a dict, got {type(config).__name__}")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"save_checkpoint: step must be an integer >= 0, got {step!r}")
    arrays = _prefixed("model", model_state)
    if optimizer_state is not None:
        arrays.update(_prefixed("optim", optimizer_state))
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": kind,
            "config": config, "step": int(step), "rng_state": rng_state, "extra": extra,
            "has_optimizer": optimizer_state is not None, "npfm_version": _npfm_version()}
    try:
        text = json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint: config, rng_state and extra must be JSON-able: {e}") from None
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # a unique name in the same folder (a rename across file systems is not atomic)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())        # the bytes are on disk before the rename
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_folder(folder)               # and so is the rename
    return path


def load_checkpoint(path, kind=None):
    """Read a checkpoint written by ``save_checkpoint``; returns a ``Checkpoint``.

    kind: if given, the checkpoint must be of that kind.
    Raises CheckpointError (a ValueError) for a missing file (also a
    FileNotFoundError), a file that is not an npfm checkpoint, a truncated or
    corrupted file, a checkpoint of another kind, or one written by a newer npfm.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"no checkpoint at {path!r}: the file does not exist")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):      # a zip archive (or an empty one)
        raise CheckpointError(f"{path!r} is not an npfm checkpoint: it is not an .npz archive "
                              "(or its first bytes are corrupted)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}   # read and CRC-check all now
    except Exception as e:
        raise CheckpointError(f"{path!r} is truncated or corrupted "
                              f"({type(e).__name__}: {e})") from e

    if "meta" not in arrays:
        raise CheckpointError(f"{path!r} is not an npfm checkpoint: it has no 'meta' entry "
                              f"(entries: {sorted(arrays)[:5]})")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path!r} is truncated or corrupted: its meta entry is not "
                              f"valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path!r} is not an npfm checkpoint: its meta entry does not "
                              f"say format {FORMAT_NAME!r}")
    version = meta.get("version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path!r} is corrupted: its format version is {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path!r} was written by a newer npfm (format version {version}; "
                              f"this npfm {_npfm_version()} reads up to {FORMAT_VERSION}): upgrade npfm")
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{path!r} is a {meta.get('kind')} checkpoint, expected {kind}")

    model_state, optimizer_state = {}, {}
    for name, array in arrays.items():
        prefix, _, key = name.partition("/")
        if prefix == "model" and key:
            model_state[key] = array
        elif prefix == "optim" and key:
            optimizer_state[key] = array
        else:
            raise CheckpointError(f"{path!r} has an unexpected entry {name!r}")
    return Checkpoint(kind=meta["kind"], version=version, config=meta.get("config", {}),
                      model_state=model_state,
                      optimizer_state=optimizer_state if meta.get("has_optimizer") else None,
                      step=int(meta.get("step", 0)), rng_state=meta.get("rng_state"),
                      extra=meta.get("extra"))


# ----- helpers -------------------------------------------------------------------

def _prefixed(prefix, state):
    """{"prefix/name": ndarray}, refusing what np.savez would pickle."""
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint: {prefix} state must be a dict of arrays, "
                        f"got {type(state).__name__}")
    out = {}
    for name, value in state.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"save_checkpoint: {prefix} state has a key {name!r}; keys must be "
                            "non-empty strings")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"save_checkpoint: {prefix} entry {name!r} has dtype object, "
                            "which would need pickle; store numbers only")
        out[f"{prefix}/{name}"] = array
    return out


def _json_default(value):
    """Let NumPy scalars and arrays (e.g. an MT19937 key) through JSON as plain numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-able")


def _fsync_folder(folder):
    """Flush the folder entry so the rename survives a power cut (POSIX only)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return                                  # e.g. Windows cannot open a folder
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _npfm_version():
    from . import __version__
    return __version__
