"""How byte-level BPE cuts text into chunks before it merges: a regular
expression matches words with their leading space, numbers, runs of
punctuation and runs of whitespace, and merges never cross a chunk boundary,
so " the" can become one token but "e t" never does.

    SPLIT_PATTERN    npfm's own, for Python's ``re``
    GPT2_PATTERN     GPT-2's, written for the ``regex`` module; ``gpt2_regex()``
                     is the same pattern compiled for Python's ``re``
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

# GPT-2 splits with \p{L} (letters) and \p{N} (numbers), which Python's ``re``
# lacks. Here a letter is [^\W\d_] (a word character that is neither a digit
# nor "_"), a number is \d, and punctuation is anything else that is not
# whitespace, "_" included. Every character falls in exactly one class, so the
# chunks always join back to the text.
SPLIT_PATTERN = (
    r"""'(?:s|t|re|ve|m|ll|d)"""   # English contractions: 's 't 're 've 'm 'll 'd
    r"""| ?[^\W\d_]+"""            # a word, with its leading space
    r"""| ?\d+"""                  # a number, with its leading space
    r"""| ?(?:[^\s\w]|_)+"""       # a run of punctuation, with its leading space
    r"""|\s+(?!\S)"""              # spaces, leaving the last one for the next word
    r"""|\s+"""                    # trailing spaces
)

# GPT-2's own pattern, as its tokenizer writes it for the third-party ``regex``
# module. npfm runs it with Python's ``re`` by spelling each class out as code
# point ranges (``gpt2_regex``): \p{L} is every character whose Unicode
# category starts with "L", \p{N} with "N", and \s is Unicode White_Space,
# which is ``str.isspace`` without U+001C..U+001F (Python counts those four
# separators as space, ``regex`` and Unicode do not). The classes come from
# Python's ``unicodedata``, so characters that a newer Unicode assigns (unassigned
# in this Python) are punctuation here.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _class_bodies():
    """Regex character-class bodies (code point ranges) of GPT-2's letters,
    numbers and spaces, from one pass over every code point."""
    ranges = {"L": [], "N": [], "space": []}
    open_at = {}
    for cp in range(sys.maxunicode + 2):
        if cp <= sys.maxunicode:
            char = chr(cp)
            kind = "space" if is_gpt2_space(char) else unicodedata.category(char)[0]
        else:
            kind = None
        for name, spans in ranges.items():
            if kind == name and name not in open_at:
                open_at[name] = cp
            elif kind != name and name in open_at:
                spans.append((open_at.pop(name), cp - 1))
    return {name: "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                          for a, b in spans)
            for name, spans in ranges.items()}


def is_gpt2_space(char):
    """\\s of GPT-2's pattern: Unicode White_Space."""
    return char.isspace() and not "\x1c" <= char <= "\x1f"


@lru_cache(maxsize=1)
def gpt2_regex():
    """GPT2_PATTERN compiled for Python's ``re`` (built once, ~1 s: it classifies
    every code point)."""
    bodies = _class_bodies()
    letter, number, space = bodies["L"], bodies["N"], bodies["space"]
    return re.compile(
        rf"""'(?:s|t|re|ve|m|ll|d)| ?[{letter}]+| ?[{number}]+| ?[^{space}{letter}{number}]+"""
        rf"""|[{space}]+(?![^{space}])|[{space}]+""")


def compile_pattern(pattern):
    """The compiled splitter of a pattern: GPT2_PATTERN or a Python ``re`` pattern."""
    return gpt2_regex() if pattern == GPT2_PATTERN else re.compile(pattern)
