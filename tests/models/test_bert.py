"""The BERT model: whole-model gradient checks of every head (with padding),
overfitting, padding invariance, state round trips, dtypes and bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.functional import cross_entropy_backward, cross_entropy_forward
from npfm.gradcheck import check_module, check_pair
from npfm.models.bert import (
    IGNORE_INDEX, BertConfig, BertForPreTraining, BertForSequenceClassification,
    BertForTokenClassification, BertModel, JoinedPreTrainingOutputs, MLMHead,
    preset,
)
from npfm.optim import AdamW

V = 23


def tiny(**overrides):
    return preset("tiny", vocab_size=V, max_len=8, **overrides)


def padded_batch(seed=0, B=3, T=7):
    """ids, segments, attention_mask (B, T) with padding: rows of length T, 5 and 2."""
    rng = np.random.default_rng(seed)
    lengths = [T, 5, 2][:B]
    ids = rng.integers(5, V, size=(B, T))
    ids[:, 0] = 2                                                   # [CLS]
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]     # (B, T)
    ids[~mask] = 0                                                  # [PAD]
    ids[0, 1:4] = 7                                                 # a repeated id
    segments = np.where(np.arange(T)[None, :] >= np.array([4, 3, 1])[:, None], 1, 0) * mask
    return ids, segments.astype(np.int64), mask.astype(np.int64)


# ----- gradient checks -----------------------------------------------------------------

def test_encoder_gradient_check_with_padding():
    ids, segments, mask = padded_batch()
    report = check_module(BertModel(tiny(), seed=1), ids, segments=segments,
                          attention_mask=mask, max_entries=8)
    assert report.passed, str(report)
    names = {r.name for r in report.rows}
    assert {"tok_emb.W", "seg_emb.W", "pos.W", "blocks.1.attn.W_qkv"} <= names


def test_pretraining_gradient_check_with_padding():
    ids, segments, mask = padded_batch(1)
    select = np.zeros(ids.shape, bool)
    select[0, [1, 3, 5]] = select[1, 2] = select[2, 1] = True
    model = BertForPreTraining(tiny(), seed=2)
    report = check_module(JoinedPreTrainingOutputs(model, select), ids, segments=segments,
                          attention_mask=mask, max_entries=8)
    assert report.passed, str(report)
    names = {r.name for r in report.rows}
    assert {"model.bert.tok_emb.W", "model.mlm.b_vocab", "model.mlm.ln.gamma",
            "model.nsp.W", "model.bert.pooler.dense.W"} <= names
    assert not any("W_emb" in n for n in names)                    # tied: listed once


@pytest.mark.parametrize("head", ["sequence", "token"])
def test_classification_gradient_check_with_padding(head):
    ids, segments, mask = padded_batch(2)
    cls = BertForSequenceClassification if head == "sequence" else BertForTokenClassification
    report = check_module(cls(tiny(), 3, seed=3), ids, segments=segments, attention_mask=mask,
                          max_entries=8)
    assert report.passed, str(report)
    assert any(r.name == "classifier.fc.W" for r in report.rows)


def test_gradient_check_catches_a_broken_pooler(monkeypatch):
    """The whole-model check can fail: a wrong tanh derivative turns it red."""
    import npfm.functional as activations
    monkeypatch.setattr(activations, "tanh_backward", lambda dy, y: dy * (1.0 - y))
    ids, segments, mask = padded_batch(2)
    report = check_module(BertForSequenceClassification(tiny(), 2, seed=3), ids,
                          segments=segments, attention_mask=mask, max_entries=4)
    assert not report.passed


def test_mlm_gathered_positions_equal_full_logits():
    ids, segments, mask = padded_batch(3)
    model = BertForPreTraining(tiny(), seed=4).astype(np.float64).eval()
    select = np.zeros(ids.shape, bool)
    select[0, 2] = select[1, 4] = True
    h = model.bert(ids, segments, mask)
    full = model.mlm(h)                                             # (B, T, V)
    gathered = model.mlm(h, select)                                 # (2, V)
    np.testing.assert_allclose(gathered, full[select], atol=1e-12)


def test_tied_embedding_gets_both_gradients():
    model = BertForPreTraining(tiny(), seed=0).astype(np.float64)
    ids = np.array([[2, 9, 10, 3]])
    select = np.array([[False, True, False, False]])
    mlm, nsp = model(ids, mlm_select=select)
    model.zero_grad()
    model.backward(np.ones_like(mlm), np.zeros_like(nsp))
    grad = model.bert.tok_emb.W.grad
    # the decoder touches every row; the input embedding only rows 2, 9, 10, 3
    assert np.all(np.abs(grad[[0, 1, 4, 5]]).sum(axis=1) > 0)
    assert sum(p is model.bert.tok_emb.W for p in model.parameters()) == 1
    assert "mlm.W_emb" not in model.state_dict()


# ----- behaviour ---------------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), lengths=st.lists(st.integers(1, 8), min_size=1, max_size=3))
def test_padding_does_not_change_real_outputs(seed, lengths):
    model = BertForTokenClassification(tiny(), 3, seed=seed % 7).astype(np.float64).eval()
    rng = np.random.default_rng(seed)
    T = max(lengths)
    ids = rng.integers(0, V, size=(len(lengths), T))
    segments = rng.integers(0, 2, size=ids.shape)
    mask = (np.arange(T)[None, :] < np.array(lengths)[:, None]).astype(int)
    padded = model(ids, segments, mask)
    for b, n in enumerate(lengths):
        alone = model(ids[b:b + 1, :n], segments[b:b + 1, :n], np.ones((1, n), int))
        np.testing.assert_allclose(padded[b, :n], alone[0], atol=1e-10)
        pooled = model.bert.pool(model.bert(ids[b:b + 1], segments[b:b + 1], mask[b:b + 1]))
        alone_pooled = model.bert.pool(model.bert(ids[b:b + 1, :n], segments[b:b + 1, :n]))
        np.testing.assert_allclose(pooled, alone_pooled, atol=1e-10)


def _overfit(model, step_fn, steps=150, lr=3e-3):
    opt = AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        model.zero_grad()
        loss = step_fn()
        opt.step()
    return loss


def test_pretraining_overfits_one_batch():
    ids, segments, mask = padded_batch(5)
    model = BertForPreTraining(tiny(), seed=0)
    labels = np.full(ids.shape, IGNORE_INDEX)
    labels[0, [2, 5]] = [11, 12]
    labels[1, 3], labels[2, 1] = 13, 14
    select = labels != IGNORE_INDEX
    nsp_labels = np.array([0, 1, 1])

    def step():
        mlm, nsp = model(ids, segments, mask, mlm_select=select)
        loss_mlm, c1 = cross_entropy_forward(mlm, labels[select])
        loss_nsp, c2 = cross_entropy_forward(nsp, nsp_labels)
        model.backward(cross_entropy_backward(1.0, c1), cross_entropy_backward(1.0, c2))
        return float(loss_mlm) + float(loss_nsp)

    assert _overfit(model, step) < 0.05


def test_sequence_classification_overfits_one_batch():
    ids, segments, mask = padded_batch(6)
    model = BertForSequenceClassification(tiny(), 3, seed=0)
    y = np.array([2, 0, 1])

    def step():
        loss, cache = cross_entropy_forward(model(ids, segments, mask), y)
        model.backward(cross_entropy_backward(1.0, cache))
        return float(loss)

    assert _overfit(model, step) < 0.05


def test_token_classification_overfits_one_batch():
    ids, segments, mask = padded_batch(7)
    model = BertForTokenClassification(tiny(), 4, seed=0)
    y = np.random.default_rng(0).integers(0, 4, size=ids.shape)
    y[mask == 0] = IGNORE_INDEX                                     # no loss on padding

    def step():
        loss, cache = cross_entropy_forward(model(ids, segments, mask), y)
        model.backward(cross_entropy_backward(1.0, cache))
        return float(loss)

    assert _overfit(model, step, steps=200) < 0.05


def test_state_round_trip():
    ids, segments, mask = padded_batch(8)
    a = BertForPreTraining(tiny(), seed=1).eval()
    b = BertForPreTraining(tiny(), seed=2).eval()
    b.load_state_dict(a.state_dict())
    for x, y in zip(a(ids, segments, mask), b(ids, segments, mask)):
        np.testing.assert_array_equal(x, y)
    # the encoder part moves into a fine-tuning model
    clf = BertForSequenceClassification(tiny(), 2, seed=5)
    clf.bert.load_state_dict({k[len("bert."):]: v for k, v in a.state_dict().items()
                              if k.startswith("bert.")})
    np.testing.assert_array_equal(clf.bert(ids, segments, mask), a.bert(ids, segments, mask))
    assert BertConfig.from_dict(tiny().to_dict()) == tiny()


def test_float32_forward_and_backward_stay_float32():
    ids, segments, mask = padded_batch(9)
    model = BertForPreTraining(preset("tiny", vocab_size=V, max_len=8, dropout=0.1), seed=0)
    select = mask.astype(bool)
    mlm, nsp = model(ids, segments, mask, mlm_select=select)
    assert mlm.dtype == np.float32 and nsp.dtype == np.float32
    model.zero_grad()
    model.backward(np.ones_like(mlm), np.ones_like(nsp))
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    token = BertForTokenClassification(tiny(), 3)
    assert token(ids, segments, mask).dtype == np.float32


def test_dropout_is_off_in_eval_mode():
    ids, segments, mask = padded_batch(10)
    model = BertForSequenceClassification(preset("tiny", vocab_size=V, max_len=8, dropout=0.5), 2)
    model.eval()
    np.testing.assert_array_equal(model(ids, segments, mask), model(ids, segments, mask))
    model.train()
    assert not np.array_equal(model(ids, segments, mask), model(ids, segments, mask))


def test_bad_input():
    model = BertModel(tiny())
    ids = np.array([[2, 5, 3]])
    with pytest.raises(TypeError, match="integers"):
        model(ids.astype(float))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(np.array([[2, V, 3]]))
    with pytest.raises(ValueError, match="position table"):
        model(np.full((1, 9), 5))
    with pytest.raises(ValueError, match="empty input"):
        model(np.zeros((1, 0), int))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(np.array([2, 5, 3]))
    with pytest.raises(ValueError, match="segments"):
        model(ids, segments=np.array([[0, 2, 1]]))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(ids, attention_mask=np.ones((1, 4), int))
    with pytest.raises(TypeError, match="attention_mask must be boolean"):
        model(ids, attention_mask=np.array([[1, 2, 1]]))
    with pytest.raises(ValueError, match="before forward"):
        BertModel(tiny()).backward(np.zeros((1, 3, 16)))
    with pytest.raises(ValueError, match="select"):
        MLMHead(tiny(), model.tok_emb.W)(np.zeros((1, 3, 16), np.float32), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(dim=10, n_heads=3)
    with pytest.raises(ValueError, match="unknown BERT preset"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown keys"):
        BertConfig.from_dict({"width": 3})
