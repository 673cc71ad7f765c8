"""API and file-format leniency (issue 10, item 7): each case gets the library's own error."""

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npfm.core import Module, Parameter
from npfm.nn import MultiHeadAttention
from npfm.models.sampling import sample_from_logits, sample_next
from npfm.models.gpt import GPT, GPTConfig, preset
from npfm.safetensors import SafetensorsError, load_safetensors, save_safetensors


# ----- MultiHeadAttention -------------------------------------------------------------

@pytest.mark.parametrize("n_heads", [0, -2, 3, 2.0, True])
def test_attention_refuses_bad_head_counts(n_heads):
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadAttention(8, n_heads)


def test_gpt_config_refuses_zero_heads():
    with pytest.raises(ValueError, match="n_heads"):
        GPTConfig(dim=16, n_heads=0)


@pytest.mark.parametrize("shape", [(2, 5, 9), (2, 4, 8), (5, 8), (2, 5, 8, 1)])
def test_attention_backward_refuses_a_wrong_shape_dy(shape):
    attn = MultiHeadAttention(8, 2, causal=True)
    attn.forward(np.zeros((2, 5, 8), np.float32))
    with pytest.raises(ValueError, match="dy has shape"):
        attn.backward(np.ones(shape, np.float32))


def test_empty_sequences_are_refused_clearly():
    with pytest.raises(ValueError, match="no positions"):
        MultiHeadAttention(8, 2).forward(np.zeros((2, 0, 8), np.float32))
    with pytest.raises(ValueError, match="T >= 1"):
        GPT(preset("tiny")).forward(np.zeros((2, 0), np.int64))


# ----- load_state_dict ------------------------------------------------------------------

class One(Module):
    def __init__(self):
        self.w = Parameter(np.zeros(3, np.float32))


@pytest.mark.parametrize("value", [
    np.array([1.0, None, 2.0], dtype=object),
    np.array(["a", "b", "c"]),
    np.array([1 + 2j, 0, 0]),
    np.array([1, 2, 3], dtype=np.int64),
    np.array([True, False, True]),
    [1.0, 2.0, 3.0],
])
def test_load_state_dict_refuses_what_is_not_a_float_array(value):
    m = One()
    with pytest.raises(TypeError, match="'w'"):
        m.load_state_dict({"w": value})
    np.testing.assert_array_equal(m.w.data, 0)          # untouched


def test_load_state_dict_still_casts_between_floats():
    m = One()
    m.load_state_dict({"w": np.array([1.0, 2.0, 3.0], np.float64)})
    assert m.w.data.dtype == np.float32 and m.w.data[2] == 3


# ----- samplers -------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_sample_next_refuses_nan_logits(temperature):
    logits = np.array([1.0, np.nan, 0.5])
    with pytest.raises(ValueError, match="logits contain NaN"):
        sample_next(logits, np.random.default_rng(0), temperature=temperature)
    with pytest.raises(ValueError, match="logits contain NaN"):
        sample_next(np.array([0.0, np.inf]), np.random.default_rng(0), temperature=temperature)


@pytest.mark.parametrize("top_k", [1.5, 2.0, "2", True])
def test_top_k_must_be_an_integer(top_k):
    with pytest.raises(ValueError, match="top_k"):
        sample_next(np.zeros(5), np.random.default_rng(0), top_k=top_k)
    with pytest.raises(ValueError, match="top_k"):
        sample_from_logits(np.zeros((2, 5)), np.random.default_rng(0), top_k=top_k)


def test_sample_from_logits_refuses_nan_and_a_bad_temperature():
    logits = np.zeros((3, 4))
    logits[1, 2] = np.nan
    for temperature in (0.0, 1.0):
        with pytest.raises(ValueError, match="NaN"):
            sample_from_logits(logits, np.random.default_rng(0), temperature=temperature)
    with pytest.raises(ValueError, match="temperature"):
        sample_from_logits(np.zeros((3, 4)), np.random.default_rng(0), temperature=float("nan"))


# ----- safetensors: the reader's own error for every malformed header ------------------

def write_raw(path, header_text, buffer=b""):
    blob = header_text.encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + buffer)
    return path


ONE = '"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}'


@pytest.mark.parametrize("header, buffer, message", [
    ("{" + ONE + ", " + ONE + "}", bytes(8), "twice"),
    ("{" + ONE + "}", bytes(12), "belong to no tensor"),
    ('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', bytes(8), "belong to no tensor"),
    ('{"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}', bytes(8), "dtype"),
    ('{"a": {"dtype": {"x": 1}, "shape": [2], "data_offsets": [0, 8]}}', bytes(8), "dtype"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", b"", "nests too deeply|not valid"),
    ('{"a": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 8]}}',
     bytes(8), "not valid"),
    ('{"a": {"dtype": "F32", "shape": ' + json.dumps([1] * 65) + ', "data_offsets": [0, 4]}}',
     bytes(4), "65 dimensions"),
])
def test_malformed_safetensors_headers_raise_the_readers_error(tmp_path, header, buffer, message):
    path = write_raw(tmp_path / "x.safetensors", header, buffer)
    with pytest.raises(SafetensorsError, match=message):
        load_safetensors(path)


@settings(max_examples=20, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(0, 3), max_size=3), min_size=1, max_size=4))
def test_files_the_writer_makes_still_load(tmp_path_factory, shapes):
    path = tmp_path_factory.mktemp("st") / "ok.safetensors"
    tensors = {f"t{i}": np.arange(int(np.prod(s)), dtype=np.float32).reshape(s)
               for i, s in enumerate(shapes)}
    save_safetensors(path, tensors)
    loaded = load_safetensors(path)
    for name, value in tensors.items():
        np.testing.assert_array_equal(loaded[name], value)

