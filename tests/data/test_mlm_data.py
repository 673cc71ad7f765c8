import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.data.mlm import (IGNORE_INDEX, MLMBatcher, documents_from_path, documents_from_pydoc,
                           make_eval_batches, make_nsp_pairs, mask_tokens,
                           most_frequent_token_baseline, split_documents, split_sentences)
from npfm.tokenizers.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer

N_DOCS, N_SENTENCES = 12, 8


def tagged_corpus():
    """Documents whose words say where they come from: sentence j of document k is
    "dk sj dk sj ..." (a few times), so every token of a pair can be traced back."""
    vocab = list(SPECIAL_TOKENS) + [f"d{k}" for k in range(N_DOCS + 1)] + \
        [f"s{j}" for j in range(N_SENTENCES)]
    tok = WordPieceTokenizer(vocab)
    docs = [[" ".join([f"d{k} s{j}"] * (1 + (3 * k + j) % 4)) for j in range(N_SENTENCES)]
            for k in range(N_DOCS)]
    docs.append([f"d{N_DOCS} s0 d{N_DOCS} s0"])   # one sentence: only a source of NotNext B
    return docs, tok


def provenance(tok, ids):
    """(doc, sentence) of each word-pair in ids."""
    words = tok.ids_to_tokens(ids)
    return [(int(words[i][1:]), int(words[i + 1][1:])) for i in range(0, len(words) - 1, 2)
            if words[i].startswith("d") and words[i + 1].startswith("s")]


# ----- documents --------------------------------------------------------------------

def test_split_sentences_rule():
    text = ("First one. Second one? (Third.) lower case. stays\n\n   \n"
            "x = 1\n    y = 2\n\nLast!   Done")
    assert split_sentences(text) == ["First one.", "Second one?", "(Third.) lower case. stays",
                                     "x = 1 y = 2", "Last!", "Done"]
    assert split_sentences("  \n\n \t ") == []


def test_documents_from_pydoc_and_from_path(tmp_path):
    docs = documents_from_pydoc()
    assert len(docs) > 50 and all(doc and all(isinstance(s, str) and s.strip() for s in doc)
                                  for doc in docs)
    (tmp_path / "a.txt").write_text("One. Two.\n\nThree.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("Four.")
    (tmp_path / "bin.dat").write_bytes(b"\0\1\2")
    assert documents_from_path(tmp_path) == [["One.", "Two.", "Three."], ["Four."]]
    assert documents_from_path(tmp_path / "a.txt") == [["One.", "Two."], ["Three."]]
    with pytest.raises(ValueError, match="neither a file nor a folder"):
        documents_from_path(tmp_path / "missing")


def test_split_documents_by_document():
    docs = [[f"doc {i}."] for i in range(30)]
    train, val = split_documents(docs, val_fraction=0.1, seed=3)
    assert len(val) == 3 and len(train) == 27
    assert sorted(map(str, train + val)) == sorted(map(str, docs))
    assert split_documents(docs, 0.1, seed=3) == (train, val)
    assert split_documents(docs, 0.1, seed=4) != (train, val)


# ----- masking -------------------------------------------------------------------------------

def random_batch(rng, B=512, T=128, V=1000):
    ids = rng.integers(5, V, size=(B, T))                              # (B, T)
    lengths = rng.integers(T // 4, T + 1, size=B)
    pad = np.arange(T) >= lengths[:, None]
    ids[pad] = 0
    ids[:, 0] = 2
    ids[np.arange(B), lengths - 1] = 3
    special = np.isin(ids, [0, 2, 3])
    return ids, special


def test_mask_tokens_proportions_and_labels():
    rng = np.random.default_rng(0)
    ids, special = random_batch(rng)
    V, mask_id = 1000, 4
    inputs, labels = mask_tokens(ids, special, V, mask_id, rng, special_ids=range(5))
    chosen = labels != IGNORE_INDEX
    assert not (chosen & special).any()                                 # specials never chosen
    assert (labels[chosen] == ids[chosen]).all()
    assert (inputs[~chosen] == ids[~chosen]).all()                      # nothing else changes
    n = (~special).sum(axis=1)
    assert (chosen.sum(axis=1) == np.maximum(1, np.round(0.15 * n))).all()
    assert abs(chosen.sum() / (~special).sum() - 0.15) < 0.005
    masked = inputs[chosen] == mask_id
    kept = inputs[chosen] == ids[chosen]
    replaced = ~masked & ~kept
    assert abs(masked.mean() - 0.8) < 0.02
    assert abs(replaced.mean() - 0.1) < 0.015
    assert abs(kept.mean() - 0.1) < 0.015
    assert (inputs[chosen][replaced] >= 5).all()                        # random ids are not special


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 20), st.integers(0, 2 ** 32 - 1))
def test_mask_tokens_handles_any_special_mask(B, T, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 50, size=(B, T)).astype(np.int32)
    special = rng.random((B, T)) < 0.5
    special[0] = True                                   # a row with nothing to mask
    inputs, labels = mask_tokens(ids, special, 50, 4, rng)
    assert inputs.dtype == labels.dtype == np.int32
    chosen = labels != IGNORE_INDEX
    assert not chosen[0].any()
    assert (chosen.sum(axis=1)[(~special).sum(axis=1) > 0] >= 1).all()
    assert not (chosen & special).any()


def test_mask_tokens_is_deterministic_given_the_generator():
    ids, special = random_batch(np.random.default_rng(1), B=8, T=32)
    a = mask_tokens(ids, special, 1000, 4, np.random.default_rng(7))
    b = mask_tokens(ids, special, 1000, 4, np.random.default_rng(7))
    c = mask_tokens(ids, special, 1000, 4, np.random.default_rng(8))
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (a[1] == c[1]).all()


