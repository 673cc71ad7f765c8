"""The run folder (``--out``): one writer at a time, and what a killed run leaves behind.

A training run owns its folder while it runs:

* **a lock**: ``OUT/.lock`` is created with O_CREAT | O_EXCL (atomic: of two
  runs starting together exactly one creates it) and holds the writer's
  process id. A second run into the same folder is refused, naming that
  process. A lock whose process is dead (the run was killed) is stale: it
  is taken over with a note.
* **leftovers**: a save killed mid-write leaves its temporary file
  ``.checkpoint.npz.<pid>.<random>.tmp`` (the checkpoint itself stays whole,
  see ``npfm.checkpoint``). Holding the lock, no other run can be writing
  one, so every such file is removed.
* **a torn last line**: a kill during an append leaves the last line of
  ``metrics.jsonl`` cut short. That line is dropped with a note; a damaged
  line anywhere else is an error naming the file and line.

Opening the lock is also the check that the folder can be written: a
read-only folder, or an ``--out`` that names a file, is refused before the
first training step rather than at the first save.
"""

from __future__ import annotations

import errno
import glob
import json
import os

LOCK_NAME = ".lock"


class RunFolderError(ValueError):
    """The run folder cannot be used: busy, not writable, not a folder, or damaged."""


def pid_alive(pid):
    """True if a process with this id exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:             # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def make_run_folder(out_dir):
    """Create ``out_dir`` (and parents); a clear RunFolderError if that is impossible."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunFolderError(f"--out {out_dir!r} is a file, not a folder: choose another --out")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"cannot create the run folder {out_dir!r}: "
                             f"{e.strerror or e}") from None


class RunLock:
    """``with RunLock(out_dir, note=print):`` holds ``out_dir/.lock`` for the run."""

    def __init__(self, out_dir, note=None):
        self.path = os.path.join(out_dir, LOCK_NAME)
        self.out_dir = out_dir
        self.note = note or (lambda message: None)
        self.held = False

    def acquire(self):
        for _ in range(3):                      # a stale lock is removed, then retried
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and pid_alive(holder):    # this process too: a nested run
                    raise RunFolderError(
                        f"{self.out_dir!r} is in use by another run (process {holder} holds "
                        f"{self.path}); wait for it to finish or choose another --out") from None
                self.note(f"note: removing the stale lock of process {holder} "
                          f"(no longer running) in {self.out_dir}")
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            except OSError as e:
                if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise RunFolderError(f"the run folder {self.out_dir!r} is not writable "
                                         f"({e.strerror}): choose another --out") from None
                raise RunFolderError(f"cannot write in the run folder {self.out_dir!r}: "
                                     f"{e.strerror or e}") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise RunFolderError(f"cannot take the lock {self.path}: it keeps reappearing")

    def _holder(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None                         # unreadable or half-written: treat as stale

    def release(self):
        if self.held:
            self.held = False
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def remove_stale_temporaries(out_dir, note=None):
    """Delete the ``.*.tmp`` files killed saves left in ``out_dir``; returns (count, bytes).

    Call only while holding the folder's lock (no save can be in progress).
    """
    count, size = 0, 0
    for path in glob.glob(os.path.join(glob.escape(out_dir), ".*.tmp")):
        try:
            size += os.path.getsize(path)
            os.remove(path)
            count += 1
        except OSError:
            pass
    if count and note is not None:
        note(f"note: removed {count} temporary file(s) ({size / 1e6:.1f} MB) left by "
             f"interrupted saves in {out_dir}")
    return count, size


def read_jsonl(path, note=None):
    """The records of a JSON-lines file; a torn last line is dropped (with a note).

    Returns (records, torn) where torn says whether a last line was dropped.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    records, torn = [], False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if all(not rest.strip() for rest in lines[i + 1:]):
                torn = True
                if note is not None:
                    note(f"note: dropped the torn last line {i + 1} of {path} "
                         f"(a run killed while writing it)")
                break
            raise RunFolderError(f"{path} line {i + 1} is not valid JSON ({e}); "
                                 f"remove or fix that line") from None
        records.append(record)
    return records, torn


def check_run_folder(out_dir, resume=False, overwrite=False, checkpoint_name="checkpoint.npz"):
    """The early check a command makes before it loads data: refuse now what ``train``
    would refuse later (an --out that is a file or not writable, another run's checkpoint)."""
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunFolderError(f"--out {out_dir!r} is a file, not a folder: choose another --out")
    existing = out_dir
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    existing = existing or "."
    if not os.path.isdir(existing):
        raise RunFolderError(f"--out {out_dir!r} lies under {existing!r}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(f"the run folder {out_dir!r} is not writable "
                             f"({existing!r} is read-only for this user): choose another --out")
    if not resume and not overwrite and os.path.exists(os.path.join(out_dir, checkpoint_name)):
        raise RunFolderError(
            f"{out_dir!r} already holds a run's checkpoint: add --resume to continue it, "
            f"--overwrite to replace it, or choose another --out")


def check_output_file(path, overwrite=False, option="--out"):
    """Refuse, before any work, an output path that is a folder, lies in no folder that can
    be written, or names an existing file (unless ``overwrite``)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise RunFolderError(f"{option} {path!r} is a folder; give a file name such as "
                             f"{os.path.join(path, 'grid.png')!r}")
    if os.path.exists(path) and not overwrite:
        raise RunFolderError(f"{option} {path!r} already exists: add --overwrite to replace it, "
                             f"or choose another name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise RunFolderError(f"{option} {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunFolderError(f"{option} {path!r}: the folder {folder!r} is not writable")
