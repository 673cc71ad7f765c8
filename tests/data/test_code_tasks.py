import ast
import io
import tokenize

import numpy as np
import pytest

from npfm.data.code_tasks import (CODE_NER_LABELS, IGNORE_INDEX, align_labels,
                                  align_labels_batch, code_token_spans, corrupt,
                                  make_acceptability_dataset, make_code_ner_dataset, parses,
                                  python_tokens, split_files)
from npfm.tokenizers.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer

LABEL = {name: i for i, name in enumerate(CODE_NER_LABELS)}


@pytest.fixture(scope="module")
def acceptability():
    return make_acceptability_dataset(n_train=300, n_test=100, seed=0)


@pytest.fixture(scope="module")
def ner():
    return make_code_ner_dataset(n_train=200, n_test=60, seed=0)


def test_files_are_split_deterministically_and_disjointly():
    train, test = split_files()
    assert train and test and not set(train) & set(test)
    assert 0.1 < len(test) / (len(train) + len(test)) < 0.3
    assert split_files() == (train, test)
    assert not any(p.startswith("test/") for p in train + test)


def test_acceptability_labels_are_the_parsers_verdict(acceptability):
    train, test = acceptability
    assert len(train) == 300 and len(test) == 100
    for text, label in train + test:
        try:
            ast.parse(text)
            verdict = 1
        except SyntaxError:
            verdict = 0
        assert label == verdict, text
        assert isinstance(text, str) and text.strip()


def test_acceptability_is_balanced_deduplicated_and_deterministic(acceptability):
    train, test = acceptability
    assert sum(label for _, label in train) == 150
    assert sum(label for _, label in test) == 50
    assert len({t for t, _ in train}) == len(train)
    assert not {t for t, _ in train} & {t for t, _ in test}
    assert make_acceptability_dataset(300, 100, seed=0) == (train, test)
    assert make_acceptability_dataset(300, 100, seed=1)[0] != train


def token_strings(text):
    """The strings of text's tokens, up to where the tokenizer gives up (an open bracket)."""
    strings = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.OP, tokenize.NAME, tokenize.NUMBER, tokenize.STRING):
                strings.append(tok.string)
    except tokenize.TokenError:
        pass
    return strings


def test_corruption_is_one_token_edit():
    rng = np.random.default_rng(0)
    text = "total = price * (1 + rate)"
    before = token_strings(text)
    for _ in range(60):
        edited = corrupt(text, rng)
        after = token_strings(edited)
        deleted = len(after) == len(before) - 1 and any(
            before[:i] + before[i + 1:] == after for i in range(len(before)))
        duplicated = len(after) == len(before) + 1 and any(
            before[:i + 1] + before[i:] == after for i in range(len(before)))
        swapped = len(after) == len(before) and any(
            before[:i] + [before[i + 1], before[i]] + before[i + 2:] == after
            for i in range(len(before) - 1))
        assert deleted or duplicated or swapped, edited
    assert corrupt("if x:\n    y = = 2", rng) is not None
    assert corrupt("# only a comment", rng) is None


def test_parses_never_raises():
    assert parses("x = 1") and not parses("x = = 1")
    assert not parses("a\0b") and not parses("(" * 500)


def test_ner_labels_on_a_hand_example():
    text = "if x: return f(1.5, 'a')  # done"
    spans = code_token_spans(text)
    assert [(text[s:e], CODE_NER_LABELS[k]) for s, e, k in spans] == [
        ("if", "KEYWORD"), ("x", "NAME"), (":", "OP"), ("return", "KEYWORD"), ("f", "NAME"),
        ("(", "OP"), ("1.5", "NUMBER"), (",", "OP"), ("'a'", "STRING"), (")", "OP"),
        ("# done", "COMMENT")]
    match = code_token_spans("match = None")                         # a soft keyword is a NAME
    assert [CODE_NER_LABELS[k] for _, _, k in match] == ["NAME", "OP", "KEYWORD"]
    assert code_token_spans("x = (1,") is None                       # does not tokenize alone


def test_ner_spans_agree_with_the_tokenizer(ner):
    train, test = ner
    assert len(train) == 200 and len(test) == 60
    assert not {t for t, _ in train} & {t for t, _ in test}
    assert make_code_ner_dataset(200, 60, seed=0) == (train, test)
    for text, spans in train + test:
        assert spans and [s for s, _, _ in spans] == sorted(s for s, _, _ in spans)
        tokens = [t for t in python_tokens(text)]
        assert [(s, e) for _, _, s, e in tokens] == [(s, e) for s, e, _ in spans]
        for (kind, string, _, _), (_, _, label) in zip(tokens, spans):
            name = CODE_NER_LABELS[label]
            if kind == tokenize.NAME:
                assert name in ("NAME", "KEYWORD")
            else:
                assert name == tokenize.tok_name[kind]
        assert "".join(text[s:e] for s, e, _ in spans).replace(" ", "") == text.replace(" ", "")


def test_align_labels_gives_the_first_piece_the_label():
    vocab = list(SPECIAL_TOKENS) + ["self", "x", "=", "get", "##_", "_", "value", "(", ")", "'",
                                    "hi", "there", ".", "##s"]
    tok = WordPieceTokenizer(vocab)
    text = "self.x = get_value('Hi there')"
    spans = code_token_spans(text)
    ids, mask, labels = align_labels(tok, text, spans, max_len=20)
    pieces = tok.ids_to_tokens(ids[mask == 1])
    assert pieces == ["[CLS]", "self", ".", "x", "=", "get", "_", "value", "(", "'", "hi",
                      "there", "'", ")", "[SEP]"]
    n, o, s = LABEL["NAME"], LABEL["OP"], LABEL["STRING"]
    ig = IGNORE_INDEX
    assert labels[:15].tolist() == [ig, n, o, n, o, n, ig, ig, o, s, ig, ig, ig, o, ig]
    assert (labels[15:] == ig).all() and (ids[15:] == tok.pad_id).all()
    assert mask.tolist() == [1] * 15 + [0] * 5

    ids, mask, labels = align_labels(tok, text, spans, max_len=6)   # cut to fit
    assert tok.ids_to_tokens(ids) == ["[CLS]", "self", ".", "x", "=", "[SEP]"]
    assert labels.tolist() == [ig, n, o, n, o, ig]

    batch = align_labels_batch(tok, [(text, spans), ("x = x", code_token_spans("x = x"))], 12)
    assert all(a.shape == (2, 12) and a.dtype == np.int32 for a in batch)


def test_align_labels_rejects_bad_spans():
    tok = WordPieceTokenizer(list(SPECIAL_TOKENS) + ["x"])
    with pytest.raises(ValueError, match="outside the text"):
        align_labels(tok, "x", [(0, 5, 0)], 8)
