import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.plot.canvas import BLACK, PALETTE
from npfm.plot.curves import format_tick, line_plot, log_ticks, nice_ticks
from npfm.png import read_png
from plot_pixels import ink

FEW = settings(max_examples=40, deadline=None)


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
