"""GPT-2's byte-level BPE in npfm: its split pattern, its byte alphabet, its files.

The round trips npfm -> vocab.json/merges.txt -> npfm run everywhere; the
comparisons with Hugging Face's GPT2Tokenizer, the ``tokenizers`` library and
the ``regex`` module run where those are installed.
"""

import ast
import functools
import os
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.data import sources
from npfm.tokenizers import BPETokenizer, ByteTokenizer, tokenizer_from_dict
from npfm.tokenizers.bpe_chunks import GPT2_PATTERN, gpt2_regex
from npfm.tokenizers.gpt2_files import bytes_to_unicode

EOT = "<|endoftext|>"
FEW = settings(max_examples=60, deadline=None)

# Characters where the classes are easy to get wrong: Unicode spaces (and the
# four separators Python calls space but Unicode does not), numbers that are
# not digits, combining marks, joiners, emoji, contractions in both cases.
EDGE = ("\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2003\u2028\u2029\u202f\u3000"
        " '  srtvemldSLL_-!?.,#0123²½Ⅻ٣१aZéßΣ日本語\u0301\u200d\ufe0f🙂👍🏽👨‍👩‍👧")


def stdlib_docstrings(limit_files=120):
    """The docstrings of the first ``limit_files`` standard-library modules (by path)."""
    root = sources.stdlib_dir()
    return [doc for rel in sources.stdlib_python_files(root)[:limit_files]
            for doc in file_docstrings(os.path.join(root, rel))]


@functools.lru_cache(maxsize=None)
def file_docstrings(path):
    """One file's docstrings, parsed once: the hidden text's files are the first of the 400 read for training."""
    try:
        tree = ast.parse(sources.read_text(path))
    except (SyntaxError, ValueError):
        return ()
    docs = (ast.get_docstring(node, clean=False) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))
    return tuple(doc for doc in docs if doc)


def hidden_text():
    """A large text the tokenizers never trained on: docstrings, unicode, emoji, spacing."""
    docs = stdlib_docstrings()
    extra = [
        "Naïve café — « bonjour » Καλημέρα κόσμε Привет мир 日本語のテキスト 한국어 עברית العربية",
        "emoji 🙂🙂 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 flags 🇫🇷🇯🇵 and ☕️",
        "numbers 42 3.14 1e-9 x² ½ Ⅻ ٣٤ १२ 1,000,000",
        "contractions: I'm you're he's we've they'll I'd don't 'S 'LL 'Re ''s",
        " " * 37 + "x" + "\n" * 9 + "  \t  \n\n\n    y" + "\r\n" * 5 + " " * 200,
        "tabs\tand\x0bvertical\x0cfeeds\x85next\u2028line\u2029para\u3000ideographic",
        EDGE,
    ]
    return "\n\n".join(docs) + "\n".join(extra) + "   \n\n   "


@pytest.fixture(scope="module")
def text():
    return hidden_text()


@pytest.fixture(scope="module")
def trained():
    docs = stdlib_docstrings(limit_files=400)[2000:]            # other files than the hidden text
    return BPETokenizer.train(docs, vocab_size=700, special_tokens=[EOT], pattern=GPT2_PATTERN)


# ----- the split pattern ---------------------------------------------------------------

def test_byte_alphabet_is_a_bijection_onto_printable_characters():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    moved = [b for b in range(256) if table[b] != chr(b)]
    for b in range(256):
        assert table[b].isprintable() and not table[b].isspace()
        visible = chr(b).isprintable() and not chr(b).isspace() and b != 0xAD
        assert (table[b] == chr(b)) == visible                  # a visible byte is itself
    assert [ord(table[b]) for b in moved] == list(range(256, 256 + len(moved)))
    assert table[ord(" ")] == "\u0120"                           # "Ġ"


def test_split_examples():
    split = gpt2_regex().findall
    assert split("I'm here") == ["I", "'m", " here"]
    assert split("it's 'S") == ["it", "'s", " '", "S"]            # contractions are lowercase
    assert split("a   b") == ["a", "  ", " b"]                     # the last space joins the word
    assert split("x\n\n") == ["x", "\n\n"]
    assert split("x²½ 12ab") == ["x", "²½", " 12", "ab"]          # \p{N} includes No
    assert split("a\tb") == ["a", "\t", "b"]                       # only " " joins a word
    assert split("a \x1c\x1d") == ["a", " \x1c\x1d"]              # U+001C..1F are not \s
    assert split("!!\u200d🙂 ?") == ["!!\u200d🙂", " ?"]


@FEW
@given(st.text(alphabet=st.sampled_from(EDGE), max_size=40))
def test_split_covers_every_character(s):
    assert "".join(gpt2_regex().findall(s)) == s


