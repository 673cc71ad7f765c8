"""npfm.pictures: arrays in, PNG bytes out; show() inline, to a sink, or to a file."""

import numpy as np
import pytest

from npfm import pictures
from npfm.png import decode_png


def image_of(png):
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return decode_png(png)


def test_heatmap_puts_the_largest_value_in_yellow_and_the_smallest_dark():
    values = np.array([[0.0, 1.0], [0.5, 0.25]])
    image = image_of(pictures.heatmap(values, cell=20, annotate=False))
    # no labels, no title: the cells start 6 pixels in; sample the middle of each cell
    low, high = image[6 + 10, 6 + 10], image[6 + 10, 6 + 30]
    assert tuple(high) == (253, 231, 37)
    assert tuple(low) == (68, 1, 84)


def test_a_mask_is_drawn_true_yellow_false_dark():
    mask = np.tril(np.ones((4, 4), bool))
    image = image_of(pictures.heatmap(mask, cell=10))
    assert tuple(image[6 + 35, 6 + 5]) == (253, 231, 37)     # row 3, column 0: True
    assert tuple(image[6 + 5, 6 + 35]) == (68, 1, 84)        # row 0, column 3: False


def test_heads_draws_one_map_per_head():
    P = np.random.default_rng(0).dirichlet(np.ones(6), size=(3, 6))      # (H, T, T)
    one = image_of(pictures.heads(P[:1], list("abcdef"), per_row=3))
    three = image_of(pictures.heads(P, list("abcdef"), per_row=3))
    assert three.shape[1] > 2.5 * one.shape[1]
    with pytest.raises(ValueError, match="heads"):
        pictures.heads(P[0])


@pytest.mark.parametrize("make", [
    lambda: pictures.scatter([0, 1, 2], [0, 1, 2.1], title="t", xlabel="a", ylabel="b"),
    lambda: pictures.error_table({"dx": 1e-10, "wrong": 0.3}),
    lambda: pictures.curves({"train": ([1, 2, 3], [3.0, 2.0, 1.5])}),
    lambda: pictures.loss_curve([{"step": 1, "train_loss": 2.0}, {"step": 2, "train_loss": 1.0, "val_loss": 1.2}]),
    lambda: pictures.image_grid(np.random.default_rng(0).random((4, 8, 8, 3)), title="grid"),
    lambda: pictures.heatmap(np.ones((2, 3)), ["a", "b"], ["x", "y", "z"], texts=[["1", "2", "3"]] * 2,
                             cell=20, cell_width=40),
])
def test_every_picture_is_a_real_png(make):
    ok, why = pictures.is_picture(make())
    assert ok, why


def test_is_picture_rejects_blank_tiny_and_broken_files():
    from npfm.png import encode_png
    assert not pictures.is_picture(encode_png(np.full((40, 40, 3), 200, np.uint8)))[0]
    assert not pictures.is_picture(encode_png(np.eye(8)))[0]
    assert not pictures.is_picture(b"\x89PNG\r\n\x1a\nnonsense")[0]
    assert pictures.is_picture(encode_png(np.eye(40)))[0]


def test_error_table_marks_errors_over_the_tolerance():
    good = image_of(pictures.error_table({"dx": 1e-10}))
    bad = image_of(pictures.error_table({"dx": 1e-2}))
    red = lambda im: ((im[..., 0] > 200) & (im[..., 1] < 60) & (im[..., 2] < 60)).sum()  # noqa: E731
    assert red(bad) > 0 and red(good) == 0


def test_show_sends_to_the_sink_or_writes_a_file(tmp_path, monkeypatch):
    png = pictures.heatmap(np.eye(3))
    got = []
    monkeypatch.setattr(pictures, "sink", got.append)
    assert pictures.show(png) is None and got == [png]
    monkeypatch.setattr(pictures, "sink", None)
    monkeypatch.setenv("NPFM_PICTURES", str(tmp_path))
    path = pictures.show(png, name="eye.png")
    assert path == str(tmp_path / "eye.png") and (tmp_path / "eye.png").read_bytes() == png
    with pytest.raises(ValueError, match="PNG"):
        pictures.show(b"not a png")
