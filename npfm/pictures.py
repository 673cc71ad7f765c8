"""Pictures for notebooks: arrays in, PNG bytes out, shown inline where possible.

Every function here draws with npfm's own ``plot`` canvas and ``png`` writer
and returns the bytes of a PNG file, so a picture needs NumPy only:

    heatmap(values, ...)        a matrix as coloured cells (attention maps, masks, tables)
    heads(P, tokens, ...)       one attention map per head, side by side
    image_grid(images, ...)     images in a grid, optionally labelled
    curves(series, ...)         line plots (loss curves)
    scatter(x, y, ...)          points against the diagonal y = x (numerical vs analytic)
    similarity(...), search(...)  CLIP's two figures

``show(png)`` displays the bytes inline with ``IPython.display`` inside a
Jupyter kernel, and otherwise writes them to a file and returns its path.
A runner that is not Jupyter may set ``pictures.sink`` to a callable that
receives each shown picture (``notebooks/execute.py`` does).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from . import plot
from .plot import BLACK, LABEL_GRAY, LINE_HEIGHT, WHITE, CAP_H
from .png import encode_png

sink = None          # callable(png_bytes) or None: where show() sends pictures outside Jupyter
_counter = [0]


def _in_kernel():
    """True inside a running IPython kernel (a notebook), where display() renders images."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show(png, name=None):
    """Show PNG bytes: inline in Jupyter, else hand them to ``sink``, else write a file.

    Returns None when displayed inline or sent to the sink, else the path written.
    """
    if not isinstance(png, (bytes, bytearray)) or not png.startswith(b"\x89PNG"):
        raise ValueError("show: expected the bytes of a PNG file (from npfm.pictures)")
    if _in_kernel():
        from IPython.display import Image, display
        display(Image(data=bytes(png), format="png"))
        return None
    if sink is not None:
        sink(bytes(png))
        return None
    _counter[0] += 1
    folder = os.environ.get("NPFM_PICTURES", tempfile.gettempdir())
    path = os.path.join(folder, name or f"npfm_picture_{os.getpid()}_{_counter[0]}.png")
    with open(path, "wb") as f:
        f.write(png)
    print("picture written to", path)
    return path


