"""CLIP on shapes: training batches with jittered colours and true captions."""

import numpy as np
import pytest

from npfm.data import shapes
from npfm.tasks.clip import ShapesData


def _drawn(seed, n):
    """The batch train_batch draws from np.random.default_rng(seed), before the jitter."""
    rng = np.random.default_rng(seed)
    return rng, shapes.make_shapes(n, "train", seed=int(rng.integers(2**31)))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_batch_is_the_split_with_its_colours_jittered(seed):
    images, captions = ShapesData().train_batch(np.random.default_rng(seed), 128)
    rng, d = _drawn(seed, 128)
    assert captions == d["captions"]
    np.testing.assert_array_equal(
        images, shapes.colour_jitter(d["images"], d["coverage"], d["colour"], rng, ShapesData.jitter))
    assert images.dtype == np.float32 and 0.0 <= images.min() and images.max() <= 1.0
    # every image's channels moved by gains of their own, within 1 -+ jitter
    ratio = images.mean(axis=(1, 2)) / d["images"].mean(axis=(1, 2))               # (B, 3)
    assert ratio.min() > 1 - ShapesData.jitter - 0.02 and ratio.max() < 1 + ShapesData.jitter + 0.02
    assert ratio.std() > 0.1


def test_without_jitter_the_batch_is_the_split_as_drawn():
    data = ShapesData()
    data.jitter = 0.0
    images, captions = data.train_batch(np.random.default_rng(3), 64)
    _, d = _drawn(3, 64)
    np.testing.assert_array_equal(images, d["images"])
    assert captions == d["captions"]


def test_held_out_images_are_not_jittered():
    data = ShapesData()
    images, _, _, d = data.held_out("test", 32)
    np.testing.assert_array_equal(images, shapes.make_shapes(32, "test", seed=1)["images"])
