import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.plot import (ADVANCE, BLACK, CAP_H, FONT, GLYPH_H, GLYPH_W, PALETTE, colormap,
                       draw_polyline, draw_text, format_tick, image_grid, line_plot, log_ticks,
                       new_canvas, nice_ticks, search_figure, similarity_figure, text_mask,
                       text_size, wrap_text)
from npfm.png import read_png

FEW = settings(max_examples=40, deadline=None)


def ink(canvas, color=BLACK):
    """(rows, cols) of pixels painted exactly ``color``."""
    return np.nonzero(np.all(canvas == np.array(color, np.uint8), axis=-1))


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


@FEW
@given(st.floats(-1e4, 1e4), st.floats(1e-3, 1e4))
def test_nice_ticks_are_round_and_inside(lo, span):
    hi = lo + span
    ticks = nice_ticks(lo, hi)
    assert len(ticks) >= 2
    assert ticks[0] >= lo - 1e-9 * span and ticks[-1] <= hi + 1e-9 * span
    step = ticks[1] - ticks[0]
    np.testing.assert_allclose(np.diff(ticks), step, rtol=1e-6)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6


def test_log_ticks_and_labels():
    np.testing.assert_allclose(log_ticks(0.01, 6), [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5])
    np.testing.assert_allclose(log_ticks(1.5, 5.5), [2, 3, 4, 5])
    np.testing.assert_allclose(log_ticks(1e-6, 1e3), 10.0 ** np.arange(-6, 4))
    assert [format_tick(v, 0.5) for v in (0, 1.5, 2)] == ["0", "1.5", "2.0"]
    assert [format_tick(v, 200) for v in (400, 1200)] == ["400", "1200"]
    assert format_tick(1e-4) == "1e-4" and format_tick(2e6) == "2e6"


def test_line_plot_draws_each_series_in_its_colour(tmp_path):
    steps = np.arange(0, 500, 5)
    series = {"train": (steps, 3 * np.exp(-steps / 100) + 1),
              "validation": ([0, 250, 499], [4.0, 1.6, 1.2])}
    path = tmp_path / "loss.png"
    canvas = line_plot(series, path, title="gpt loss")
    assert canvas.shape == (400, 640, 3) and canvas.dtype == np.uint8
    np.testing.assert_array_equal(read_png(path), canvas)
    for color in PALETTE[:2]:
        assert len(ink(canvas, color)[0]) > 50                       # each curve is drawn
    assert len(ink(canvas, PALETTE[2])[0]) == 0                     # and only those
    assert len(ink(canvas, BLACK)[0]) > 500                         # axes, ticks, labels
    # the train curve falls: its ink on the left is higher (smaller rows) than on the right
    rows, cols = ink(canvas, PALETTE[0])
    assert rows[cols < 200].mean() < rows[cols > 500].mean()


def test_line_plot_log_y_and_bad_points():
    xs = np.arange(10.0)
    ys = np.array([10, 5, np.nan, 2, 1, None, 0.5, 0.2, 0.1, -1], dtype=object)
    canvas = line_plot({"a": (xs, ys)}, log_y=True, width=300, height=200)
    assert canvas.shape == (200, 300, 3)
    assert len(ink(canvas, PALETTE[0])[0]) > 20
    line_plot({"one point": ([3], [2.0])})                          # a single point is fine


@pytest.mark.parametrize("series", [{}, {"a": ([1, 2], [1])}, {"a": ([1], [np.nan])},
                                    {"a": 5}, {"a": (["x"], [1])}, [1, 2]])
def test_line_plot_bad_series_raise(series):
    with pytest.raises(ValueError):
        line_plot(series)


def test_line_plot_log_y_needs_positive_values():
    with pytest.raises(ValueError, match="log_y"):
        line_plot({"a": ([1, 2], [0, -1])}, log_y=True)


# ----- image pictures -------------------------------------------------------------

def test_image_grid_layout_and_pixels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 4, 3, 3), dtype=np.uint8)
    canvas = image_grid(images, tmp_path / "g.png", nrow=3, scale=2, pad=1)
    assert canvas.shape == (1 + 2 * (8 + 1), 1 + 3 * (6 + 1), 3)
    np.testing.assert_array_equal(canvas[1:9, 1:7], images[0].repeat(2, 0).repeat(2, 1))
    np.testing.assert_array_equal(canvas[10:18, 8:14], images[4].repeat(2, 0).repeat(2, 1))
    np.testing.assert_array_equal(read_png(tmp_path / "g.png"), canvas)
    floats = image_grid(images / 255.0, nrow=3, scale=2, pad=1)     # float [0, 1] gives the same
    np.testing.assert_array_equal(floats, canvas)


def test_image_grid_labels_and_gray():
    images = np.zeros((4, 8, 8))                                    # gray, black
    plain = image_grid(images, scale=4)
    labelled = image_grid(images, labels=["a", "bb", "a long label here", "d"], scale=4)
    assert labelled.shape[1] == plain.shape[1] and labelled.shape[0] > plain.shape[0]
    below = labelled[2 + 32:2 + 32 + 8, 2:2 + 32]                   # under the first image
    assert len(ink(below)[0]) > 0
    with pytest.raises(ValueError):
        image_grid(images, labels=["only one"])
    with pytest.raises(ValueError):
        image_grid(np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError):
        image_grid(np.zeros((0, 4, 4, 3)))


def test_colormap_ends_and_order():
    c = colormap(np.array([0.0, 0.5, 1.0]))
    assert c.shape == (3, 3) and c.dtype == np.uint8
    assert tuple(c[0]) == (68, 1, 84) and tuple(c[2]) == (253, 231, 37)
    assert c.astype(int).sum(1)[0] < c.astype(int).sum(1)[2]


def test_similarity_figure(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (3, 16, 16, 3))
    captions = ["a red circle", "a blue square", "a green triangle", "a cross"]
    sim = rng.uniform(-0.2, 0.3, (3, 4))
    sim[0, 2] = 0.9
    canvas = similarity_figure(images, captions, sim, tmp_path / "s.png")
    np.testing.assert_array_equal(read_png(tmp_path / "s.png"), canvas)
    hottest = colormap(sim)[0, 2]
    assert len(ink(canvas, hottest)[0]) > 100                      # the best cell is painted
    assert len(ink(canvas, (230, 30, 30))[0]) > 0                   # and outlined
    assert canvas.shape[1] > 4 * 48 and canvas.shape[0] > 5 * 40
    with pytest.raises(ValueError, match="N_images, N_captions"):
        similarity_figure(images, captions, sim.T)


def test_search_figure_shows_best_first(tmp_path):
    images = np.zeros((4, 8, 8, 3), np.uint8)
    colors = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]
    for i, c in enumerate(colors):
        images[i] = c
    canvas = search_figure("a green square", images, [0.1, 0.9, 0.5, 0.3], tmp_path / "q.png", k=2)
    np.testing.assert_array_equal(read_png(tmp_path / "q.png"), canvas)
    green, blue = ink(canvas, colors[1]), ink(canvas, colors[2])
    assert len(green[0]) == len(blue[0]) == 64 * 64
    assert green[1].max() < blue[1].min()                           # best on the left
    assert len(ink(canvas, colors[0])[0]) == 0                      # beyond k: not shown
    with pytest.raises(ValueError):
        search_figure("q", images, [1.0, 2.0])
