import sys

import numpy as np
import pytest

from npfm.data import digits
from npfm.data.digits import (DIGIT_WORDS, HELDOUT_TEMPLATES, TRAIN_TEMPLATES, DigitsUnavailableError,
                              caption, load_digits_dataset, stratified_split)


def test_missing_scikit_learn_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)              # import sklearn now fails
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    digits._raw_digits.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install scikit-learn") as info:
            load_digits_dataset("train")
        assert isinstance(info.value, DigitsUnavailableError)
        assert info.value.__cause__ is None and info.value.__suppress_context__
    finally:
        digits._raw_digits.cache_clear()


def test_caption_and_templates():
    assert caption(7) == "a photo of the digit seven"
    assert caption(7, "a handwritten {digit}") == "a handwritten 7"
    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)
    with pytest.raises(ValueError):
        caption(10)


def test_stratified_split_keeps_class_fractions():
    labels = np.repeat(np.arange(4), [10, 20, 31, 5])
    is_test = stratified_split(labels, 0.2, seed=1)
    assert [int(is_test[labels == k].sum()) for k in range(4)] == [2, 4, 6, 1]
    np.testing.assert_array_equal(is_test, stratified_split(labels, 0.2, seed=1))
    assert not np.array_equal(is_test, stratified_split(labels, 0.2, seed=2))


@pytest.mark.parametrize("kwargs", [dict(split="val"), dict(channels=2), dict(test_fraction=1.0),
                                    dict(templates=[])])
def test_bad_arguments_raise_before_loading(kwargs):
    with pytest.raises(ValueError):
        load_digits_dataset(**kwargs)


# ----- with the real data (needs scikit-learn) ----------------------------------

@pytest.fixture(scope="module")
def sklearn():
    return pytest.importorskip("sklearn", exc_type=ImportError)


def test_split_sizes_disjoint_and_stratified(sklearn):
    train = load_digits_dataset("train")
    test = load_digits_dataset("test")
    assert len(train["labels"]) + len(test["labels"]) == 1797
    assert not set(train["index"]) & set(test["index"])
    frac = np.bincount(test["labels"], minlength=10) / (
        np.bincount(test["labels"], minlength=10) + np.bincount(train["labels"], minlength=10))
    np.testing.assert_allclose(frac, 0.2, atol=0.01)
    again = load_digits_dataset("test")
    np.testing.assert_array_equal(again["index"], test["index"])
    assert again["captions"] == test["captions"]
    assert not np.array_equal(load_digits_dataset("test", seed=1)["index"], test["index"])


def test_images_and_captions(sklearn):
    data = load_digits_dataset("all", channels=3)
    images = data["images"]
    assert images.shape == (1797, 8, 8, 3) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    gray = load_digits_dataset("all", channels=1)["images"]
    assert gray.shape == (1797, 8, 8, 1)
    np.testing.assert_array_equal(gray[..., 0], images[..., 0])
    for label, text in zip(data["labels"], data["captions"]):
        assert DIGIT_WORDS[label] in text.split() or str(label) in text.split()
    assert {caption(y, TRAIN_TEMPLATES[t]) for y, t in zip(data["labels"], data["template"])} \
        == set(data["captions"])
    held = load_digits_dataset("test", templates=HELDOUT_TEMPLATES)
    assert not set(held["captions"]) & set(data["captions"])
    # the pixels are the real digits: a zero has an empty middle, a one a full middle column
    zero = images[data["labels"] == 0, :, :, 0].mean(0)
    assert zero[3:5, 3:5].mean() < 0.3 < zero[3:5, 1:2].mean()
