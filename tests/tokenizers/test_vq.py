import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npfm.data.shapes import make_shapes
from npfm.tokenizers.vq import (VQTokenizer, image_to_patches, kmeans, kmeans_plus_plus,
                                nearest_code, patches_to_image, squared_distances)

FEW = settings(max_examples=20, deadline=None)


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(400, "train", seed=0)["images"], make_shapes(100, "test", seed=0)["images"]


@pytest.fixture(scope="module")
def vq(shapes):
    return VQTokenizer.fit(shapes[0], n_codes=32, patch=2, iters=15, seed=0)


@FEW
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3))
def test_patches_round_trip(n, h, w, p, c):
    x = np.random.default_rng(0).standard_normal((n, h * p, w * p, c))
    patches = image_to_patches(x, p)
    assert patches.shape == (n, h, w, p * p * c)
    np.testing.assert_array_equal(patches[0, 0, 0], x[0, :p, :p, :].ravel())   # top-left patch
    np.testing.assert_array_equal(patches_to_image(patches, p, c), x)


def test_squared_distances_and_nearest_code():
    rng = np.random.default_rng(1)
    X, codes = rng.standard_normal((50, 5)), rng.standard_normal((7, 5))
    brute = ((X[:, None, :] - codes[None, :, :]) ** 2).sum(-1)      # (50, 7)
    np.testing.assert_allclose(squared_distances(X, codes), brute, rtol=1e-10, atol=1e-12)
    ids, d2 = nearest_code(X, codes, chunk=8)                        # several chunks
    np.testing.assert_array_equal(ids, brute.argmin(1))
    np.testing.assert_allclose(d2, brute.min(1), rtol=1e-10, atol=1e-12)
    assert squared_distances(codes, codes).min() >= 0                # clipped, never -1e-16


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    X = np.repeat(centres, 50, axis=0) + 0.1 * rng.standard_normal((200, 2))
    codes, history = kmeans(X, 4, iters=20, seed=0)
    found = codes[np.argsort(codes @ [1, 100])]                     # sort by (y, x)
    np.testing.assert_allclose(found, centres, atol=0.1)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(history, history[1:]))   # never worse
    start = kmeans_plus_plus(X, 4, np.random.default_rng(0))
    assert len({tuple(np.round(c)) for c in start}) == 4            # ++ spreads the start


def test_kmeans_reseeds_dead_codes_and_needs_enough_points():
    X = np.concatenate([np.zeros((30, 2)), np.ones((30, 2)), [[5.0, 5.0]]])
    init = np.array([[0.5, 0.5], [100.0, 100.0], [-100.0, 0.0]])   # two codes far from every point
    codes, history = kmeans(X, 3, iters=10, init=init)
    ids, d2 = nearest_code(X, codes)
    assert len(np.unique(ids)) == 3 and d2.max() < 1e-12            # each point has its own code
    assert history[-1] < 1e-12
    with pytest.raises(ValueError, match="cannot make"):
        kmeans(X[:3], 4)
    with pytest.raises(ValueError, match="init"):
        kmeans(X, 3, init=np.zeros((2, 2)))


def test_encode_decode_shapes_and_dtypes(vq, shapes):
    test = shapes[1]
    codes = vq.encode(test)
    assert codes.shape == (100, 8, 8) and np.issubdtype(codes.dtype, np.integer)
    assert codes.min() >= 0 and codes.max() < 32 == vq.n_codes == vq.vocab_size
    images = vq.decode(codes)
    assert images.shape == test.shape and images.dtype == np.float32
    np.testing.assert_array_equal(vq.decode(codes.reshape(100, 64)), images)   # flat sequences
    np.testing.assert_array_equal(vq.encode(images), codes)        # codes are fixed points
    assert vq.grid_size == (8, 8) and vq.n_tokens == 64
    assert np.unique(vq.encode(shapes[0])).size == 32              # every code is used


def test_fit_is_deterministic(shapes):
    a = VQTokenizer.fit(shapes[0][:100], n_codes=8, patch=4, iters=5, seed=3)
    b = VQTokenizer.fit(shapes[0][:100], n_codes=8, patch=4, iters=5, seed=3)
    c = VQTokenizer.fit(shapes[0][:100], n_codes=8, patch=4, iters=5, seed=4)
    np.testing.assert_array_equal(a.codebook, b.codebook)
    assert not np.array_equal(a.codebook, c.codebook)
    assert a.codebook.shape == (8, 4 * 4 * 3) and a.encode(shapes[1]).shape == (100, 4, 4)


def test_reconstruction_beats_the_mean_colour(vq, shapes):
    train, test = shapes
    baseline = float(((test - train.mean(axis=(0, 1, 2))) ** 2).mean())
    err = vq.reconstruction_error(test)
    assert err["mse"] < baseline / 4
    assert err["psnr"] == pytest.approx(10 * np.log10(1 / err["mse"]))
    assert err["psnr"] > 18
    more = VQTokenizer.fit(train, n_codes=64, patch=2, iters=15, seed=0)
    assert more.reconstruction_error(test)["mse"] < err["mse"]      # more codes, better


def test_exact_when_codes_cover_the_data():
    rng = np.random.default_rng(0)
    palette = rng.uniform(0, 1, (3, 12))                            # 3 distinct 2x2 RGB patches
    codes = rng.integers(0, 3, (10, 4, 4))
    images = patches_to_image(palette[codes], 2, 3)                 # (10, 8, 8, 3)
    vq = VQTokenizer.fit(images, n_codes=3, patch=2)
    assert vq.reconstruction_error(images)["psnr"] > 100


def test_to_dict_json_round_trip(vq, shapes, tmp_path):
    d = json.loads(json.dumps(vq.to_dict()))
    assert d["patch"] == 2 and d["image_size"] == [16, 16] and d["channels"] == 3 and d["type"] == "vq"
    back = VQTokenizer.from_dict(d)
    np.testing.assert_array_equal(back.codebook, vq.codebook)
    np.testing.assert_array_equal(back.encode(shapes[1]), vq.encode(shapes[1]))
    loaded = VQTokenizer.load(vq.save(tmp_path / "vq.json"))
    np.testing.assert_array_equal(loaded.codebook, vq.codebook)
    with pytest.raises(ValueError):
        VQTokenizer.from_dict({"type": "bpe"})
    with pytest.raises(ValueError, match="missing"):
        VQTokenizer.from_dict({"type": "vq", "patch": 2})


def test_errors(vq):
    with pytest.raises(ValueError, match="not divisible"):
        vq.encode(np.zeros((1, 15, 16, 3), np.float32))
    with pytest.raises(ValueError, match="channels"):
        vq.encode(np.zeros((1, 16, 16, 1), np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        vq.encode(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(TypeError):
        vq.encode(np.zeros((1, 16, 16, 3), np.int64))
    with pytest.raises(ValueError, match="NaN"):
        vq.encode(np.full((1, 16, 16, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="outside"):
        vq.decode(np.full((1, 8, 8), 32))
    with pytest.raises(ValueError, match="64 ids"):
        vq.decode(np.zeros((1, 63), int))
    with pytest.raises(TypeError):
        vq.decode(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="not divisible"):
        VQTokenizer.fit(np.zeros((2, 10, 10, 3), np.float32), patch=4)
    with pytest.raises(ValueError, match="cannot make"):
        VQTokenizer.fit(np.random.default_rng(0).uniform(size=(1, 4, 4, 3)), n_codes=8, patch=2)
    with pytest.raises(ValueError):
        VQTokenizer.fit(np.zeros((2, 4, 4, 3)), patch=0)
