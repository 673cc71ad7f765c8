"""Pictures without matplotlib: a bitmap font, line plots and image grids.

Everything is drawn into a *canvas*, a (height, width, 3) uint8 array of RGB
values, and saved with ``npfm.png.write_png``. One file per concept:

    canvas.py    the canvas, colours, rectangles, lines, points, a colour scale
    text.py      the 5x7 bitmap font: draw_text(canvas, text, x, y, color)
    curves.py    line_plot(series, path): training curves with axes, ticks, legend
    figures.py   image_grid(images, path); similarity_figure(images, captions, sim, path)
                 (CLIP's image-text heat map); search_figure(query, images, scores, path)
"""

from .canvas import (BLACK, GRID_GRAY, LABEL_GRAY, PALETTE, WHITE, colormap, draw_points,
                     draw_polyline, draw_rect, fill_rect, ink_for, new_canvas)
from .curves import format_tick, line_plot, log_ticks, nice_ticks
from .figures import image_grid, search_figure, similarity_figure, upscale
from .text import (ADVANCE, CAP_H, FIRST_CHAR, FONT, GLYPH_H, GLYPH_W, LAST_CHAR, LINE_HEIGHT,
                   draw_text, draw_text_centered, text_mask, text_size, truncate, wrap_text)

__all__ = ["BLACK", "GRID_GRAY", "LABEL_GRAY", "PALETTE", "WHITE", "colormap", "draw_points",
           "draw_polyline", "draw_rect", "fill_rect", "ink_for", "new_canvas",
           "format_tick", "line_plot", "log_ticks", "nice_ticks",
           "image_grid", "search_figure", "similarity_figure", "upscale",
           "ADVANCE", "CAP_H", "FIRST_CHAR", "FONT", "GLYPH_H", "GLYPH_W", "LAST_CHAR", "LINE_HEIGHT",
           "draw_text", "draw_text_centered", "text_mask", "text_size", "truncate", "wrap_text"]
