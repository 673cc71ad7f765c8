"""Text on a canvas: a 5x7 bitmap font for ASCII 32..126, measured, drawn and wrapped.

    text_mask(text)                 the ink of a text as a bool array
    text_size(text)                 (width, height) in pixels
    draw_text(canvas, text, x, y)   draw it, top-left at column x, row y (or turned upright)
    wrap_text(text, max_chars)      lines of at most max_chars characters
"""

from __future__ import annotations

import numpy as np

from .canvas import BLACK

# Each glyph is 5 columns by 9 rows; '#' is ink. Capitals and digits use the
# top 7 rows; the last 2 rows are for the descenders of g, j, p, q, y.
# Blocks of twelve characters: a line naming them (each name above its
# glyph), then the glyph's 9 rows. A character advances the pen by 6 pixels
# (one blank column between glyphs); a line of text is 11 pixels high.

GLYPH_W, GLYPH_H, CAP_H = 5, 9, 7
ADVANCE, LINE_HEIGHT = GLYPH_W + 1, GLYPH_H + 2
FIRST_CHAR, LAST_CHAR = 32, 126

_FONT_ART = r"""
      !     "     #     $     %     &     '     (     )     *     +
..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#.. ...#. .#... ..... .....
..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#.. ..#.. ..#.. ..#.. ..#..
..... ..#.. ..... ##### #.#.. ...#. #.#.. ..... .#... ...#. #.#.# ..#..
..... ..#.. ..... .#.#. .###. ..#.. .#... ..... .#... ...#. .###. #####
..... ..#.. ..... ##### ..#.# .#... #.#.# ..... .#... ...#. #.#.# ..#..
..... ..... ..... .#.#. ####. #..## #..#. ..... ..#.. ..#.. ..#.. ..#..
..... ..#.. ..... .#.#. ..#.. ...## .##.# ..... ...#. .#... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

,     -     .     /     0     1     2     3     4     5     6     7
..... ..... ..... ..... .###. ..#.. .###. ##### ...#. ##### ..##. #####
..... ..... ..... ....# #...# .##.. #...# ...#. ..##. #.... .#... ....#
..... ..... ..... ...#. #..## ..#.. ....# ..#.. .#.#. ####. #.... ...#.
..... ##### ..... ..#.. #.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#..
..... ..... ..... .#... ##..# ..#.. ..#.. ....# ##### ....# #...# .#...
.##.. ..... .##.. #.... #...# ..#.. .#... #...# ...#. #...# #...# .#...
.##.. ..... .##.. ..... .###. .###. ##### .###. ...#. .###. .###. .#...
..#.. ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
.#... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

8     9     :     ;     <     =     >     ?     @     A     B     C
.###. .###. ..... ..... ...#. ..... .#... .###. .###. .###. ####. .###.
#...# #...# .##.. ..... ..#.. ..... ..#.. #...# #...# #...# #...# #...#
#...# #...# .##.. .##.. .#... ##### ...#. ....# ....# #...# #...# #....
.###. .#### ..... .##.. #.... ..... ....# ...#. .##.# ##### ####. #....
#...# ....# .##.. ..... .#... ##### ...#. ..#.. #.#.# #...# #...# #....
#...# ...#. .##.. .##.. ..#.. ..... ..#.. ..... #.#.# #...# #...# #...#
.###. .##.. ..... .##.. ...#. ..... .#... ..#.. .###. #...# ####. .###.
..... ..... ..... ..#.. ..... ..... ..... ..... ..... ..... ..... .....
..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ..... .....

D     E     F     G     H     I     J     K     L     M     N     O
###.. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###.
#..#. #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## #...# #...#
#...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#
#...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#
#...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #..## #...#
#..#. #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...#
###.. ##### #.... .#### #...# .###. .##.. #...# ##### #...# #...# .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

P     Q     R     S     T     U     V     W     X     Y     Z     [
####. .###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###.
#...# #...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# .#...
#...# #...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. .#...
####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. .#...
#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... .#...
#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #.... .#...
#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. ##### .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

\     ]     ^     _     `     a     b     c     d     e     f     g
..... .###. ..#.. ..... .#... ..... #.... ..... ....# ..... ..##. .....
#.... ...#. .#.#. ..... ..#.. ..... #.... ..... ....# ..... .#..# .....
.#... ...#. #...# ..... ..... .###. #.##. .###. .##.# .###. .#... .####
..#.. ...#. ..... ..... ..... ....# ##..# #.... #..## #...# ###.. #...#
...#. ...#. ..... ..... ..... .#### #...# #.... #...# ##### .#... #...#
....# ...#. ..... ..... ..... #...# #...# #...# #...# #.... .#... #...#
..... .###. ..... ##### ..... .#### ####. .###. .#### .###. .#... .####
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ....#
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .###.

h     i     j     k     l     m     n     o     p     q     r     s
#.... ..#.. ...#. #.... .##.. ..... ..... ..... ..... ..... ..... .....
#.... ..... ..... #.... ..#.. ..... ..... ..... ..... ..... ..... .....
#.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###. ####. .#### #.##. .####
##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...# #...# #...# ##..# #....
#...# ..#.. ...#. ##... ..#.. #.#.# #...# #...# #...# #...# #.... .###.
#...# ..#.. ...#. #.#.. ..#.. #...# #...# #...# #...# #...# #.... ....#
#...# .###. ...#. #..#. .###. #...# #...# .###. ####. .#### #.... ####.
..... ..... #..#. ..... ..... ..... ..... ..... #.... ....# ..... .....
..... ..... .##.. ..... ..... ..... ..... ..... #.... ....# ..... .....

t     u     v     w     x     y     z     {     |     }     ~
.#... ..... ..... ..... ..... ..... ..... ...#. ..#.. .#... .....
.#... ..... ..... ..... ..... ..... ..... ..#.. ..#.. ..#.. .....
###.. #...# #...# #...# #...# #...# ##### ..#.. ..#.. ..#.. .#...
.#... #...# #...# #...# .#.#. #...# ...#. .#... ..#.. ...#. #.#.#
.#... #...# #...# #.#.# ..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#.
.#..# #..## .#.#. #.#.# .#.#. #...# .#... ..#.. ..#.. ..#.. .....
..##. .##.# ..#.. .#.#. #...# .#### ##### ...#. ..#.. .#... .....
..... ..... ..... ..... ..... ....# ..... ..... ..... ..... .....
..... ..... ..... ..... ..... .###. ..... ..... ..... ..... .....
"""


