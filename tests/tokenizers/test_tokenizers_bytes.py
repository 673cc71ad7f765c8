import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.tokenizers import (ByteTokenizer, StreamDecoder, load_tokenizer,
                             tokenizer_from_dict)

tok = ByteTokenizer()
FEW = settings(max_examples=60, deadline=None)


def test_encode_is_utf8_bytes():
    ids = tok.encode("é!")
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert ids.tolist() == [195, 169, 33]
    assert tok.vocab_size == 256 and tok.type == "bytes"
    assert tok.encode("").shape == (0,)


@FEW
@given(st.text())
def test_round_trip(text):
    ids = tok.encode(text)
    assert ids.min(initial=0) >= 0 and ids.max(initial=0) < tok.vocab_size
    assert tok.decode(ids) == text
    assert tok.decode(ids.tolist()) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


def test_decode_invalid_utf8_is_replaced_not_raised():
    assert tok.decode([0xC3]) == "\ufffd"              # half of "é"
    assert tok.decode([0xA9, 33]) == "\ufffd!"         # a continuation byte first
    assert tok.decode([]) == ""
    assert tok.decode(np.int64(65)) == "A"


@pytest.mark.parametrize("bad", [[65, 256], [-1], [300, 1]])
def test_decode_out_of_range_names_the_id(bad):
    wrong = [i for i in bad if not 0 <= i < 256][0]
    with pytest.raises(ValueError, match=str(wrong)):
        tok.decode(bad)


def test_bad_inputs():
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"bytes")
    with pytest.raises(TypeError, match="integers"):
        tok.decode([1.5, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(np.zeros((2, 2), np.int32))


@FEW
@given(st.text())
def test_stream_decoder_emits_only_complete_characters(text):
    stream = StreamDecoder(tok)
    shown = ""
    for i in tok.encode(text):
        shown += stream.push(int(i))
        assert text.startswith(shown)                 # never a partial character
    shown += stream.flush()
    assert shown == text


@FEW
@given(st.lists(st.integers(0, 255), max_size=40))
def test_stream_decoder_matches_decode_on_any_bytes(ids):
    stream = tok.stream_decoder()
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == tok.decode(ids)


def test_stream_decoder_holds_back_a_split_character():
    stream = tok.stream_decoder()
    assert stream.push(0xC3) == ""
    assert stream.push(0xA9) == "é"
    assert stream.push(0xC3) == ""
    assert stream.flush() == "\ufffd"                 # the stream ended mid-character


def test_dict_and_file_round_trip(tmp_path):
    d = tok.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert isinstance(tokenizer_from_dict(d), ByteTokenizer)
    path = tmp_path / "tok.json"
    tok.save(path)
    for loaded in (ByteTokenizer.load(path), load_tokenizer(path)):
        assert np.array_equal(loaded.encode("héllo"), tok.encode("héllo"))


def test_from_dict_errors():
    with pytest.raises(ValueError, match="unknown tokenizer type 'nope'"):
        tokenizer_from_dict({"type": "nope"})
    with pytest.raises(ValueError, match="'bpe'"):
        ByteTokenizer.from_dict({"type": "bpe"})
    with pytest.raises(TypeError, match="dict"):
        tokenizer_from_dict("bytes")
