"""A small reader and writer of the safetensors format (Hugging Face checkpoints).

A ``.safetensors`` file is three parts:

    [ N : 8 bytes, unsigned little-endian ]
    [ header : N bytes of UTF-8 JSON ]
    [ buffer : the raw bytes of every tensor ]

The header maps each tensor's name to where its bytes lie in the buffer:

    {"embeddings.word_embeddings.weight":
         {"dtype": "F32", "shape": [30522, 384], "data_offsets": [begin, end]},
     "__metadata__": {"format": "pt"}}            # optional, str -> str

``data_offsets`` count from the start of the buffer (not of the file), end
excluded, so ``end - begin`` must equal prod(shape) * itemsize. The bytes are
little-endian and C-ordered. The writer pads the header with spaces so the
buffer starts at a multiple of 8 bytes, as the reference writer does.

Every check that guards the reader raises ``SafetensorsError`` (a
``ValueError``) naming the problem, before a byte outside the buffer is read.
The rules are the reference implementation's: a name appears once; the
tensors tile the buffer exactly (no overlap, no hole, no trailing bytes
that no tensor owns); a dtype is one of the names below; a shape has at
most 64 dimensions (NumPy's limit). JSON that nests too deeply or holds
integers too long to convert is refused with the same error.
Each tensor is copied out of a memory map, so the file is closed on return.
BF16 (bfloat16) has no NumPy dtype: it is the upper 16 bits of a float32,
so it is read by shifting each uint16 into the high half of a uint32 and
viewing that as float32 (exact).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct

import numpy as np

# safetensors dtype name -> NumPy dtype of the stored bytes (little-endian).
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}

# NumPy dtype -> safetensors name, for the writer (bfloat16 is asked for by name).
NAMES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
         np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
         np.dtype(np.int8): "I8", np.dtype(np.uint64): "U64", np.dtype(np.uint32): "U32",
         np.dtype(np.uint16): "U16", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}

HEADER_LIMIT = 100_000_000  # the reference implementation refuses larger headers too


class SafetensorsError(ValueError):
    """A safetensors file (or the tensors to write) is malformed; the message says how."""


# ----- bfloat16 ----------------------------------------------------------------

def bfloat16_to_float32(bits):
    """uint16 bfloat16 bit patterns -> float32 values: bits << 16 viewed as float32."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float32_to_bfloat16(x):
    """float32 values -> uint16 bfloat16 bit patterns, rounding to nearest even.

    Keep the upper 16 bits after adding 0x7FFF plus the lowest kept bit, which
    rounds half to even; a NaN stays a (quiet) NaN.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)                     # room for the carry
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded)


# ----- reading ---------------------------------------------------------------------

MAX_DIMS = 64


def _unique_keys(pairs):
    """object_pairs_hook for json.loads: a repeated name is an error, not "the last wins"."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise SafetensorsError(f"the header names {key!r} twice")
        out[key] = value
    return out


def _parse_header(blob, file_size, path):
    """Header dict from the bytes after the length word, every entry checked."""
    try:
        header = json.loads(blob.decode("utf-8"), object_pairs_hook=_unique_keys)
    except SafetensorsError as err:
        raise SafetensorsError(f"{path}: {err}") from None
    except RecursionError:
        raise SafetensorsError(f"{path}: the header's JSON nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as err:         # ValueError: e.g. a 5000-digit integer
        raise SafetensorsError(f"{path}: the header is not valid UTF-8 JSON ({err})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header must be a JSON object, "
                               f"got {type(header).__name__}")
    buffer_size = file_size - 8 - len(blob)
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in info.items()):
                raise SafetensorsError(f"{path}: __metadata__ must map str to str")
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise SafetensorsError(f"{path}: tensor {name!r} needs 'dtype', 'shape' and "
                                   f"'data_offsets', got {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r} "
                                   f"(supported: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise SafetensorsError(f"{path}: tensor {name!r} has shape {shape!r}, "
                                   f"not a list of non-negative ints")
        if len(shape) > MAX_DIMS:
            raise SafetensorsError(f"{path}: tensor {name!r} has {len(shape)} dimensions; "
                                   f"at most {MAX_DIMS} are allowed")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int for o in offsets)):
            raise SafetensorsError(f"{path}: tensor {name!r} has data_offsets {offsets!r}, "
                                   f"not [begin, end]")
        begin, end = offsets
        if begin < 0 or end < begin:
            raise SafetensorsError(f"{path}: tensor {name!r} has data_offsets [{begin}, {end}]: "
                                   f"need 0 <= begin <= end")
        if end > buffer_size:
            raise SafetensorsError(f"{path}: tensor {name!r} ends at byte {end}, past the end "
                                   f"of the {buffer_size}-byte buffer")
        n_bytes = math.prod(shape) * DTYPES[dtype].itemsize
        if end - begin != n_bytes:
            raise SafetensorsError(f"{path}: tensor {name!r} has {end - begin} bytes, but "
                                   f"{dtype} of shape {shape} needs {n_bytes}")
        spans.append((begin, end, name))
    furthest_end, furthest_name = 0, None
    for begin, end, name in sorted(s for s in spans if s[1] > s[0]):  # empty ones overlap nothing
        if begin < furthest_end:
            raise SafetensorsError(f"{path}: tensors {furthest_name!r} and {name!r} overlap "
                                   f"in the buffer")
        if begin > furthest_end:
            raise SafetensorsError(f"{path}: bytes {furthest_end} to {begin} of the buffer "
                                   f"belong to no tensor")
        if end > furthest_end:
            furthest_end, furthest_name = end, name
    if furthest_end != buffer_size:
        raise SafetensorsError(f"{path}: the last {buffer_size - furthest_end} bytes of the "
                               f"{buffer_size}-byte buffer belong to no tensor")
    return header


