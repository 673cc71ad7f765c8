"""BERT's basic tokenization: text cut into words, as BERT's ``BasicTokenizer`` does,
before WordPiece covers each word with pieces (``npfm.tokenizers.wordpiece``).

* clean: drop NUL, U+FFFD and control characters; every whitespace
  character (tab, newline, Unicode category Zs) becomes a space;
* put spaces around each CJK ideograph, so each one is a word;
* split on whitespace; lower-case each word (if ``lowercase``) and strip
  accents (decompose to NFD and drop the combining marks, category Mn);
* split each word on punctuation: every punctuation character is a word
  of its own. BERT counts as punctuation the ASCII ranges 33-47, 58-64,
  91-96 and 123-126 (so ``$ + < = > ^ ` | ~`` are punctuation although
  Unicode calls them symbols) and every character of category P*.

    "Héllo, World!"  ->  ["hello", ",", "world", "!"]
"""

from __future__ import annotations

import unicodedata


def is_whitespace(char):
    """Space, tab, newline, carriage return, or Unicode category Zs."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char):
    """A control character (category C*) other than tab, newline, carriage return."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char):
    """BERT's punctuation: the non-alphanumeric printable ASCII, or category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(char):
    """A CJK Unified Ideograph (the blocks BERT treats as one word per character).

    Hiragana, Katakana and Hangul are not in these blocks: they are written
    with spaces (Korean) or stay whole words (Japanese kana).
    """
    cp = ord(char)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF
            or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def clean_text(text):
    """Drop NUL, U+FFFD and control characters; every whitespace becomes a space."""
    out = []
    for char in text:
        if char == "\0" or char == "\ufffd" or is_control(char):
            continue
        out.append(" " if is_whitespace(char) else char)
    return "".join(out)


def space_cjk(text):
    """Put a space on both sides of every CJK ideograph."""
    return "".join(f" {char} " if is_cjk(char) else char for char in text)


def remove_accents(word):
    """'café' -> 'cafe': decompose (NFD) and drop the combining marks (Mn)."""
    return "".join(c for c in unicodedata.normalize("NFD", word)
                   if unicodedata.category(c) != "Mn")


def split_on_punctuation(word):
    """'don't!' -> ['don', "'", 't', '!']: each punctuation character alone."""
    pieces, current = [], []
    for char in word:
        if is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


def basic_tokenize(text, lowercase=True, strip_accents=None):
    """BERT's BasicTokenizer: clean, space CJK, lower-case, strip accents, split.

    strip_accents: None follows ``lowercase`` (as BERT does); True or False forces it.
    """
    if strip_accents is None:
        strip_accents = lowercase
    words = []
    for word in space_cjk(clean_text(text)).split():
        if lowercase:
            word = word.lower()
        if strip_accents:
            word = remove_accents(word)
        words.extend(split_on_punctuation(word))
    return words
