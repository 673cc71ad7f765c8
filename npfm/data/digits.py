"""Digits: scikit-learn's 1,797 real handwritten digits, 8 x 8 pixels, with captions.

The images ship inside scikit-learn (no download): UCI's optical-recognition
digits, written by 43 people, scanned, and averaged down to 8 x 8 cells with
values 0..16. Here they become float32 images in [0, 1] (value / 16) with a
caption from a template, e.g. "a photo of the digit seven" or "a handwritten 7".

The train/test split is *stratified*: every class keeps the same fraction in
test, chosen at random (given the seed) within the class. Sorting by
(class, random key) puts each class's images in a random order, and the
first ``round(test_fraction * class size)`` of each class go to test.

scikit-learn is an optional dependency (``pip install npfm[digits]``); without
it ``load_digits_dataset`` raises ``DigitsUnavailableError``.
"""

from __future__ import annotations

import functools

import numpy as np

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

TRAIN_TEMPLATES = (
    "a photo of the digit {word}",
    "a handwritten {digit}",
    "the number {word}",
    "a handwritten digit {word}",
    "the digit {digit}",
)
HELDOUT_TEMPLATES = ("a scan of someone writing {word}",)
"""Templates never used in training, for testing new wording."""

# ----- CLIP's three template sets, kept apart (written down here and only here) -----
# TRAINING: the only templates a CLIP on digits is trained on (see noisy_caption).
# VALIDATION: never used in training; the only ones used for any choice (the
#     best step of a run, the caption settings); their extra words are not in
#     the training vocabulary, so they read as [UNK], as the test words do.
# TEST: never used in training and never used for any choice; they give the
#     reported zero-shot accuracy. TEST_TEMPLATES is HELDOUT_TEMPLATES.
# No two sets share a template, and VALIDATION and TEST add no words to TRAINING.
CLIP_TRAIN_TEMPLATES = TRAIN_TEMPLATES + (
    "a photo of the digit {digit}",
    "a handwritten {word}",
    "the number {digit}",
    "the digit {word}",
    "a handwritten number {digit}",
    "a {word}",
    "a {digit}",
    "{word}",
    "{digit}",
    "a photo of a {word}",
    "a small gray photo of the number {word}",
    "an image of the handwritten digit {digit}",
    "an image of a {word}",
    "{word} , a handwritten digit",
    "the digit {digit} in a photo",
    "a blurry photo of a handwritten {word}",
    "a photo of the number {word} written in pen",
    "{digit} is the number in the image",
    "a digit : {word}",
)
VALIDATION_TEMPLATES = (
    "a sketch of the number {word}",
    "{word} drawn by hand",
    "an ink drawing of a {digit}",
    "here is a {word}",
    "look at this {word} please",
)
TEST_TEMPLATES = HELDOUT_TEMPLATES
UNKNOWN = "[UNK]"
"""What noisy_caption writes for a dropped word: not a word of any template, so
the word tokenizer reads it as its unknown word."""

ZERO_SHOT_TEMPLATES = ("a photo of the digit {}", "a handwritten {}", "the number {}")
"""Prompts for zero-shot classification: a digit word or numeral goes in the {}."""

SPLITS = ("train", "test", "all")
INSTALL_HINT = ("the digits data set needs scikit-learn: "
                "pip install scikit-learn (or pip install npfm[digits])")


class DigitsUnavailableError(ImportError):
    """scikit-learn, which ships the digits, is not installed."""


@functools.lru_cache(maxsize=1)
def _raw_digits():
    """(images (1797, 8, 8) float64 in 0..16, labels (1797,) int), read once."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DigitsUnavailableError(INSTALL_HINT) from None
    bunch = load_digits()
    return bunch.images, bunch.target


def caption(label, template=TRAIN_TEMPLATES[0]):
    """The caption of a digit: template fields {word} ("seven") and {digit} ("7")."""
    label = int(label)
    if not 0 <= label <= 9:
        raise ValueError(f"digit label must be in 0..9, got {label}")
    return template.format(word=DIGIT_WORDS[label], digit=str(label))


def noisy_caption(label, template, rng, p_unknown=0.0):
    """caption(label, template) with each word that does not name the digit
    replaced by [UNK] with probability ``p_unknown`` (word dropout).

    New wording at test time ("a scan of someone writing seven") reaches the
    text tower as unknown words around the digit's name; word dropout trains it
    to read the name and let [UNK]s and the other words' order say nothing.
    """
    words = template.split()
    keep = rng.random(len(words)) >= p_unknown                     # (words,)
    words = [w if k or "{" in w else UNKNOWN for w, k in zip(words, keep)]
    return caption(label, " ".join(words))


def stratified_split(labels, test_fraction, seed=0):
    """Boolean mask (N,): True for test. Each class sends round(test_fraction * n_class) to test."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(labels.size), labels))          # by class, random within class
    classes, first, counts = np.unique(labels[order], return_index=True, return_counts=True)
    rank = np.arange(labels.size) - np.repeat(first, counts)         # position within its class
    n_test = np.round(test_fraction * counts).astype(np.int64)       # (classes,)
    is_test = np.zeros(labels.size, dtype=bool)
    is_test[order] = rank < np.repeat(n_test, counts)
    return is_test


def load_digits_dataset(split="train", seed=0, channels=1, test_fraction=0.2, templates=None):
    """The digits of one split, with captions.

    split: "train", "test" or "all"; the stratified split is fixed by ``seed``
        and ``test_fraction`` (20% by default: 1,437 train and 360 test).
    channels: 1 gives (N, 8, 8, 1) gray images; 3 repeats the gray into RGB
        (N, 8, 8, 3), to share a pipeline with the colour shapes data.
    templates: caption templates (default TRAIN_TEMPLATES), one drawn per image.

    Returns a dict:
        images    (N, 8, 8, channels) float32 in [0, 1]
        labels    (N,) int64 in 0..9
        captions  list of N strings
        template  (N,) int64, which template each caption used
        index     (N,) int64, the row in scikit-learn's data set
    """
    if split not in SPLITS:
        raise ValueError(f"load_digits_dataset: split must be one of {SPLITS}, got {split!r}")
    if channels not in (1, 3):
        raise ValueError(f"load_digits_dataset: channels must be 1 or 3, got {channels!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_digits_dataset: test_fraction must be in (0, 1), got {test_fraction}")
    templates = tuple(TRAIN_TEMPLATES if templates is None else templates)
    if not templates or not all(isinstance(t, str) for t in templates):
        raise ValueError("load_digits_dataset: templates must be a non-empty sequence of strings")
    raw_images, raw_labels = _raw_digits()

    is_test = stratified_split(raw_labels, test_fraction, seed)
    keep = {"train": ~is_test, "test": is_test, "all": np.ones_like(is_test)}[split]
    index = np.flatnonzero(keep)                                     # (N,)
    labels = raw_labels[index].astype(np.int64)                      # (N,)
    images = (raw_images[index] / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1)
    if channels == 3:
        images = np.repeat(images, 3, axis=-1)                       # (N, 8, 8, 3)
    rng = np.random.default_rng([int(seed), SPLITS.index(split)])
    template = rng.integers(0, len(templates), index.size)           # (N,)
    captions = [caption(y, templates[t]) for y, t in zip(labels, template)]
    return {"images": images, "labels": labels, "captions": captions,
            "template": template, "index": index}
