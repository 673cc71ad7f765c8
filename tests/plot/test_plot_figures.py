import numpy as np
import pytest

from npfm.plot.canvas import colormap
from npfm.plot.figures import image_grid, search_figure, similarity_figure
from npfm.png import read_png
from plot_pixels import ink


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
