import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.plot.canvas import BLACK, new_canvas
from npfm.plot.text import (ADVANCE, CAP_H, FONT, GLYPH_H, GLYPH_W, draw_text, text_mask, text_size,
                            truncate, wrap_text)

FEW = settings(max_examples=40, deadline=None)


# ----- font and text ------------------------------------------------------------

def test_font_has_a_distinct_glyph_for_every_printable_character():
    assert FONT.shape == (95, GLYPH_H, GLYPH_W)
    assert not FONT[0].any()                                        # space is blank
    assert FONT[1:].reshape(94, -1).any(axis=1).all()               # every other glyph has ink
    assert len({g.tobytes() for g in FONT}) == 95                   # no two glyphs alike
    caps_and_digits = [ord(c) - 32 for c in "ABCXYZ0123456789"]
    assert not FONT[caps_and_digits, CAP_H:].any()                  # only descenders go below
    assert FONT[ord("g") - 32, CAP_H:].any()


def test_text_mask_spells_glyphs_side_by_side():
    mask = text_mask("HI")
    assert mask.shape == (GLYPH_H, 2 * ADVANCE - 1)
    np.testing.assert_array_equal(mask[:, :GLYPH_W], FONT[ord("H") - 32])
    np.testing.assert_array_equal(mask[:, ADVANCE:], FONT[ord("I") - 32])
    assert not mask[:, GLYPH_W].any()                               # the gap column
    assert text_mask("é").sum() == FONT[ord("?") - 32].sum()        # unknown -> '?'
    assert text_size("ab\ncd", scale=2) == (2 * (2 * ADVANCE - 1), 2 * (2 * GLYPH_H + 2))


@FEW
@given(st.integers(-8, 40), st.integers(-8, 30), st.integers(1, 3),
       st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=4))
def test_draw_text_puts_ink_where_expected(x, y, scale, text):
    canvas = new_canvas(30, 40)
    draw_text(canvas, text, x, y, BLACK, scale=scale)
    mask = text_mask(text, scale)
    expected = np.zeros((30 + 2 * 100, 40 + 2 * 100), bool)        # a big board, then crop
    expected[100 + y:100 + y + mask.shape[0], 100 + x:100 + x + mask.shape[1]] = mask
    expected = expected[100:130, 100:140]
    painted = np.all(canvas == 0, axis=-1)
    np.testing.assert_array_equal(painted, expected)
    assert np.all(canvas[~painted] == 255)


def test_draw_text_rejects_bad_arguments():
    with pytest.raises(ValueError):
        draw_text(np.zeros((5, 5)), "a", 0, 0)
    with pytest.raises(ValueError):
        draw_text(new_canvas(5, 5), "a", 0, 0, scale=0)


def test_wrap_text():
    assert wrap_text("a small red circle", 8) == ["a small", "red", "circle"]
    assert wrap_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    assert wrap_text("one two three four five", 3, max_lines=2) == ["one", "t.."]
    assert all(len(line) <= 7 for line in wrap_text("x " * 50, 7, max_lines=9))


def test_truncate():
    assert truncate("a red circle", 12) == "a red circle"
    assert truncate("a red circle", 6) == "a re.."
    assert len(truncate("x" * 50, 9)) == 9
