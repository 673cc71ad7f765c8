"""Figures of images: a labelled grid, CLIP's image-text similarities, a text query's best images.

    image_grid(images, path)                          a grid of images, optional labels
    similarity_figure(images, captions, sim, path)    CLIP's image-text heat map
    search_figure(query, images, scores, path)        a text query and its best images
"""

from __future__ import annotations

import math

import numpy as np

from ..png import to_uint8, write_png
from .canvas import BLACK, WHITE, colormap, draw_rect, fill_rect, ink_for, new_canvas
from .text import (ADVANCE, CAP_H, LINE_HEIGHT, draw_text, draw_text_centered, text_size, truncate,
                   wrap_text)


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
    captions = [truncate(c, max_chars) for c in captions]
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
                               ink_for(colours[i, c]))
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
