import os
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.png import PNG_SIGNATURE, decode_png, encode_png, read_png, to_uint8, write_png

FEW = settings(max_examples=25, deadline=None)


@FEW
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([None, 1, 3, 4]), st.integers(0, 2**31))
def test_round_trip_is_exact_for_every_mode(h, w, channels, seed):
    shape = (h, w) if channels is None else (h, w, channels)
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    back = decode_png(encode_png(image))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, image[:, :, 0] if channels == 1 else image)


def test_file_starts_with_signature_and_header(tmp_path):
    path = tmp_path / "a.png"
    image = np.zeros((3, 5, 3), np.uint8)
    assert write_png(path, image) == os.fspath(path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    assert struct.unpack(">IIBBBBB", data[16:29]) == (5, 3, 8, 2, 0, 0, 0)
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29])
    assert data.endswith(b"IEND\xaeB`\x82")                       # the fixed CRC of IEND
    np.testing.assert_array_equal(read_png(path), image)


def test_write_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "b.png"
    write_png(path, np.zeros((2, 2), np.uint8))
    write_png(path, np.full((4, 3), 7, np.uint8))
    assert os.listdir(tmp_path) == ["b.png"]                      # no temporary file left
    assert read_png(path).shape == (4, 3)
    with pytest.raises(ValueError):
        write_png(tmp_path / "c.png", np.zeros((2, 2, 5), np.uint8))
    assert sorted(os.listdir(tmp_path)) == ["b.png"]


def test_float_images_are_scaled_rounded_and_clipped():
    image = np.array([[0.0, 0.5, 1.0, -0.2, 1.7, 0.1]], dtype=np.float32)
    np.testing.assert_array_equal(decode_png(encode_png(image)), [[0, 128, 255, 0, 255, 26]])
    np.testing.assert_array_equal(to_uint8(np.float64(1.0) * np.ones((1, 1))), [[255]])


@pytest.mark.parametrize("bad, error", [
    (np.zeros((2, 2, 2, 3), np.uint8), ValueError),                 # 4-D
    (np.zeros(5, np.uint8), ValueError),                            # 1-D
    (np.zeros((2, 2, 5), np.uint8), ValueError),                    # 5 channels
    (np.zeros((2, 2), np.int32), ValueError),                       # not uint8/float
    (np.zeros((2, 2), bool), ValueError),
    (np.full((2, 2), np.nan), ValueError),
    (np.zeros((0, 3), np.uint8), ValueError),
])
def test_bad_images_raise(bad, error):
    with pytest.raises(error):
        encode_png(bad)


def _filter_rows(image, kinds):
    """Apply PNG filter kinds[i] to row i (the reference definition, byte by byte)."""
    h, w, c = image.shape
    rows = image.reshape(h, w * c).astype(np.int64)
    out = []
    for i, kind in enumerate(kinds):
        line = rows[i]
        prior = rows[i - 1] if i else np.zeros_like(line)
        filt = [kind]
        for j in range(w * c):
            a = line[j - c] if j >= c else 0
            b = prior[j]
            cc = prior[j - c] if j >= c else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else cc
            filt.append((line[j] - pred) % 256)
        out.append(bytes(filt))
    return b"".join(out)


def _png_from_filtered(raw, w, h, colour_type, idat_pieces=1):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compress(raw)
    cut = np.linspace(0, len(z), idat_pieces + 1).astype(int)
    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))
            + b"".join(chunk(b"IDAT", z[cut[k]:cut[k + 1]]) for k in range(idat_pieces))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("levels", [256, 6])                     # 6 levels: many Paeth ties
@pytest.mark.parametrize("channels, colour_type", [(1, 0), (2, 4), (3, 2), (4, 6)])
def test_reads_all_five_filters(channels, colour_type, levels):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, levels, (10, 7, channels), dtype=np.uint8)
    kinds = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    data = _png_from_filtered(_filter_rows(image, kinds), 7, 10, colour_type, idat_pieces=3)
    back = decode_png(data)
    np.testing.assert_array_equal(back, image[:, :, 0] if channels == 1 else image)


def test_damaged_files_raise_clear_errors():
    data = bytearray(encode_png(np.arange(12, dtype=np.uint8).reshape(3, 4)))
    with pytest.raises(ValueError, match="signature"):
        decode_png(b"GIF89a" + bytes(data[6:]))
    data[40] ^= 0xFF                                                # inside IDAT
    with pytest.raises(ValueError, match="CRC"):
        decode_png(bytes(data))
    with pytest.raises(ValueError, match="IEND"):
        decode_png(encode_png(np.zeros((2, 2), np.uint8))[:-12])
    with pytest.raises(TypeError):
        decode_png("not bytes")


def test_pil_agrees(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for shape, mode in (((6, 9), "L"), ((6, 9, 3), "RGB"), ((6, 9, 4), "RGBA")):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        write_png(tmp_path / "ours.png", image)
        with Image.open(tmp_path / "ours.png") as im:
            assert im.mode == mode
            np.testing.assert_array_equal(np.asarray(im), image)
        Image.fromarray(image).save(tmp_path / "pil.png", optimize=True)
        np.testing.assert_array_equal(read_png(tmp_path / "pil.png"), image)
