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

Loading never trusts the file: arrays are read with ``allow_pickle=False``
(a pickled object array is refused, never run), and a small hostile file
cannot make the loader allocate much. Each member's ``.npy`` header (its
dtype and shape, the first bytes of the member) is read first, without
inflating the data; then the model ``config`` in ``meta`` is checked
against those shapes (``CONFIG_SHAPES``: a config saying dim=4096 beside
arrays of width 16 is refused before any model is built from it), and a
member whose header shape the config does not allow is refused before its
data is read. Only then is every array read, inside one ``try``, with each
member's CRC-32 checked: a truncated or damaged file raises
``CheckpointError`` and nothing half-loaded is returned.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FORMAT_NAME = "npfm-checkpoint"
META_LIMIT = 256 * 2**20            # bytes of the JSON meta entry
SIZE_LIMIT = 2**24                  # no size in a model config is larger


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
    path: str = ""                  # where it was read from

    def need(self, key):
        """``extra[key]``, or a CheckpointError naming what the file lacks."""
        if not isinstance(self.extra, dict) or key not in self.extra:
            raise CheckpointError(f"{self.path or 'the checkpoint'!r} has no {key!r} in its extra "
                                  f"entries: it was not written by this npfm command, or is damaged")
        return self.extra[key]


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
        with zipfile.ZipFile(path) as archive:
            members = _member_headers(archive, path)       # {name: (info, shape, dtype)}
            if "meta" not in members:
                raise CheckpointError(f"{path!r} is not an npfm checkpoint: it has no 'meta' "
                                      f"entry (entries: {sorted(members)[:5]})")
            _, meta_shape, meta_dtype = members["meta"]
            if (meta_dtype != np.uint8 or len(meta_shape) != 1
                    or meta_shape[0] > META_LIMIT):
                raise CheckpointError(f"{path!r} is corrupted: its meta entry is {meta_dtype} "
                                      f"of shape {meta_shape}, not at most {META_LIMIT} bytes")
            meta_bytes = _read_member(archive, members["meta"][0]).tobytes()
            meta = _parse_meta(meta_bytes, path)
            if kind is not None and meta.get("kind") != kind:
                raise CheckpointError(f"{path!r} is a {meta.get('kind')} checkpoint, "
                                      f"expected {kind}")
            _check_entries_and_shapes(path, meta, members)
            arrays = {name: _read_member(archive, info)    # read and CRC-check all now
                      for name, (info, _, _) in members.items() if name != "meta"}
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path!r} is truncated or corrupted "
                              f"({type(e).__name__}: {e})") from e
    return _checkpoint_from(path, meta, arrays, kind)


def _parse_meta(meta_bytes, path):
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
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
    if not isinstance(meta.get("config", {}), dict):
        raise CheckpointError(f"{path!r} is corrupted: its config is not a JSON object")
    return meta


def _checkpoint_from(path, meta, arrays, kind):
    version = meta["version"]
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{path!r} is a {meta.get('kind')} checkpoint, expected {kind}")
    step = meta.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path!r} is corrupted: its step is {step!r}")

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
                      step=step, rng_state=meta.get("rng_state"),
                      extra=meta.get("extra"), path=path)


# ----- reading without trusting the file -------------------------------------------

def _member_headers(archive, path):
    """{entry name: (ZipInfo, shape, dtype)} from each member's .npy header alone.

    Only the first bytes of each member are inflated (the magic string and the
    header dictionary, parsed by NumPy's safe literal reader), so a member that
    claims to hold 1 GB costs nothing until it is read.
    """
    members = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise CheckpointError(f"{path!r} has an unexpected entry {info.filename!r}")
        name = info.filename[:-len(".npy")]
        if name in members:
            raise CheckpointError(f"{path!r} has the entry {name!r} twice")
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise CheckpointError(f"{path!r}: entry {name!r} has .npy format {version}")
            header_size = f.tell()
        if dtype.hasobject:
            raise CheckpointError(f"{path!r}: entry {name!r} holds Python objects (dtype "
                                  f"{dtype}), which only pickle could load; refused")
        if header_size + math.prod(shape) * dtype.itemsize != info.file_size:
            raise CheckpointError(f"{path!r} is corrupted: entry {name!r} says shape {shape} "
                                  f"of {dtype}, but the member holds {info.file_size} bytes")
        members[name] = (info, tuple(shape), dtype)
    return members


def _read_member(archive, info):
    """One member's array (allow_pickle=False), its CRC-32 checked to the last byte."""
    with archive.open(info) as f:
        array = np.lib.format.read_array(f, allow_pickle=False)
        if f.read():                            # reading to the end checks the CRC-32
            raise CheckpointError(f"entry {info.filename!r} has bytes after its array")
    return array


