"""Pictures without matplotlib: a bitmap font, line plots and image grids.

Everything is drawn into a *canvas*, a (height, width, 3) uint8 array of RGB
values (row 0 at the top, column 0 at the left), and saved with
``npfm.png.write_png``. Colours are (r, g, b) triples of ints in 0..255.

    draw_text(canvas, text, x, y, color)   5x7 bitmap font, ASCII 32..126
    line_plot(series, path)                training curves: axes, ticks, legend
    image_grid(images, path)               a grid of images, optional labels
    similarity_figure(images, captions, sim, path)   CLIP's image-text heat map
    search_figure(query, images, scores, path)       a text query and its best images

Lines are rasterised by dense sampling: a segment from (x0, y0) to (x1, y1)
is sampled at n = ceil(max(|x1 - x0|, |y1 - y0|)) + 1 evenly spaced points, so
consecutive samples are at most one pixel apart and the line has no gaps.
"""

from __future__ import annotations

import math

import numpy as np

from .png import to_uint8, write_png

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GRID_GRAY = (225, 225, 225)
LABEL_GRAY = (90, 90, 90)

PALETTE = (
    (31, 119, 180),   # blue
    (230, 97, 1),     # orange
    (44, 160, 44),    # green
    (214, 39, 40),    # red
    (148, 103, 189),  # purple
    (23, 190, 207),   # cyan
    (140, 86, 75),    # brown
    (227, 119, 194),  # pink
)
"""Series colours, in order: distinct on white, and still distinct in gray."""

# ----- the font ---------------------------------------------------------------
#
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


# ----- shapes -----------------------------------------------------------------

def new_canvas(height, width, color=WHITE):
    """A (height, width, 3) uint8 canvas filled with ``color``."""
    canvas = np.empty((int(height), int(width), 3), dtype=np.uint8)  # (height, width, 3)
    canvas[:] = color
    return canvas


def fill_rect(canvas, x0, y0, x1, y1, color):
    """Fill columns [x0, x1) and rows [y0, y1) (clipped to the canvas)."""
    x0, x1 = max(int(x0), 0), min(int(x1), canvas.shape[1])
    y0, y1 = max(int(y0), 0), min(int(y1), canvas.shape[0])
    if x0 < x1 and y0 < y1:
        canvas[y0:y1, x0:x1] = color
    return canvas


def draw_rect(canvas, x0, y0, x1, y1, color, width=1):
    """The outline of the box with corners (x0, y0) and (x1 - 1, y1 - 1)."""
    fill_rect(canvas, x0, y0, x1, y0 + width, color)
    fill_rect(canvas, x0, y1 - width, x1, y1, color)
    fill_rect(canvas, x0, y0, x0 + width, y1, color)
    fill_rect(canvas, x1 - width, y0, x1, y1, color)
    return canvas


def draw_polyline(canvas, xs, ys, color, width=1):
    """Join the points (xs[i], ys[i]) (pixel coordinates) with straight segments.

    Each segment is sampled at n = ceil(max(|dx|, |dy|)) + 1 points (at most a
    pixel apart); every sample paints a width x width square. All segments
    are sampled at once: sample j of segment s sits at p_s + (j / (n_s - 1)) d_s.
    """
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if xs.size == 0:
        return canvas
    if xs.size == 1:
        return draw_points(canvas, xs, ys, color, size=width)
    dx, dy = np.diff(xs), np.diff(ys)                               # (segments,)
    n = np.ceil(np.maximum(np.abs(dx), np.abs(dy))).astype(np.int64) + 1
    seg = np.repeat(np.arange(dx.size), n)                          # (samples,)
    first = np.cumsum(n) - n                                        # index of each segment's first sample
    j = np.arange(seg.size) - first[seg]                            # (samples,)
    t = j / np.maximum(n[seg] - 1, 1)                               # (samples,)
    return draw_points(canvas, xs[seg] + t * dx[seg], ys[seg] + t * dy[seg], color, size=width)