def test_mask_tokens_bad_input():
    with pytest.raises(ValueError, match="special_mask"):
        mask_tokens(np.zeros((2, 3), int), np.zeros((2, 4), bool), 10, 4, np.random.default_rng())
    with pytest.raises(ValueError, match=r"\(B, T\) integer"):
        mask_tokens(np.zeros(3), np.zeros(3, bool), 10, 4, np.random.default_rng())


# ----- next-sentence pairs -------------------------------------------------------------------

def test_nsp_pairs_layout_labels_and_provenance():
    docs, tok = tagged_corpus()
    rng = np.random.default_rng(0)
    labels = []
    for _ in range(10):
        pairs = make_nsp_pairs(docs, tok, max_len=24, rng=rng)
        ids, segments, mask = pairs["ids"], pairs["segments"], pairs["attention_mask"]
        assert ids.shape == segments.shape == mask.shape and ids.shape[1] == 24
        assert (ids[:, 0] == tok.cls_id).all()
        assert ((ids == tok.sep_id).sum(axis=1) == 2).all()
        assert (mask == (ids != tok.pad_id)).all()
        for row, seg, label, da, db in zip(ids, segments, pairs["nsp_labels"], pairs["doc_a"],
                                           pairs["doc_b"]):
            first, second = np.flatnonzero(row == tok.sep_id)
            assert (seg[:first + 1] == 0).all() and (seg[first + 1:second + 1] == 1).all()
            assert (seg[second + 1:] == 0).all()
            a = provenance(tok, row[1:first])
            b = provenance(tok, row[first + 1:second])
            assert a and b
            assert {d for d, _ in a} == {da} and {d for d, _ in b} == {db}
            sentences = [j for _, j in a] + [j for _, j in b]
            if label == 0:           # IsNext: B goes on from where A stops, in the same document
                assert db == da and sentences == sorted(sentences)
                assert b[0][1] > a[-1][1]
                if second < len(row) - 1:               # not truncated: B starts right after A
                    assert b[0][1] == a[-1][1] + 1
            else:                    # NotNext: B comes from another document
                assert db != da
        labels.extend(pairs["nsp_labels"].tolist())
    assert len(labels) > 250 and abs(np.mean(labels) - 0.5) < 0.1     # 3.5 sd


def test_nsp_pairs_need_two_documents():
    tok = WordPieceTokenizer(list(SPECIAL_TOKENS) + ["a"])
    with pytest.raises(ValueError, match="two non-empty documents"):
        make_nsp_pairs([["a", "a a"]], tok, 16, np.random.default_rng(0))


# ----- batches -------------------------------------------------------------------------------

def test_batcher_gives_complete_deterministic_batches():
    docs, tok = tagged_corpus()
    batcher = MLMBatcher(docs, tok, max_len=24, batch_size=8)
    batches = list(batcher.epoch(np.random.default_rng(5)))
    again = list(batcher.epoch(np.random.default_rng(5)))
    other = list(batcher.epoch(np.random.default_rng(6)))
    batch = batches[0]
    assert set(batch) == {"ids", "segments", "attention_mask", "mlm_labels", "nsp_labels"}
    assert batch["ids"].shape == batch["mlm_labels"].shape == (8, 24)
    assert batch["nsp_labels"].shape == (8,)
    for b1, b2 in zip(batches, again):
        assert all((b1[k] == b2[k]).all() for k in b1)
    assert any(not (b1["ids"] == b2["ids"]).all() for b1, b2 in zip(batches, other))
    for b in batches:
        chosen = b["mlm_labels"] != IGNORE_INDEX
        assert (chosen.sum(axis=1) >= 1).all()
        assert not np.isin(b["mlm_labels"][chosen], tok.special_ids).any()
        assert (b["attention_mask"][chosen] == 1).all()
    stream = batcher.batches(np.random.default_rng(0))
    assert len([next(stream) for _ in range(3 * len(batches))]) == 3 * len(batches)


def test_eval_set_is_fixed_and_the_baseline_counts_hits():
    docs, tok = tagged_corpus()
    first = make_eval_batches(docs, tok, max_len=24, batch_size=16, seed=0)
    second = make_eval_batches(docs, tok, max_len=24, batch_size=16, seed=0)
    assert all((a[k] == b[k]).all() for a, b in zip(first, second) for k in a)
    token = MLMBatcher(docs, tok, max_len=24).most_frequent_token()
    assert token not in tok.special_ids
    accuracy = most_frequent_token_baseline(first, token)
    labels = np.concatenate([b["mlm_labels"].ravel() for b in first])
    labels = labels[labels != IGNORE_INDEX]
    assert accuracy == pytest.approx((labels == token).mean())
    hand = [{"mlm_labels": np.array([[7, IGNORE_INDEX, 7], [8, 9, IGNORE_INDEX]])}]
    assert most_frequent_token_baseline(hand, 7) == 0.5


def test_pydoc_pipeline_end_to_end():
    docs = documents_from_pydoc()
    train, val = split_documents(docs)
    tok = WordPieceTokenizer.train([" ".join(d) for d in train[:20]], vocab_size=800)
    batcher = MLMBatcher(train[:20], tok, max_len=64, batch_size=16)
    batch = next(batcher.epoch(np.random.default_rng(0)))
    assert batch["ids"].shape == (16, 64)
    eval_batches = make_eval_batches(val, tok, max_len=64, batch_size=16)
    baseline = most_frequent_token_baseline(eval_batches, batcher.most_frequent_token())
    assert 0.0 < baseline < 0.3
