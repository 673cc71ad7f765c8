import re

from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.tokenizers.bpe_chunks import GPT2_PATTERN, SPLIT_PATTERN, compile_pattern, gpt2_regex

FEW = settings(max_examples=40, deadline=None)


@FEW
@given(st.text())
def test_split_pattern_covers_every_character(text):
    assert "".join(re.findall(SPLIT_PATTERN, text)) == text


def test_split_keeps_the_leading_space_with_the_word():
    chunks = re.findall(SPLIT_PATTERN, "Hello, world! It's 42  x_y")
    assert chunks == ["Hello", ",", " world", "!", " It", "'s", " 42", " ", " x", "_", "y"]


def test_compile_pattern_runs_gpt2s_pattern_with_pythons_re():
    assert compile_pattern(GPT2_PATTERN) is gpt2_regex()          # built once
    assert compile_pattern(SPLIT_PATTERN).pattern == SPLIT_PATTERN
    assert compile_pattern(GPT2_PATTERN).findall("I'm here") == ["I", "'m", " here"]