def _layers(prefix):
    """The number of blocks ``prefix.0``, ``prefix.1``, ... among the model entries."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")

    def count(shapes):
        return len({m.group(1) for name in shapes if (m := pattern.match(name))})
    return count


def _dim(name, axis, *others):
    """The size of axis ``axis`` of entry ``name`` (or of the first of ``others``
    present: the same size under another layout's name), None if none is there."""
    def get(shapes):
        for n in (name, *others):
            if n in shapes and len(shapes[n]) > axis:
                get.entry = n
                return shapes[n][axis]
        get.entry = name
        return None
    get.entry = name
    return get


_GPT = {"vocab_size": _dim("tok_emb.W", 0), "dim": _dim("tok_emb.W", 1),
        "hidden": _dim("blocks.0.ffn.fc1.W", 1, "blocks.0.ffn.W_gate"), "n_layers": _layers("blocks"),
        "context": _dim("pos.W", 0)}
_BERT = {"vocab_size": _dim("bert.tok_emb.W", 0), "dim": _dim("bert.tok_emb.W", 1),
         "max_len": _dim("bert.pos.W", 0), "type_vocab_size": _dim("bert.seg_emb.W", 0),
         "hidden": _dim("bert.blocks.0.ffn.fc1.W", 1), "n_layers": _layers("bert.blocks")}
_CLIP = {"vocab_size": _dim("text.tok_emb.W", 0), "dim": _dim("text.tok_emb.W", 1),
         "context": _dim("text.pos.W", 0), "embed_dim": _dim("text.proj.W", 1),
         "hidden": _dim("text.blocks.0.ffn.fc1.W", 1), "image_layers": _layers("image.blocks"),
         "text_layers": _layers("text.blocks")}
_DALLE = {"dim": _dim("tok_emb.W", 1), "hidden": _dim("blocks.0.ffn.fc1.W", 1),
          "n_layers": _layers("blocks")}

# kind -> {config field: what the arrays' header shapes say it must be}. Every
# field that sizes an array is here (or, like CLIP's image size, is bounded by
# one that is), so a config that passes builds a model no larger than the
# arrays the file declares.
CONFIG_SHAPES = {"gpt": _GPT, "bert": _BERT, "bert-finetune": _BERT, "clip": _CLIP,
                 "dalle": _DALLE}
# derived sizes: (what, from the config, from the shapes)
DERIVED_SHAPES = {
    "clip": [("image patches + 1",
              lambda c: (c["image_size"] // c["patch"]) ** 2 + 1, _dim("image.pos.W", 0)),
             ("patch * patch * channels",
              lambda c: c["patch"] ** 2 * c["channels"], _dim("image.patch_embed.W", 0))],
    "dalle": [("text_vocab + 2 + n_codes",
               lambda c: c["text_vocab"] + 2 + c["n_codes"], _dim("tok_emb.W", 0)),
              ("text_len + 1", lambda c: c["text_len"] + 1, _dim("pos.text_pos", 0)),
              ("image_size / patch", lambda c: c["image_size"] // c["patch"],
               _dim("pos.row_pos", 0))],
}
POSITIVE_FIELDS = {"n_heads", "patch", "image_size", "channels", "text_len", "text_vocab",
                   "n_codes"}


def _check_entries_and_shapes(path, meta, members):
    """Refuse, before any array is read, what would build or fill a wrong model."""
    for name in members:
        prefix, _, key = name.partition("/")
        if name != "meta" and (prefix not in ("model", "optim") or not key):
            raise CheckpointError(f"{path!r} has an unexpected entry {name!r}")
    rules = CONFIG_SHAPES.get(meta.get("kind"))
    if rules is None:
        return
    config = meta.get("config", {})
    shapes = {name[len("model/"):]: shape for name, (_, shape, _) in members.items()
              if name.startswith("model/")}
    bad = []
    for field in sorted(set(rules) | POSITIVE_FIELDS):
        if field not in config:
            continue
        value = config[field]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SIZE_LIMIT:
            bad.append(f"{field} is {value!r} (need an integer in [1, {SIZE_LIMIT}])")
    if bad:
        raise CheckpointError(f"{path!r}: its model config is invalid: " + "; ".join(bad))
    if "n_heads" in config and "dim" in config and config["dim"] % config["n_heads"]:
        raise CheckpointError(f"{path!r}: its model config is invalid: dim {config['dim']} is "
                              f"not divisible by n_heads {config['n_heads']}")
    checks = [(field, config[field], rule(shapes), getattr(rule, "entry", None))
              for field, rule in rules.items() if field in config]
    for what, expected, rule in DERIVED_SHAPES.get(meta.get("kind"), []):
        try:
            checks.append((what, expected(config), rule(shapes), rule.entry))
        except (KeyError, TypeError, ZeroDivisionError):
            raise CheckpointError(f"{path!r}: its model config (a {meta.get('kind')!r} checkpoint) "
                                  f"lacks what {what} needs") from None
    for field, value, found, entry in checks:
        if found is None:
            if field == "context" and (config.get("positions") == "sinusoidal"
                                       or config.get("arch") == "llama"):
                continue                            # computed positions: no entry to compare
            raise CheckpointError(f"{path!r}: its config sets {field} = {value}, but it has no "
                                  f"array {entry!r} of that size")
        if found != value:
            where = f"its array {entry!r} has shape {shapes[entry]}" if entry else \
                f"its arrays hold {found}"
            raise CheckpointError(f"{path!r}: its config says {field} = {value}, but {where}: "
                                  f"the config and the arrays disagree")
    # with the config checked, no member may be much larger than the arrays it sizes
    checked = [math.prod(shapes[r.entry]) for r in rules.values() if getattr(r, "entry", None)
               in shapes]
    limit = 8 * max(checked, default=0) + 4096
    for name, (_, shape, _) in members.items():
        if name != "meta" and math.prod(shape) > limit:
            raise CheckpointError(f"{path!r}: entry {name!r} has shape {shape}, larger than any "
                                  f"array its model config allows; refused before reading it")


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
