"""The canvas and the shapes drawn on it.

A *canvas* is a (height, width, 3) uint8 array of RGB values (row 0 at the
top, column 0 at the left), saved with ``npfm.png.write_png``. Colours are
(r, g, b) triples of ints in 0..255.

Lines are rasterised by dense sampling: a segment from (x0, y0) to (x1, y1)
is sampled at n = ceil(max(|x1 - x0|, |y1 - y0|)) + 1 evenly spaced points, so
consecutive samples are at most one pixel apart and the line has no gaps.
"""

from __future__ import annotations

import numpy as np

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


def ink_for(background):
    """Black or white, whichever reads better on ``background``."""
    r, g, b = (float(v) for v in background)
    return BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else WHITE