def _read_header(f, path):
    file_size = os.fstat(f.fileno()).st_size
    if file_size < 8:
        raise SafetensorsError(f"{path}: {file_size} bytes is too short for a safetensors file "
                               f"(it starts with an 8-byte header length)")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > file_size - 8:
        raise SafetensorsError(f"{path}: the header length {n} is larger than the "
                               f"{file_size - 8} bytes after it")
    if n > HEADER_LIMIT:
        raise SafetensorsError(f"{path}: the header length {n} exceeds the limit {HEADER_LIMIT}")
    return _parse_header(f.read(n), file_size, path), 8 + n, file_size


def read_safetensors_header(path):
    """The checked JSON header: {name: {"dtype", "shape", "data_offsets"}, "__metadata__"?}."""
    with open(path, "rb") as f:
        header, _, _ = _read_header(f, path)
    return header


def load_safetensors(path):
    """{name: ndarray} of every tensor in the file, copied out (native byte order).

    F64/F32/F16 and the integer types keep their dtype; BF16 becomes float32;
    BOOL becomes bool. The ``__metadata__`` is in ``read_safetensors_header``.
    """
    tensors = {}
    with open(path, "rb") as f:
        header, start, file_size = _read_header(f, path)
        if file_size == start:                      # mmap cannot map an empty buffer
            data = b""
        else:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                dtype = DTYPES[info["dtype"]]
                begin, end = info["data_offsets"]
                count = (end - begin) // dtype.itemsize
                if count == 0:
                    stored = np.zeros(0, dtype=dtype)
                else:
                    stored = np.frombuffer(data, dtype=dtype, count=count, offset=start + begin)
                if info["dtype"] == "BF16":
                    value = bfloat16_to_float32(stored)
                elif info["dtype"] == "BOOL":
                    value = stored != 0
                else:
                    value = stored.astype(dtype.newbyteorder("="), copy=True)
                del stored                          # release the view before the map closes
                tensors[name] = value.reshape(info["shape"])
        finally:
            if isinstance(data, mmap.mmap):
                data.close()
    return tensors


# ----- writing ------------------------------------------------------------------------

def save_safetensors(path, tensors, metadata=None, bf16=()):
    """Write ``{name: array}`` as a safetensors file.

    metadata: optional {str: str}, stored as ``__metadata__``.
    bf16: names of float tensors to store as BF16 (rounded to nearest even).
    Tensors are laid out in name order, each C-contiguous and little-endian.
    """
    if not isinstance(tensors, dict):
        raise TypeError(f"save_safetensors expects a dict of arrays, got {type(tensors).__name__}")
    bf16 = set(bf16)
    unknown = bf16 - set(tensors)
    if unknown:
        raise SafetensorsError(f"save_safetensors: bf16 names {sorted(unknown)} are not tensors")
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        if not isinstance(name, str) or name == "__metadata__":
            raise SafetensorsError(f"save_safetensors: invalid tensor name {name!r}")
        array = np.asarray(tensors[name])
        if name in bf16:
            if not np.issubdtype(array.dtype, np.floating):
                raise SafetensorsError(f"save_safetensors: tensor {name!r} has dtype "
                                       f"{array.dtype}; only floats can be stored as BF16")
            dtype_name, stored = "BF16", float32_to_bfloat16(array)
        else:
            if array.dtype not in NAMES:
                raise SafetensorsError(f"save_safetensors: tensor {name!r} has unsupported "
                                       f"dtype {array.dtype}")
            dtype_name = NAMES[array.dtype]
            stored = array.astype(DTYPES[dtype_name], copy=False)
        blob = np.ascontiguousarray(stored).tobytes()
        header[name] = {"dtype": dtype_name, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in metadata.items()):
            raise SafetensorsError("save_safetensors: metadata must be a dict of str to str")
        header = {"__metadata__": dict(metadata), **header}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)           # the buffer starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