def _title(canvas, title):
    """Put a title line above a canvas."""
    if not title:
        return canvas
    head = LINE_HEIGHT + 8
    out = plot.new_canvas(canvas.shape[0] + head, max(canvas.shape[1], plot.text_size(title)[0] + 12))
    out[head:, :canvas.shape[1]] = canvas
    plot.draw_text_centered(out, title, canvas.shape[1] // 2 if canvas.shape[1] > plot.text_size(title)[0]
                            else out.shape[1] // 2, 5, BLACK)
    return out


def heatmap_canvas(values, row_labels=None, col_labels=None, title="", cell=None,
                   lo=None, hi=None, annotate=None, fmt="{:.2f}", max_chars=12, texts=None,
                   cell_width=None):
    """A (R, K) matrix as an uint8 canvas of coloured cells (dark = lo, yellow = hi).

    Boolean matrices (masks) are drawn True = yellow, False = dark. Labels go
    left of the rows and above the columns (column labels written vertically).
    annotate: print each value in its cell (default: when cells are wide enough).
    texts: (R, K) strings to print in the cells instead of the values.
    cell: cell height (and width unless ``cell_width`` is given), in pixels.
    """
    values = np.asarray(values)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"heatmap: values must be a non-empty (R, K) matrix, got shape {values.shape}")
    numbers = values.astype(np.float64)
    R, K = numbers.shape
    if values.dtype == bool:
        lo, hi = 0.0, 1.0
        fmt = "{:.0f}"
    if cell is None:
        cell = int(np.clip(360 // max(R, K), 6, 40))
    cw = cell_width or cell
    if texts is not None:
        annotate = True
    if annotate is None:
        annotate = cw >= plot.text_size(fmt.format(-0.99))[0] + 6 and values.dtype != bool
    rows = [plot.truncate(s, max_chars) for s in row_labels] if row_labels is not None else None
    cols = [plot.truncate(s, max_chars) for s in col_labels] if col_labels is not None else None
    left = 6 + (max(plot.text_size(s)[0] for s in rows) + 6 if rows else 0)
    top = 6 + (max(plot.text_size(s)[0] for s in cols) + 6 if cols else 0)
    canvas = plot.new_canvas(top + R * cell + 6, left + K * cw + 6)
    colours = plot.colormap(numbers, lo, hi)                                 # (R, K, 3)
    big = np.repeat(np.repeat(colours, cell, axis=0), cw, axis=1)            # (R*cell, K*cw, 3)
    canvas[top:top + R * cell, left:left + K * cw] = big
    if rows:
        for r, s in enumerate(rows):
            plot.draw_text(canvas, s, left - 6 - plot.text_size(s)[0],
                           top + r * cell + (cell - CAP_H) // 2, BLACK)
    if cols:
        for c, s in enumerate(cols):
            plot.draw_text(canvas, s, left + c * cw + (cw - CAP_H) // 2, 6, BLACK, vertical=True)
    if annotate:
        for r in range(R):
            for c in range(K):
                text = fmt.format(numbers[r, c]) if texts is None else str(texts[r][c])
                plot.draw_text_centered(canvas, text, left + c * cw + cw // 2,
                                        top + r * cell + (cell - CAP_H) // 2, plot.ink_for(colours[r, c]))
    return _title(canvas, title)


def heatmap(values, row_labels=None, col_labels=None, title="", **kwargs):
    """PNG bytes of ``heatmap_canvas`` (see there for the arguments)."""
    return encode_png(heatmap_canvas(values, row_labels, col_labels, title, **kwargs))


def _side_by_side(canvases, gap=10):
    height = max(c.shape[0] for c in canvases)
    width = sum(c.shape[1] for c in canvases) + gap * (len(canvases) - 1)
    out = plot.new_canvas(height, width)
    x = 0
    for c in canvases:
        out[:c.shape[0], x:x + c.shape[1]] = c
        x += c.shape[1] + gap
    return out


def heads(P, tokens=None, title="", per_row=None, cell=None, max_width=1000):
    """PNG bytes: one attention map per head, query rows down, key columns across.

    P: (H, Tq, Tk) weights (one sequence); tokens: Tk labels (shown as repr of each).
    """
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 3:
        raise ValueError(f"heads: P must be (H, Tq, Tk), got shape {P.shape}")
    labels = None if tokens is None else [{" ": "_", "\n": "\\n"}.get(t, repr(t)[1:-1]) for t in tokens]
    rows_labels = labels[-P.shape[1]:] if labels is not None else None
    cell = cell or int(np.clip(240 // max(P.shape[1:]), 10, 24))     # 10 px: one glyph per row
    maps = [heatmap_canvas(P[h], rows_labels if h == 0 else None, labels,
                           title=f"head {h}", cell=cell, lo=0.0, annotate=False)
            for h in range(P.shape[0])]
    if per_row is None:                                      # as many maps per line as fit
        per_row = max(1, min(len(maps), max_width // (maps[0].shape[1] + 10)))
        maps = [heatmap_canvas(P[h], rows_labels if h % per_row == 0 else None, labels,
                               title=f"head {h}", cell=cell, lo=0.0, annotate=False)
                for h in range(P.shape[0])]
    lines = [_side_by_side(maps[i:i + per_row]) for i in range(0, len(maps), per_row)]
    width = max(line.shape[1] for line in lines)
    out = plot.new_canvas(sum(line.shape[0] for line in lines) + 8 * (len(lines) - 1), width)
    y = 0
    for line in lines:
        out[y:y + line.shape[0], :line.shape[1]] = line
        y += line.shape[0] + 8
    return encode_png(_title(out, title))


def image_grid(images, nrow=None, labels=None, scale=4, pad=2, title=""):
    """PNG bytes of ``npfm.plot.image_grid`` (images (N, H, W, 3) or (N, H, W))."""
    return encode_png(_title(plot.image_grid(images, nrow=nrow, labels=labels, scale=scale, pad=pad),
                             title))


def curves(series, title="", xlabel="step", ylabel="loss", log_y=False, width=560, height=340):
    """PNG bytes of a line plot: series {name: (xs, ys)} (``npfm.plot.line_plot``)."""
    return encode_png(plot.line_plot(series, title=title, xlabel=xlabel, ylabel=ylabel,
                                     log_y=log_y, width=width, height=height))


def loss_curve(history, title="training"):
    """PNG bytes of the train (and validation) loss in ``TrainResult.history``."""
    series = {"train": ([r["step"] for r in history], [r["train_loss"] for r in history])}
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    if val:
        series["validation"] = ([s for s, _ in val], [v for _, v in val])
    return curves(series, title=title)


def scatter(x, y, title="", xlabel="x", ylabel="y", size=360, diagonal=True):
    """PNG bytes: the points (x, y), with the line y = x drawn grey (where they should lie)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"scatter: x and y must hold as many numbers, got {x.size} and {y.size}")
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    left, top = 8 + LINE_HEIGHT + 40, 12 + (LINE_HEIGHT + 6 if title else 0)
    right, bottom = left + size, top + size
    canvas = plot.new_canvas(bottom + 2 * LINE_HEIGHT + 16, right + 16)

    def px(v):
        return (v - lo) / (hi - lo) * (size - 1)

    ticks = plot.nice_ticks(lo, hi, count=5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else None
    for t in ticks:
        if lo <= t <= hi:
            c, r = int(round(left + px(t))), int(round(bottom - 1 - px(t)))
            plot.fill_rect(canvas, c, top, c + 1, bottom, plot.GRID_GRAY)
            plot.fill_rect(canvas, left, r, right, r + 1, plot.GRID_GRAY)
            label = plot.format_tick(t, step)
            plot.draw_text_centered(canvas, label, c, bottom + 6, BLACK)
            plot.draw_text(canvas, label, left - 6 - plot.text_size(label)[0], r - CAP_H // 2, BLACK)
    if diagonal:
        plot.draw_polyline(canvas, np.array([left, right - 1.0]), np.array([bottom - 1.0, top]),
                           LABEL_GRAY, width=1)
    plot.draw_points(canvas, left + px(x), bottom - 1 - px(y), plot.PALETTE[0], size=5)
    plot.draw_rect(canvas, left, top, right, bottom, BLACK)
    if title:
        plot.draw_text_centered(canvas, title, (left + right) // 2, 8, BLACK)
    plot.draw_text_centered(canvas, xlabel, (left + right) // 2, canvas.shape[0] - 8 - plot.GLYPH_H, BLACK)
    plot.draw_text(canvas, ylabel, 8, (top + bottom) // 2 - plot.text_size(ylabel)[0] // 2, BLACK,
                   vertical=True)
    return encode_png(canvas)


def error_table(errors, title="relative error, log10", tolerance=1e-6):
    """PNG bytes: one row per name, its relative error as a cell coloured by log10 (and printed).

    errors: {name: relative error}. Cells at or under ``tolerance`` are
    the dark end of the scale; a red mark flags a name over it.
    """
    names = list(errors)
    if not names:
        raise ValueError("error_table: no errors to show")
    values = np.array([max(float(errors[n]), 1e-300) for n in names])
    logs = np.log10(values)[:, None]                                          # (N, 1)
    cell_w, cell_h = 96, LINE_HEIGHT + 8
    left = 6 + max(plot.text_size(n)[0] for n in names) + 6
    top = 6 + (LINE_HEIGHT + 6 if title else 0)
    canvas = plot.new_canvas(top + len(names) * cell_h + 6, left + cell_w + 40)
    colours = plot.colormap(logs[:, 0], -12.0, 0.0)
    for i, n in enumerate(names):
        y = top + i * cell_h
        plot.draw_text(canvas, n, left - 6 - plot.text_size(n)[0], y + (cell_h - CAP_H) // 2, BLACK)
        plot.fill_rect(canvas, left, y, left + cell_w, y + cell_h - 1, colours[i])
        plot.draw_text_centered(canvas, f"{values[i]:.1e}", left + cell_w // 2, y + (cell_h - CAP_H) // 2,
                                plot.ink_for(colours[i]))
        mark, colour = ("ok", (30, 130, 30)) if values[i] <= tolerance else ("BAD", (220, 30, 30))
        plot.draw_text(canvas, mark, left + cell_w + 6, y + (cell_h - CAP_H) // 2, colour)
    if title:
        plot.draw_text(canvas, title, 6, 6, BLACK)
    return encode_png(canvas)


def similarity(images, captions, sim, title="cosine similarity"):
    """PNG bytes of ``npfm.plot.similarity_figure``."""
    return encode_png(plot.similarity_figure(images, captions, sim, title=title))


def search(query, images, scores, k=None):
    """PNG bytes of ``npfm.plot.search_figure``."""
    return encode_png(plot.search_figure(query, images, scores, k=k))


def is_picture(png, min_size=17):
    """(ok, reason): the bytes decode as a PNG at least ``min_size`` pixels each way, not one colour."""
    from .png import decode_png
    try:
        image = decode_png(bytes(png))
    except Exception as err:                      # a broken file is a failed check, not a crash
        return False, f"not a PNG: {err}"
    h, w = image.shape[:2]
    if h < min_size or w < min_size:
        return False, f"only {w} x {h} pixels"
    flat = image.reshape(h * w, -1)
    if (flat == flat[0]).all():
        return False, "a single colour"
    return True, f"{w} x {h}"


__all__ = ["show", "heatmap", "heatmap_canvas", "heads", "image_grid", "curves", "loss_curve",
           "scatter", "error_table", "similarity", "search", "is_picture", "sink"]