def test_split_equals_regex_module_on_every_assigned_character():
    regex = pytest.importorskip("regex")
    chars = [chr(c) for c in range(sys.maxunicode + 1)
             if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    # each character alone, after a space, and in runs, so every class and join shows
    text = "".join(f"{c} {c}{c}x{c}'s{c}" for c in chars)
    ours = gpt2_regex().findall(text)
    theirs = regex.findall(GPT2_PATTERN, text)
    assert len(ours) == len(theirs)
    assert ours == theirs


@FEW
@given(st.text(alphabet=st.sampled_from(EDGE), max_size=60))
def test_split_equals_regex_module_on_random_text(s):
    regex = pytest.importorskip("regex")
    assert gpt2_regex().findall(s) == regex.findall(GPT2_PATTERN, s)


# ----- npfm -> vocab.json / merges.txt -> npfm -------------------------------------------------

def test_bpe_round_trip_through_gpt2_files(tmp_path, trained, text):
    trained.save_gpt2_files(tmp_path)
    loaded = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert loaded.vocab_size == trained.vocab_size
    assert loaded.token_bytes == trained.token_bytes
    assert loaded.special_tokens == trained.special_tokens
    ids = trained.encode(text)
    assert len(ids) < len(text.encode("utf-8")) * 0.6           # the merges do work
    np.testing.assert_array_equal(loaded.encode(text), ids)
    assert loaded.decode(ids) == text
    again = tokenizer_from_dict(loaded.to_dict())                 # a checkpoint keeps the layout
    np.testing.assert_array_equal(again.encode(text), ids)


def test_bytes_tokenizer_exports_as_byte_vocabulary_without_merges(tmp_path, text):
    from npfm.interop.hf_gpt2 import gpt2_tokenizer_of
    bpe, notes = gpt2_tokenizer_of(ByteTokenizer())
    assert notes == []
    bpe.save_gpt2_files(tmp_path)
    assert (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines() == ["#version: 0.2"]
    loaded = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    np.testing.assert_array_equal(loaded.encode(text), ByteTokenizer().encode(text))


def test_a_permuted_vocabulary_keeps_its_own_ids(tmp_path, trained, text):
    """A vocab.json numbered by someone else (bytes not first) encodes by its own ids."""
    import json
    trained.save_gpt2_files(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    perm = np.random.default_rng(0).permutation(len(vocab))
    shuffled = {token: int(perm[i]) for token, i in vocab.items()}
    (tmp_path / "vocab.json").write_text(json.dumps(shuffled), encoding="utf-8")
    loaded = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    np.testing.assert_array_equal(loaded.encode(text), perm[trained.encode(text)])
    assert loaded.decode(loaded.encode(text)) == text


# ----- bad files ----------------------------------------------------------------------------

def write(tmp_path, vocab, merges="#version: 0.2\n"):
    import json
    (tmp_path / "vocab.json").write_text(vocab if isinstance(vocab, str) else json.dumps(vocab),
                                         encoding="utf-8")
    (tmp_path / "merges.txt").write_text(merges, encoding="utf-8")
    return tmp_path / "vocab.json", tmp_path / "merges.txt"


def byte_vocab():
    return {c: b for b, c in bytes_to_unicode().items()}


def test_bad_files_name_the_file(tmp_path):
    vocab = {token: i for i, token in enumerate(t for t in byte_vocab() if t != "a")}
    with pytest.raises(ValueError, match=r"vocab\.json.*byte 97"):
        BPETokenizer.from_gpt2_files(*write(tmp_path, vocab))
    with pytest.raises(ValueError, match=r"vocab\.json is not valid JSON"):
        BPETokenizer.from_gpt2_files(*write(tmp_path, "{"))
    gap = {**byte_vocab(), EOT: 300}
    with pytest.raises(ValueError, match=r"vocab\.json: the ids must be 0 \.\. 256"):
        BPETokenizer.from_gpt2_files(*write(tmp_path, gap))
    with pytest.raises(ValueError, match=r"merges\.txt: line 2 .*'ab'"):
        BPETokenizer.from_gpt2_files(*write(tmp_path, byte_vocab(), "#version: 0.2\na b\n"))
    with pytest.raises(ValueError, match=r"merges\.txt: line 2 .*not two tokens"):
        BPETokenizer.from_gpt2_files(*write(tmp_path, byte_vocab(), "#version: 0.2\nabc\n"))


# ----- against Hugging Face --------------------------------------------------------------------

def test_transformers_gpt2_tokenizer_reads_npfm_files_with_identical_ids(tmp_path, trained, text):
    transformers = pytest.importorskip("transformers")
    from npfm.interop.hf_gpt2 import gpt2_tokenizer_of
    for name, tok in (("bpe", trained), ("bytes", ByteTokenizer())):
        out = tmp_path / name
        bpe, _ = gpt2_tokenizer_of(tok)
        bpe.save_gpt2_files(out)
        hf = transformers.GPT2Tokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
        theirs = hf.encode(text)
        ours = tok.encode(text).tolist()
        assert len(ours) == len(theirs)
        assert ours == theirs, name
        assert hf.decode(theirs) == text


def test_tokenizers_library_byte_level_bpe_loads_with_identical_ids(tmp_path, text):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    from tokenizers import models, pre_tokenizers, decoders, trainers
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(stdlib_docstrings(limit_files=400)[2000:], trainer)
    hf.model.save(str(tmp_path))
    ours = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert ours.vocab_size == hf.get_vocab_size()
    assert ours.special_tokens == {EOT: hf.token_to_id(EOT)}
    ids = ours.encode(text).tolist()
    assert ids == hf.encode(text).ids
    slow = transformers.GPT2Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    assert ids == slow.encode(text)
    assert ours.decode(ids) == text
