"""Reading and writing PNG files with ``zlib`` and ``struct`` only.

A PNG file is an 8-byte signature followed by *chunks*. Each chunk is

    length (4 bytes, big-endian) | type (4 ASCII letters) | data | CRC-32 of type + data

and three kinds are enough for an 8-bit image:

    IHDR  width, height, bit depth (8), colour type, compression 0, filter 0, interlace 0
    IDAT  the zlib-compressed scanlines (may be split over several IDAT chunks)
    IEND  the end (no data)

The colour type says how many bytes make a pixel:

    0  gray        1 byte      (H, W)
    2  RGB         3 bytes     (H, W, 3)
    4  gray+alpha  2 bytes     (H, W, 2)    read only
    6  RGBA        4 bytes     (H, W, 4)

Before compression every scanline gets a one-byte *filter type* that predicts
each byte from its neighbours (a left, b above, c above-left) and stores the
difference modulo 256:

    0 None      x
    1 Sub       x - a
    2 Up        x - b
    3 Average   x - floor((a + b) / 2)
    4 Paeth     x - paeth(a, b, c)      (the one of a, b, c closest to a + b - c)

``write_png`` uses filter 0 on every row (simple, and flat pictures compress
well anyway); ``read_png`` undoes all five, so it reads other simple PNGs too.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# channels -> PNG colour type, and back
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_CHANNELS = {v: k for k, v in _COLOUR_TYPE.items()}


def to_uint8(image, who="to_uint8"):
    """An image as uint8: uint8 passes through, floats in [0, 1] become round(255 x).

    Float values outside [0, 1] are clipped; NaN or infinity is an error.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == bool or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"{who}: image must be uint8 (0..255) or float in [0, 1], "
                         f"got dtype {image.dtype}; convert with image.astype(np.uint8)")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"{who}: image contains NaN or infinite values")
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_image(image, who):
    """The image as a (H, W, channels) uint8 array, channels in 1..4."""
    image = to_uint8(image, who)
    if image.ndim == 2:
        image = image[:, :, None]                                    # (H, W, 1)
    if image.ndim != 3:
        raise ValueError(f"{who}: image must be (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA, "
                         f"got shape {image.shape}")
    if image.shape[2] not in _COLOUR_TYPE:
        raise ValueError(f"{who}: image has {image.shape[2]} channels (shape {image.shape}); "
                         "expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{who}: image is empty, shape {image.shape}")
    return image


def _chunk(kind, data):
    """One chunk: length, type, data, CRC-32 over type + data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(image, compression=6):
    """The bytes of a PNG file holding ``image``.

    image: (H, W) gray, (H, W, 1) gray, (H, W, 3) RGB or (H, W, 4) RGBA, as uint8,
    or as floats in [0, 1] (converted with round(255 x), values outside clipped).
    """
    image = _check_image(image, "encode_png")
    height, width, channels = image.shape
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[channels], 0, 0, 0)
    rows = image.reshape(height, width * channels)                   # (H, W*channels)
    filtered = np.empty((height, 1 + width * channels), np.uint8)    # filter byte + row
    filtered[:, 0] = 0
    filtered[:, 1:] = rows
    return (PNG_SIGNATURE
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), compression))
            + _chunk(b"IEND", b""))


def write_png(path, image, compression=6):
    """Write ``image`` to ``path`` as a PNG (see ``encode_png`` for what it accepts).

    The file is written to a temporary file beside ``path`` and renamed into
    place, so a reader never sees half a picture. Returns ``path``.
    """
    data = encode_png(image, compression)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _paeth(a, b, c):
    """Of a (left), b (above), c (above-left): the one nearest p = a + b - c (ties: a, b, c)."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(raw, height, width, bpp):
    """Undo the per-row filters: raw (H * (1 + W*bpp),) bytes -> (H, W*bpp) uint8.

    Sub and Up are vectorised (a cumulative sum, an addition); Average and
    Paeth depend on the byte just reconstructed to the left, so they go pixel
    by pixel. Arithmetic is in int64 and taken modulo 256.
    """
    stride = width * bpp
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + stride).astype(np.int64)
    out = np.zeros((height, stride), np.int64)                       # (H, W*bpp)
    prior = np.zeros(stride, np.int64)                               # the row above the first is 0
    for i in range(height):
        kind, line = rows[i, 0], rows[i, 1:]
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(stride) % 256
        elif kind == 2:
            cur = (line + prior) % 256
        elif kind in (3, 4):
            cur = np.zeros(stride, np.int64)
            left = np.zeros(bpp, np.int64)
            up_left = np.zeros(bpp, np.int64)
            for j in range(width):
                s = slice(j * bpp, (j + 1) * bpp)
                up = prior[s]
                guess = (left + up) // 2 if kind == 3 else _paeth(left, up, up_left)
                cur[s] = (line[s] + guess) % 256
                left, up_left = cur[s], up
        else:
            raise ValueError(f"read_png: row {i} has unknown filter type {kind}")
        out[i] = cur
        prior = cur
    return out.astype(np.uint8)


def decode_png(data):
    """The image in the bytes of a PNG file: (H, W) uint8 for gray, else (H, W, channels).

    Supports 8-bit gray, gray+alpha, RGB and RGBA, not interlaced (what
    ``encode_png`` writes and what most simple PNGs are). Checks every CRC.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_png expects bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("decode_png: not a PNG file (the 8-byte signature is missing)")
    pos, header, idat = len(PNG_SIGNATURE), None, []
    while True:
        if pos + 8 > len(data):
            raise ValueError("decode_png: the file ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc_bytes = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc_bytes) != 4:
            raise ValueError(f"decode_png: chunk {kind!r} is cut short")
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", crc_bytes)[0]:
            raise ValueError(f"decode_png: chunk {kind!r} has a wrong CRC (the file is damaged)")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("decode_png: no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in _CHANNELS:
        raise ValueError(f"decode_png: only 8-bit gray/gray+alpha/RGB/RGBA is supported, "
                         f"got bit depth {depth}, colour type {colour_type}")
    if interlace != 0:
        raise ValueError("decode_png: interlaced PNGs are not supported")
    channels = _CHANNELS[colour_type]
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != height * (1 + width * channels):
        raise ValueError(f"decode_png: the image data has {len(raw)} bytes, expected "
                         f"{height * (1 + width * channels)} for {width}x{height}x{channels}")
    image = _unfilter(raw, height, width, channels).reshape(height, width, channels)
    return image[:, :, 0] if channels == 1 else image


def read_png(path):
    """Read a PNG file: (H, W) uint8 gray, or (H, W, 2|3|4) uint8."""
    with open(path, "rb") as f:
        return decode_png(f.read())
