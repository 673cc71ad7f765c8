import json
import os
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.data import sources
from npfm.tokenizers import BPETokenizer, load_tokenizer, tokenizer_from_dict
from npfm.tokenizers.bpe import SPLIT_PATTERN, learn_merges, merge_pair

FEW = settings(max_examples=40, deadline=None)
EOT = "<|endoftext|>"


def stdlib_text(*names):
    root = sources.stdlib_dir()
    return "\n\n".join(sources.read_text(os.path.join(root, n)) for n in names)


TRAIN_TEXT = stdlib_text("json/decoder.py", "json/encoder.py", "textwrap.py") + (
    "\nNaïve café owners say « bonjour ». Καλημέρα κόσμε. 日本語のテキスト. 🙂🙂\n")


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer.train(TRAIN_TEXT, vocab_size=600, special_tokens=[EOT])


def reference_merges(texts, n_merges, min_frequency=2):
    """BPE the slow, obvious way: count every pair again before each merge."""
    words = Counter(tuple(chunk.encode("utf-8"))
                    for text in texts for chunk in re.findall(SPLIT_PATTERN, text))
    merges = []
    while len(merges) < n_merges:
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))   # most frequent, then smallest pair
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        merged = Counter()
        for word, count in words.items():
            merged[tuple(merge_pair(list(word), best, 255 + len(merges)))] += count
        words = merged
    return merges, words


def test_merge_pair():
    assert merge_pair([1, 2, 2, 2], (2, 2), 9) == [1, 9, 2]
    assert merge_pair([1, 2, 1, 2], (1, 2), 7) == [7, 7]
    assert merge_pair([], (1, 2), 7) == []


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet="ab c_é1'", max_size=30), min_size=1, max_size=5),
       st.integers(0, 30), st.integers(1, 3))
def test_incremental_training_matches_full_recount(texts, n_merges, min_frequency):
    tok = BPETokenizer.train(texts, 256 + n_merges, min_frequency=min_frequency)
    merges, words = reference_merges(texts, n_merges, min_frequency)
    assert tok.merges == merges
    # encoding by merge rank gives the tokens training ended with
    for word in words:
        chunk = b"".join(tok.token_bytes[token] for token in word).decode("utf-8")
        assert tok._encode_chunk(chunk) == list(word)


def test_ties_are_broken_by_the_smallest_pair():
    tok = BPETokenizer.train(["xy", "ab", "xy", "ab"], vocab_size=300)
    assert tok.merges == [(ord("a"), ord("b")), (ord("x"), ord("y"))]
    assert tok.vocab_size == 258                        # then nothing occurs twice


def test_training_is_deterministic(tok):
    again = BPETokenizer.train(TRAIN_TEXT, vocab_size=600, special_tokens=[EOT])
    assert again.merges == tok.merges
    assert tok.vocab_size == 600 and len(tok.merges) == 600 - 256 - 1


def test_chunks_of_different_texts_never_merge():
    tok = BPETokenizer.train(["ab"] * 5 + ["cd"] * 5, vocab_size=300)
    assert (ord("b"), ord("c")) not in tok.ranks


def test_learned_tokens_look_like_code(tok):
    words = {tok.token_bytes[256 + k] for k in range(len(tok.merges))}
    assert b" self" in words and b"    " in words


@FEW
@given(st.text())
def test_round_trip_and_ids_in_range(tok, text):
    ids = tok.encode(text)
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert ids.min(initial=0) >= 0 and ids.max(initial=0) < tok.vocab_size - 1  # never EOT
    assert tok.decode(ids) == text


def test_compresses_python_code(tok):
    code = stdlib_text("string.py", "bisect.py")        # not in the training text
    n_tokens = len(tok.encode(code))
    assert tok.decode(tok.encode(code)) == code
    assert len(code.encode("utf-8")) / n_tokens > 1.8


def test_special_tokens_only_by_id(tok):
    eot = tok.special_tokens[EOT]
    assert eot == tok.vocab_size - 1
    assert eot not in tok.encode(f"a{EOT}b").tolist()   # the literal text stays text
    ids = np.concatenate([tok.encode("one"), [eot], tok.encode("two")])
    assert tok.decode(ids) == f"one{EOT}two"


@FEW
@given(st.text(max_size=60))
def test_stream_decoder_emits_only_complete_characters(tok, text):
    stream = tok.stream_decoder()
    shown = ""
    for i in tok.encode(text):
        shown += stream.push(int(i))
        assert text.startswith(shown)
    assert shown + stream.flush() == text


@FEW
@given(st.lists(st.integers(0, 599), max_size=30))
def test_stream_decoder_matches_decode_on_any_ids(tok, ids):
    stream = tok.stream_decoder()
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == tok.decode(ids)


def test_save_load_and_dict_round_trip(tok, tmp_path):
    text = TRAIN_TEXT[:3000] + " ünïcödé 🙂"
    d = json.loads(json.dumps(tok.to_dict()))
    path = tmp_path / "bpe.json"
    tok.save(path)
    for other in (BPETokenizer.from_dict(d), tokenizer_from_dict(d),
                  BPETokenizer.load(path), load_tokenizer(path)):
        assert isinstance(other, BPETokenizer)
        assert other.vocab_size == tok.vocab_size
        assert other.special_tokens == tok.special_tokens
        assert np.array_equal(other.encode(text), tok.encode(text))


def test_errors(tok):
    with pytest.raises(ValueError, match="600"):
        tok.decode([5, 600])
    with pytest.raises(ValueError, match="vocab_size=100"):
        BPETokenizer.train("abc", vocab_size=100)
    with pytest.raises(TypeError, match="str"):
        BPETokenizer.train([b"abc"], vocab_size=300)
    with pytest.raises(TypeError, match="str"):
        tok.encode(None)
    with pytest.raises(ValueError, match="merge 1"):
        BPETokenizer.from_dict({"type": "bpe", "merges": [[97, 98], [300, 1]]})
    with pytest.raises(ValueError, match="'bytes'"):
        BPETokenizer.from_dict({"type": "bytes"})
    with pytest.raises(ValueError, match="twice"):
        BPETokenizer(special_tokens=[EOT, EOT])
