"""The word-level caption tokenizer used by CLIP."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.tokenizers.words import WordTokenizer, split_words

CAPTIONS = ["a small red circle in the top left", "A blue SQUARE, top-right.", "a handwritten 7"]


def test_split_lowercases_and_keeps_words_and_numerals():
    assert split_words("A blue SQUARE, top-right.") == ["a", "blue", "square", "top", "right"]
    assert split_words("a handwritten 7") == ["a", "handwritten", "7"]
    assert split_words("  ...  ") == []
    assert split_words("café") == ["caf"]                         # non-ASCII letters separate


def test_vocabulary_specials_first_then_sorted_words():
    tok = WordTokenizer.train(CAPTIONS)
    assert tok.tokens[:3] == ["[PAD]", "[EOT]", "[UNK]"]
    assert (tok.pad_id, tok.eot_id, tok.unk_id) == (0, 1, 2)
    words = tok.tokens[3:]
    assert words == sorted(words) and "square" in words and "7" in words
    assert tok.vocab_size == 3 + len(set(w for c in CAPTIONS for w in split_words(c)))


def test_unknown_words_become_unk_never_an_error():
    tok = WordTokenizer.train(CAPTIONS)
    ids = tok.encode("a purple circle")
    assert ids.dtype == np.int32
    assert ids.tolist() == [tok.ids["a"], tok.unk_id, tok.ids["circle"]]
    assert tok.encode("").tolist() == []


def test_encode_batch_appends_eot_pads_and_truncates():
    tok = WordTokenizer.train(CAPTIONS)
    ids = tok.encode_batch(["a red circle", "a small red circle in the top left"], context=5)
    assert ids.shape == (2, 5) and ids.dtype == np.int32
    assert ids[0].tolist() == [tok.ids["a"], tok.ids["red"], tok.ids["circle"], 1, 0]
    # 8 words do not fit: the first context - 1 = 4 are kept, then [EOT]
    assert ids[1].tolist() == [tok.ids[w] for w in ["a", "small", "red", "circle"]] + [1]
    assert tok.encode_batch("a red circle", 4).shape == (1, 4)     # one caption is a batch of one
    with pytest.raises(ValueError, match="context must be >= 2"):
        tok.encode_batch(["a"], 1)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["a", "small", "red", "circle", "7", "zebra", "top"]), max_size=8))
def test_decode_inverts_encode_for_known_words(words):
    tok = WordTokenizer.train(CAPTIONS)
    text = " ".join(words)
    ids = tok.encode_batch([text], context=10)[0]
    expected = " ".join(w if w in tok.ids else "[UNK]" for w in words)
    assert tok.decode(ids) == expected


def test_dict_round_trip_and_files(tmp_path):
    tok = WordTokenizer.train(CAPTIONS)
    again = WordTokenizer.from_dict(tok.to_dict())
    assert again.tokens == tok.tokens
    path = tmp_path / "words.json"
    tok.save(path)
    assert WordTokenizer.load(path).tokens == tok.tokens


def test_bad_input():
    with pytest.raises(TypeError, match="expected a str"):
        WordTokenizer.train(CAPTIONS).encode(7)
    with pytest.raises(TypeError, match="list of captions"):
        WordTokenizer.train("a red circle")
    with pytest.raises(ValueError, match="no words"):
        WordTokenizer.train(["...", ""])
    with pytest.raises(ValueError, match="duplicates"):
        WordTokenizer(["red", "red"])
    with pytest.raises(ValueError, match="is not a word"):
        WordTokenizer(["Red"])
    with pytest.raises(ValueError, match="type 'words'"):
        WordTokenizer.from_dict({"type": "bytes"})
    with pytest.raises(ValueError, match="outside the vocabulary"):
        WordTokenizer.train(CAPTIONS).decode([1000])
