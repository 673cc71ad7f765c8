"""Line plots such as training curves: axes with round ticks, one colour per series, a legend.

    line_plot({"train": (steps, losses), "val": (steps, val_losses)}, "loss.png")
"""

from __future__ import annotations

import math

import numpy as np

from ..png import write_png
from .canvas import (BLACK, GRID_GRAY, LABEL_GRAY, PALETTE, WHITE, draw_points, draw_polyline,
                     draw_rect, fill_rect, new_canvas)
from .text import CAP_H, GLYPH_H, LINE_HEIGHT, draw_text, draw_text_centered, text_size


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