def draw_points(canvas, xs, ys, color, size=3):
    """A size x size square centred on each point (xs[i], ys[i])."""
    offsets = np.arange(size) - (size - 1) // 2                     # (size,)
    ox, oy = np.meshgrid(offsets, offsets)
    cols = (np.round(np.asarray(xs, dtype=np.float64))[:, None] + ox.ravel()).astype(np.int64).ravel()
    rows = (np.round(np.asarray(ys, dtype=np.float64))[:, None] + oy.ravel()).astype(np.int64).ravel()
    inside = (cols >= 0) & (cols < canvas.shape[1]) & (rows >= 0) & (rows < canvas.shape[0])
    canvas[rows[inside], cols[inside]] = color
    return canvas


def colormap(values, lo=None, hi=None):
    """Map values to (..., 3) uint8 colours from dark purple (lo) through teal to yellow (hi).

    Piecewise-linear between five anchor colours (the viridis scale's
    quartiles); ``lo`` and ``hi`` default to the values' min and max.
    """
    values = np.asarray(values, dtype=np.float64)
    lo = np.nanmin(values) if lo is None else lo
    hi = np.nanmax(values) if hi is None else hi
    t = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    t = np.nan_to_num(t, nan=0.0)
    anchors = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140),
                        (94, 201, 98), (253, 231, 37)], dtype=np.float64)  # (5, 3)
    stops = np.linspace(0.0, 1.0, len(anchors))
    rgb = np.stack([np.interp(t, stops, anchors[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)                           # (..., 3)


def _ink_for(background):
    """Black or white, whichever reads better on ``background``."""
    r, g, b = (float(v) for v in background)
    return BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else WHITE


# ----- axes ---------------------------------------------------------------------

def nice_ticks(lo, hi, count=6):
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if not hi > lo:
        return np.array([lo])
    raw = (hi - lo) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return np.arange(first, last + 1) * step


def log_ticks(lo, hi):
    """Ticks for a log axis over [lo, hi] > 0: powers of ten, with 2 and 5 (or 1..9) between
    them when the range spans few decades."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mantissas = range(1, 10) if k1 - k0 <= 1 else (1, 2, 5) if k1 - k0 <= 3 else (1,)
    ticks = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in mantissas]
    ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return np.array(ticks if ticks else [lo])


def format_tick(value, step=None):
    """A short label: as many decimals as the tick step needs, 'e' notation when huge or tiny."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.0e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
    if step is None:
        return f"{value:g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _series_arrays(series):
    """Validate ``series`` and return [(name, xs, ys)] as float64 arrays."""
    if not isinstance(series, dict) or not series:
        raise ValueError("line_plot: series must be a non-empty dict {name: (xs, ys)}")
    out = []
    for name, value in series.items():
        try:
            xs, ys = value
        except (TypeError, ValueError):
            raise ValueError(f"line_plot: series {name!r} must be a pair (xs, ys)") from None
        try:
            xs = np.asarray(xs, dtype=np.float64).ravel()
            ys = np.asarray([np.nan if v is None else v for v in np.asarray(ys, dtype=object).ravel()],
                            dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"line_plot: series {name!r} must hold numbers") from None
        if xs.shape != ys.shape:
            raise ValueError(f"line_plot: series {name!r} has {xs.size} x values "
                             f"and {ys.size} y values")
        out.append((str(name), xs, ys))
    return out


def line_plot(series, path=None, title="", xlabel="step", ylabel="loss",
              width=640, height=400, log_y=False):
    """Plot curves such as training and validation loss; write a PNG if ``path`` is given.

    series: {name: (xs, ys)}, one colour per name (from PALETTE) and a legend.
        Non-finite points (NaN, inf, None) are skipped and break the line;
        with log_y, points with y <= 0 are skipped too.
    Returns the (height, width, 3) uint8 canvas.
    """
    curves = _series_arrays(series)
    if width < 160 or height < 120:
        raise ValueError(f"line_plot: the picture must be at least 160x120, got {width}x{height}")
    keep = [np.isfinite(xs) & np.isfinite(ys) & ((ys > 0) if log_y else True) for _, xs, ys in curves]
    all_x = np.concatenate([xs[k] for (_, xs, _), k in zip(curves, keep)])
    all_y = np.concatenate([ys[k] for (_, _, ys), k in zip(curves, keep)])
    if all_x.size == 0:
        raise ValueError("line_plot: no finite points to plot" + (" (log_y needs y > 0)" if log_y else ""))

    x_lo, x_hi = float(all_x.min()), float(all_x.max())
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    if log_y:
        y_lo, y_hi = math.log10(all_y.min()), math.log10(all_y.max())
        pad = 0.05 * (y_hi - y_lo) if y_hi > y_lo else 0.5
        y_lo, y_hi = y_lo - pad, y_hi + pad
        y_ticks = log_ticks(10 ** y_lo, 10 ** y_hi)
        y_labels = [format_tick(t) for t in y_ticks]
        y_tick_pos = np.log10(y_ticks)
    else:
        y_lo, y_hi = float(all_y.min()), float(all_y.max())
        pad = 0.05 * (y_hi - y_lo) if y_hi > y_lo else max(abs(y_lo) * 0.1, 1.0)
        y_lo, y_hi = y_lo - pad, y_hi + pad
        y_ticks = nice_ticks(y_lo, y_hi)
        step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else None
        y_labels = [format_tick(t, step) for t in y_ticks]
        y_tick_pos = y_ticks
    x_ticks = nice_ticks(x_lo, x_hi, count=max(3, width // 110))
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else None
    x_labels = [format_tick(t, x_step) for t in x_ticks]

    # plot area [left, right) x [top, bottom)
    left = 8 + LINE_HEIGHT + 6 + max(text_size(s)[0] for s in y_labels) + 6
    right = width - 16
    top = 12 + (LINE_HEIGHT + 6 if title else 0)
    bottom = height - (12 + 2 * LINE_HEIGHT + 8)

    def to_px(x, y):
        """Data coordinates -> pixel columns and rows (rows grow downward)."""
        col = left + (x - x_lo) / (x_hi - x_lo) * (right - 1 - left)
        row = bottom - 1 - (y - y_lo) / (y_hi - y_lo) * (bottom - 1 - top)
        return col, row

    canvas = new_canvas(height, width)
    for pos, label in zip(y_tick_pos, y_labels):
        _, row = to_px(x_lo, pos)
        row = int(round(row))
        fill_rect(canvas, left, row, right, row + 1, GRID_GRAY)
        fill_rect(canvas, left - 4, row, left, row + 1, BLACK)
        tw, _ = text_size(label)
        draw_text(canvas, label, left - 6 - tw, row - CAP_H // 2, BLACK)
    for tick, label in zip(x_ticks, x_labels):
        col, _ = to_px(tick, y_lo)
        col = int(round(col))
        fill_rect(canvas, col, top, col + 1, bottom, GRID_GRAY)
        fill_rect(canvas, col, bottom, col + 1, bottom + 4, BLACK)
        draw_text_centered(canvas, label, col, bottom + 7, BLACK)
    draw_rect(canvas, left, top, right, bottom, BLACK)

    for i, ((name, xs, ys), k) in enumerate(zip(curves, keep)):
        color = PALETTE[i % len(PALETTE)]
        y_data = np.log10(np.where(k, ys, 1.0)) if log_y else ys
        cols, rows = to_px(xs, y_data)
        runs = np.split(np.arange(xs.size), np.flatnonzero(np.diff(k.astype(np.int8)) != 0) + 1)
        for run in runs:                                            # unbroken stretches of good points
            if run.size and k[run[0]]:
                draw_polyline(canvas, cols[run], rows[run], color, width=2)
        if k.sum() <= 30:                                           # few points: mark each one
            draw_points(canvas, cols[k], rows[k], color, size=5)
    draw_rect(canvas, left, top, right, bottom, BLACK)

    # legend, top-right inside the plot area
    names = [name for name, _, _ in curves]
    legend_w = 8 + 18 + 6 + max(text_size(n)[0] for n in names) + 8
    legend_h = 6 + LINE_HEIGHT * len(names) + 3
    lx, ly = right - 8 - legend_w, top + 8
    fill_rect(canvas, lx, ly, lx + legend_w, ly + legend_h, WHITE)
    draw_rect(canvas, lx, ly, lx + legend_w, ly + legend_h, LABEL_GRAY)
    for i, name in enumerate(names):
        row = ly + 6 + i * LINE_HEIGHT
        fill_rect(canvas, lx + 8, row + 2, lx + 26, row + 5, PALETTE[i % len(PALETTE)])
        draw_text(canvas, name, lx + 32, row, BLACK)

    if title:
        draw_text_centered(canvas, title, (left + right) // 2, 10, BLACK)
    draw_text_centered(canvas, xlabel, (left + right) // 2, height - 8 - GLYPH_H, BLACK)
    ylab = ylabel + (" (log scale)" if log_y else "")
    draw_text(canvas, ylab, 8, (top + bottom) // 2 - text_size(ylab)[0] // 2, BLACK, vertical=True)
    if path is not None:
        write_png(path, canvas)
    return canvas


# ----- images ---------------------------------------------------------------------

def _as_rgb_batch(images, who):
    """(N, H, W, 3) uint8 from (N, H, W), (N, H, W, 1) or (N, H, W, 3), uint8 or float in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]                                  # (N, H, W, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{who}: images must be (N, H, W, 3) RGB or (N, H, W) gray, "
                         f"got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{who}: no images")
    images = to_uint8(images, who)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def upscale(images, scale):
    """Nearest-neighbour upscaling: each pixel becomes a scale x scale block."""
    return images.repeat(scale, axis=-3).repeat(scale, axis=-2)


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


def _truncate(text, max_chars):
    text = str(text)
    return text if len(text) <= max_chars else text[:max(max_chars - 2, 1)] + ".."


def image_grid(images, path=None, nrow=None, labels=None, scale=4, pad=2,
               background=(235, 235, 235)):
    """Lay images out in a grid, ``nrow`` images per row; write a PNG if ``path`` is given.

    images: (N, H, W, 3) RGB or (N, H, W) gray, float in [0, 1] or uint8.
    nrow: images per row (default ceil(sqrt(N))).
    labels: optional N strings, written under each image (wrapped, at most 3 lines).
    scale: nearest-neighbour upscaling factor; pad: pixels between cells.
    Returns the uint8 canvas.
    """
    images = _as_rgb_batch(images, "image_grid")
    n, h, w, _ = images.shape
    if labels is not None and len(labels) != n:
        raise ValueError(f"image_grid: {len(labels)} labels for {n} images")
    if int(scale) != scale or scale < 1 or pad < 0:
        raise ValueError(f"image_grid: scale must be a positive integer and pad >= 0, "
                         f"got scale={scale!r}, pad={pad!r}")
    scale, pad = int(scale), int(pad)
    ncol = int(nrow) if nrow else math.ceil(math.sqrt(n))
    if ncol < 1:
        raise ValueError(f"image_grid: nrow must be positive, got {nrow}")
    nrows = math.ceil(n / ncol)
    cell_w, cell_h = w * scale, h * scale
    wrapped = None
    label_h = 0
    if labels is not None:
        wrapped = [wrap_text(label, max((cell_w + 1) // ADVANCE, 1)) for label in labels]
        label_h = max(len(lines) for lines in wrapped) * LINE_HEIGHT + 3

    canvas = new_canvas(pad + nrows * (cell_h + label_h + pad), pad + ncol * (cell_w + pad), background)
    big = upscale(images, scale)                                    # (N, H*scale, W*scale, 3)
    for i in range(n):
        row, col = divmod(i, ncol)
        x = pad + col * (cell_w + pad)
        y = pad + row * (cell_h + label_h + pad)
        canvas[y:y + cell_h, x:x + cell_w] = big[i]
        if wrapped is not None:
            for j, line in enumerate(wrapped[i]):
                draw_text_centered(canvas, line, x + cell_w // 2, y + cell_h + 3 + j * LINE_HEIGHT)
    if path is not None:
        write_png(path, canvas)
    return canvas


def similarity_figure(images, captions, sim, path=None, title="cosine similarity", max_chars=48):
    """CLIP's picture: images along the top, captions down the left, similarities in between.

    images: (N_images, H, W, 3) (or gray); captions: N_captions strings;
    sim: (N_images, N_captions), cell (caption c, image i) shows sim[i, c]
    as a colour (dark = low, yellow = high) with its value printed; the best
    caption of each image is outlined in red.
    Returns the uint8 canvas; writes a PNG if ``path`` is given.
    """
    images = _as_rgb_batch(images, "similarity_figure")
    n_img, h, w, _ = images.shape
    captions = [str(c) for c in captions]
    sim = np.asarray(sim, dtype=np.float64)
    if sim.shape != (n_img, len(captions)):
        raise ValueError(f"similarity_figure: sim must be (N_images, N_captions) = "
                         f"({n_img}, {len(captions)}), got shape {sim.shape}")
    if not np.all(np.isfinite(sim)):
        raise ValueError("similarity_figure: sim contains NaN or infinite values")
    n_cap = len(captions)
    big = max(abs(sim.max()), abs(sim.min()))
    fmt = "{:.2f}" if big < 10 else "{:.1f}" if big < 100 else "{:.0f}"
    values = [[fmt.format(v) for v in row] for row in sim]          # values[i][c]
    widest = max(text_size(v)[0] for row in values for v in row)
    scale = max(1, math.ceil(44 / max(h, w)))
    cell = max(max(h, w) * scale, widest + 8) + 4                   # square cells
    captions = [_truncate(c, max_chars) for c in captions]
    left = 8 + max(text_size(c)[0] for c in captions) + 8
    top = 8 + (LINE_HEIGHT + 6 if title else 0)
    grid_top = top + cell
    canvas = new_canvas(grid_top + n_cap * cell + 8, left + n_img * cell + 8)

    thumbs = upscale(images, scale)                                 # (N_images, h, w, 3)
    for i in range(n_img):
        x = left + i * cell + (cell - w * scale) // 2
        y = top + (cell - h * scale) // 2
        canvas[y:y + h * scale, x:x + w * scale] = thumbs[i]
    colours = colormap(sim)                                         # (N_images, N_captions, 3)
    best = sim.argmax(axis=1)                                       # (N_images,)
    for c in range(n_cap):
        y = grid_top + c * cell
        draw_text(canvas, captions[c], left - 8 - text_size(captions[c])[0],
                  y + (cell - CAP_H) // 2, BLACK)
        for i in range(n_img):
            x = left + i * cell
            fill_rect(canvas, x, y, x + cell - 1, y + cell - 1, colours[i, c])  # 1-pixel white gaps
            draw_text_centered(canvas, values[i][c], x + cell // 2, y + (cell - CAP_H) // 2,
                               _ink_for(colours[i, c]))
    for i in range(n_img):                                          # outline each image's best caption
        x, y = left + i * cell, grid_top + best[i] * cell
        draw_rect(canvas, x, y, x + cell - 1, y + cell - 1, (230, 30, 30), width=2)
    if title:
        draw_text_centered(canvas, title, left + n_img * cell // 2, 8, BLACK)
    if path is not None:
        write_png(path, canvas)
    return canvas


def search_figure(query, images, scores, path=None, k=None, scale=None):
    """A text query and the images that match it best, with their scores.

    images: (N, H, W, 3) candidates (or gray); scores: (N,) how well each
    matches ``query``. The images are shown best first, at most ``k`` of them
    (default all), each labelled with its rank and score.
    Returns the uint8 canvas; writes a PNG if ``path`` is given.
    """
    images = _as_rgb_batch(images, "search_figure")
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.shape != (images.shape[0],):
        raise ValueError(f"search_figure: {scores.size} scores for {images.shape[0]} images")
    if not np.all(np.isfinite(scores)):
        raise ValueError("search_figure: scores contain NaN or infinite values")
    k = images.shape[0] if k is None else int(k)
    if k < 1:
        raise ValueError(f"search_figure: k must be positive, got {k}")
    order = np.argsort(-scores, kind="stable")[:k]                  # best first
    h, w = images.shape[1:3]
    scale = scale or max(1, math.ceil(64 / max(h, w)))
    labels = [f"#{r + 1}  {scores[i]:.3f}" for r, i in enumerate(order)]
    grid = image_grid(images[order], nrow=len(order), labels=labels, scale=scale, pad=6,
                      background=WHITE)
    header = f'query: "{query}"'
    head_h = 10 + LINE_HEIGHT + 4
    canvas = new_canvas(head_h + grid.shape[0], max(grid.shape[1], text_size(header)[0] + 16))
    draw_text(canvas, header, 6, 8, BLACK)
    canvas[head_h:, :grid.shape[1]] = grid
    if path is not None:
        write_png(path, canvas)
    return canvas