def _parse_font(art):
    """(95, 9, 5) bool glyphs for ASCII 32..126 from the blocks in ``art``."""
    lines = art.split("\n")[1:]
    glyphs = []
    for start in range(0, len(lines) - GLYPH_H, GLYPH_H + 2):
        names, rows = lines[start], lines[start + 1:start + 1 + GLYPH_H]
        for k in range(len(rows[0]) // ADVANCE + 1):
            code = FIRST_CHAR + len(glyphs)
            assert names.ljust(ADVANCE * (k + 1))[ADVANCE * k] == chr(code), chr(code)
            cols = slice(ADVANCE * k, ADVANCE * k + GLYPH_W)
            glyphs.append([[c == "#" for c in row[cols]] for row in rows])
    assert len(glyphs) == LAST_CHAR - FIRST_CHAR + 1
    return np.array(glyphs, dtype=bool)                           # (95, 9, 5)


FONT = _parse_font(_FONT_ART)
"""FONT[ord(c) - 32] is the (9, 5) bool bitmap of character c."""


def text_mask(text, scale=1):
    """The ink of ``text`` as a bool array (rows, columns); '\\n' starts a new line.

    Characters outside ASCII 32..126 are drawn as '?'. Each glyph pixel
    becomes a scale x scale block.
    """
    lines = str(text).split("\n")
    width = max(len(line) for line in lines) * ADVANCE
    mask = np.zeros((len(lines) * LINE_HEIGHT, max(width, 1)), dtype=bool)
    for i, line in enumerate(lines):
        codes = np.array([ord(c) for c in line], dtype=np.int64)
        codes = np.where((codes >= FIRST_CHAR) & (codes <= LAST_CHAR), codes, ord("?"))
        glyphs = np.zeros((len(line), GLYPH_H, ADVANCE), dtype=bool)  # (chars, 9, 6)
        glyphs[:, :, :GLYPH_W] = FONT[codes - FIRST_CHAR]
        row = glyphs.transpose(1, 0, 2).reshape(GLYPH_H, len(line) * ADVANCE)
        mask[i * LINE_HEIGHT:i * LINE_HEIGHT + GLYPH_H, :row.shape[1]] = row
    mask = mask[:len(lines) * LINE_HEIGHT - (LINE_HEIGHT - GLYPH_H), :max(width - 1, 1)]
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def text_size(text, scale=1):
    """(width, height) in pixels that ``draw_text`` covers for ``text``."""
    h, w = text_mask(text, scale).shape
    return w, h


def _paste(canvas, mask, x, y, color):
    """Set canvas pixels under the True entries of mask (top-left at x, y), clipped."""
    h, w = mask.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x0 >= x1 or y0 >= y1:
        return canvas
    region = canvas[y0:y1, x0:x1]                                   # a view
    region[mask[y0 - y:y1 - y, x0 - x:x1 - x]] = np.asarray(color, dtype=canvas.dtype)
    return canvas


def draw_text(canvas, text, x, y, color=BLACK, scale=1, vertical=False):
    """Draw ``text`` into ``canvas`` with its top-left corner at column x, row y.

    canvas: (height, width, 3) array, changed in place and returned.
    color: (r, g, b) in the canvas's units (0..255 for uint8).
    scale: each font pixel becomes scale x scale canvas pixels.
    vertical: rotate a quarter turn counter-clockwise (reads bottom to top).
    Whatever falls outside the canvas is clipped.
    """
    if not isinstance(canvas, np.ndarray) or canvas.ndim != 3:
        raise ValueError(f"draw_text: canvas must be a (height, width, channels) array, "
                         f"got {getattr(canvas, 'shape', type(canvas).__name__)}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"draw_text: scale must be a positive integer, got {scale!r}")
    mask = text_mask(text, int(scale))
    if vertical:
        mask = np.rot90(mask)
    return _paste(canvas, mask, int(round(x)), int(round(y)), color)


def draw_text_centered(canvas, text, cx, y, color=BLACK, scale=1):
    """``draw_text`` with the text centred on column cx."""
    w, _ = text_size(text, scale)
    return draw_text(canvas, text, cx - w // 2, y, color, scale)


def wrap_text(text, max_chars, max_lines=3):
    """Split text into lines of at most max_chars characters, at spaces where possible."""
    max_chars = max(int(max_chars), 1)
    lines, line = [], ""
    for word in str(text).split():
        while len(word) > max_chars:                                # a word longer than a line
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:max_chars])
            word = word[max_chars:]
        candidate = f"{line} {word}" if line else word
        if len(candidate) <= max_chars:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line or not lines:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:max_chars - 2].rstrip() + ".."
    return lines


def truncate(text, max_chars):
    """``text`` cut to ``max_chars`` characters, ending in '..' when it was longer."""
    text = str(text)
    return text if len(text) <= max_chars else text[:max(max_chars - 2, 1)] + ".."
