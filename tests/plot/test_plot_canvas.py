import numpy as np

from npfm.plot.canvas import BLACK, colormap, draw_polyline, new_canvas
from plot_pixels import ink


# ----- lines and axes --------------------------------------------------------------

def test_polyline_horizontal_and_gap_free_diagonal():
    canvas = new_canvas(30, 30)
    draw_polyline(canvas, [2, 20], [5, 5], BLACK)
    rows, cols = ink(canvas)
    assert set(rows) == {5} and sorted(cols) == list(range(2, 21))
    canvas = new_canvas(30, 30)
    draw_polyline(canvas, [0, 29, 3], [0, 11, 28], BLACK, width=1)
    rows, cols = ink(canvas)
    assert set(cols) == set(range(30))                              # no missing column
    assert set(rows) == set(range(29))                              # no missing row
    draw_polyline(canvas, [-50, 100], [-50, 100], BLACK, width=3)   # clipped, no error


def test_colormap_ends_and_order():
    c = colormap(np.array([0.0, 0.5, 1.0]))
    assert c.shape == (3, 3) and c.dtype == np.uint8
    assert tuple(c[0]) == (68, 1, 84) and tuple(c[2]) == (253, 231, 37)
    assert c.astype(int).sum(1)[0] < c.astype(int).sum(1)[2]
