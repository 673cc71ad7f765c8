import warnings

import numpy as np
import pytest

from npfm.models.bert import BertModel, preset
from npfm.models.sentence_embeddings import encode_texts, mean_pool, sentence_embeddings
from npfm.tokenizers.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer


def test_mean_pool_ignores_padding():
    h = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    pooled = mean_pool(h, np.array([[1, 1, 0], [1, 0, 0]]))
    np.testing.assert_allclose(pooled, [[1, 2], [6, 7]])
    assert pooled.dtype == np.float32


def tiny():
    words = ["a", "red", "blue", "circle", "square"]
    tokenizer = WordPieceTokenizer(list(SPECIAL_TOKENS) + words)
    model = BertModel(preset("tiny", vocab_size=tokenizer.vocab_size, max_len=8), seed=0)
    return model, tokenizer


def test_sentence_embeddings_are_unit_rows_that_do_not_depend_on_the_batch():
    model, tokenizer = tiny()
    sentences = ["a red circle", "a blue square square square", "circle"]
    together = sentence_embeddings(model, tokenizer, sentences)          # padded to the longest
    alone = np.concatenate([sentence_embeddings(model, tokenizer, s) for s in sentences])
    assert together.shape == (3, model.config.dim)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    assert model.training                                                # left as it was


def test_long_texts_are_truncated_with_a_warning_and_bad_input_refused():
    model, tokenizer = tiny()
    with pytest.warns(UserWarning, match="truncated to 8"):
        ids, _, _ = encode_texts(tokenizer, ["a red circle " * 5], max_len=8)
    assert ids.shape == (1, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert encode_texts(tokenizer, "a red circle", max_len=8)[0].shape == (1, 5)
    with pytest.raises(ValueError, match="no sentence"):
        sentence_embeddings(model, tokenizer, [])
    with pytest.raises(TypeError, match="str"):
        sentence_embeddings(model, tokenizer, [3])
