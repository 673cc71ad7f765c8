"""A vector-quantisation (VQ) image tokenizer: images -> a grid of ints -> images.

A text-to-image transformer predicts images one token at a time, so an image
must become a short sequence of ids. This tokenizer cuts each image into
non-overlapping p x p patches and replaces every patch by the id of the
nearest of K *codes* (a codebook of typical patches), learned by k-means:

    patches   x_n in R^D,  D = p * p * channels        one per patch of every image
    encode    id(x) = argmin_k ||x - c_k||^2            (N, H/p, W/p) ids in [0, K)
    decode    x_hat = c_id                              each patch becomes its code

It needs no download and no gradient: it is fitted to the training images in
a few seconds. (DALL-E's dVAE learns a better, overlapping code with a neural
network; the sequence it gives the transformer looks the same.)

k-means (Lloyd's algorithm) minimises the *inertia* sum_n min_k ||x_n - c_k||^2
by alternating two steps, each of which can only lower it:

    assign    a_n = argmin_k ||x_n - c_k||^2
    update    c_k = mean of the x_n with a_n = k

Squared distances for all pairs come from one matrix product,

    ||x - c||^2 = ||x||^2 - 2 x . c + ||c||^2        (N, K) = (N, 1) - 2 X C^T + (1, K)

Initialisation is k-means++: the first code is a random patch, each next one
a patch drawn with probability proportional to its squared distance to the
nearest code so far, which spreads the codes over the data. A code that ends
up with no patches (a *dead* code) is moved onto the patch that is currently
worst represented, so every id is used.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..core import check_ids


# ----- patches ------------------------------------------------------------------

def image_to_patches(images, patch):
    """(N, H, W, C) -> (N, H/p, W/p, p*p*C): each p x p patch flattened (rows, columns, channels)."""
    n, height, width, channels = images.shape
    h, w = height // patch, width // patch
    x = images.reshape(n, h, patch, w, patch, channels)             # (N, h, p, w, p, C)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, patch * patch * channels)


def patches_to_image(patches, patch, channels):
    """The inverse of image_to_patches: (N, h, w, p*p*C) -> (N, h*p, w*p, C)."""
    n, h, w, _ = patches.shape
    x = patches.reshape(n, h, w, patch, patch, channels)             # (N, h, w, p, p, C)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * patch, w * patch, channels)


# ----- k-means --------------------------------------------------------------------

def squared_distances(X, codes):
    """||x_n - c_k||^2 for all pairs: (N, D), (K, D) -> (N, K), clipped at 0 (rounding)."""
    d2 = (X * X).sum(axis=1, keepdims=True) - 2.0 * (X @ codes.T) \
        + (codes * codes).sum(axis=1)[None, :]                       # (N, K)
    return np.maximum(d2, 0.0, out=d2)


def nearest_code(X, codes, chunk=32768):
    """For each row of X the nearest code and its squared distance: (N,) int64, (N,).

    Rows go through in chunks so the (chunk, K) distance matrix stays small.
    """
    ids = np.empty(X.shape[0], dtype=np.int64)                      # (N,)
    d2min = np.empty(X.shape[0], dtype=X.dtype)                     # (N,)
    for start in range(0, X.shape[0], chunk):
        d2 = squared_distances(X[start:start + chunk], codes)        # (chunk, K)
        ids[start:start + chunk] = d2.argmin(axis=1)
        d2min[start:start + chunk] = d2[np.arange(d2.shape[0]), ids[start:start + chunk]]
    return ids, d2min


def kmeans_plus_plus(X, k, rng):
    """k starting codes: a random row, then rows drawn with probability ~ distance^2 to the codes so far."""
    n = X.shape[0]
    chosen = [int(rng.integers(n))]
    d2 = ((X - X[chosen[0]]) ** 2).sum(axis=1)                       # (N,)
    for _ in range(1, k):
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        chosen.append(i)
        d2 = np.minimum(d2, ((X - X[i]) ** 2).sum(axis=1))
    return X[chosen].copy()                                          # (K, D)


def kmeans(X, k, iters=30, seed=0, tol=1e-5, init=None):
    """Lloyd's k-means with k-means++ start and dead-code re-seeding.

    X: (N, D) float. Stops after ``iters`` rounds, or earlier when the
    inertia improves by less than ``tol`` (relative) and no code is dead.
    init: optional (K, D) starting codes instead of k-means++.
    Returns (codes (K, D), inertia per round (list of floats)).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] < k:
        raise ValueError(f"kmeans: {X.shape[0]} points cannot make {k} codes")
    rng = np.random.default_rng(seed)
    if init is None:
        codes = kmeans_plus_plus(X, k, rng)                          # (K, D)
    else:
        codes = np.array(init, dtype=np.float64)                     # (K, D), a copy
        if codes.shape != (k, X.shape[1]):
            raise ValueError(f"kmeans: init must have shape {(k, X.shape[1])}, got {codes.shape}")
    history = []
    for _ in range(iters):
        ids, d2 = nearest_code(X, codes)                             # assign
        history.append(float(d2.sum()))
        counts = np.bincount(ids, minlength=k)                       # (K,)
        sums = np.zeros_like(codes)                                  # (K, D)
        np.add.at(sums, ids, X)
        alive = counts > 0
        codes[alive] = sums[alive] / counts[alive, None]             # update
        dead = np.flatnonzero(~alive)
        if dead.size:                                                # re-seed on the worst-served points
            worst = np.argsort(-d2, kind="stable")[:dead.size]
            codes[dead] = X[worst]
        elif len(history) > 1 and history[-2] - history[-1] <= tol * history[-2]:
            break
    return codes, history


# ----- the tokenizer ------------------------------------------------------------

class VQTokenizer:
    """Images <-> grids of code ids, with a k-means codebook of p x p patches.

    codebook: (K, p*p*C) float32, one flattened patch per code.
    patch: p. image_size: (H, W) of the images it was fitted on (the grid of
    ids is then (H/p, W/p)). channels: C.
    """

    type = "vq"

    def __init__(self, codebook, patch, image_size, channels):
        codebook = np.asarray(codebook, dtype=np.float32)
        patch, channels = int(patch), int(channels)
        height, width = (int(s) for s in image_size)
        if codebook.ndim != 2 or codebook.shape[1] != patch * patch * channels:
            raise ValueError(f"VQTokenizer: codebook must be (K, {patch * patch * channels}) for "
                             f"{patch}x{patch} patches of {channels} channels, got {codebook.shape}")
        if height % patch or width % patch:
            raise ValueError(f"VQTokenizer: image size {height}x{width} is not divisible "
                             f"by the patch {patch}")
        self.codebook = codebook
        self.patch, self.channels = patch, channels
        self.image_size = (height, width)

    @classmethod
    def fit(cls, images, n_codes=64, patch=2, iters=30, seed=0, max_patches=65536):
        """Learn a codebook of ``n_codes`` patches from ``images`` (N, H, W, C).

        At most ``max_patches`` patches (drawn at random, given ``seed``) are
        used for k-means, which bounds the time on a large data set.
        """
        if int(patch) != patch or patch < 1:
            raise ValueError(f"VQTokenizer.fit: patch must be a positive integer, got {patch!r}")
        if int(n_codes) != n_codes or n_codes < 1:
            raise ValueError(f"VQTokenizer.fit: n_codes must be a positive integer, got {n_codes!r}")
        images = _as_float_images(images, "VQTokenizer.fit")
        n, height, width, channels = images.shape
        _check_divisible(height, width, int(patch), "VQTokenizer.fit")
        X = image_to_patches(images, int(patch)).reshape(-1, patch * patch * channels)  # (N*h*w, D)
        rng = np.random.default_rng(seed)
        if X.shape[0] > max_patches:
            X = X[np.sort(rng.choice(X.shape[0], size=max_patches, replace=False))]
        codes, history = kmeans(X, int(n_codes), iters=iters, seed=rng)
        tokenizer = cls(codes, patch, (height, width), channels)
        tokenizer.fit_history = history
        return tokenizer

    @property
    def n_codes(self):
        return self.codebook.shape[0]

    vocab_size = n_codes

    @property
    def grid_size(self):
        """(H/p, W/p): the grid of ids of one image of the fitted size."""
        return self.image_size[0] // self.patch, self.image_size[1] // self.patch

    @property
    def n_tokens(self):
        """Ids per image of the fitted size: (H/p) * (W/p)."""
        h, w = self.grid_size
        return h * w

    def _check_images(self, images, who):
        images = _as_float_images(images, who)
        if images.shape[-1] != self.channels:
            raise ValueError(f"{who}: images have {images.shape[-1]} channels, "
                             f"the tokenizer was fitted on {self.channels}")
        _check_divisible(images.shape[1], images.shape[2], self.patch, who)
        return images

    def encode(self, images):
        """(N, H, W, C) images -> (N, H/p, W/p) int64 code ids."""
        images = self._check_images(images, "VQTokenizer.encode")
        patches = image_to_patches(images, self.patch)               # (N, h, w, D)
        n, h, w, d = patches.shape
        ids, _ = nearest_code(patches.reshape(-1, d), self.codebook)
        return ids.reshape(n, h, w)

    def decode(self, codes):
        """Code ids -> (N, H, W, C) float32 images.

        codes: (N, h, w), or (N, T) with T = n_tokens (a flat sequence of
        ids, as a transformer produces them, read row by row).
        """
        codes = check_ids(codes, self.n_codes, name="codes", who="VQTokenizer.decode")
        if codes.ndim == 2:
            if codes.shape[1] != self.n_tokens:
                raise ValueError(f"VQTokenizer.decode: a flat sequence of codes must have "
                                 f"{self.n_tokens} ids per image, got shape {codes.shape}")
            codes = codes.reshape(codes.shape[0], *self.grid_size)   # (N, h, w)
        if codes.ndim != 3:
            raise ValueError(f"VQTokenizer.decode: codes must be (N, h, w) or (N, T), "
                             f"got shape {codes.shape}")
        patches = self.codebook[codes]                               # (N, h, w, D)
        return patches_to_image(patches, self.patch, self.channels)

    def reconstruction_error(self, images):
        """How well decode(encode(images)) matches images: {"mse": ..., "psnr": ...}.

        mse = mean (x - x_hat)^2 over every value; psnr = 10 log10(1 / mse) dB
        (the peak value is 1); higher is better, and inf when exact.
        """
        images = self._check_images(images, "VQTokenizer.reconstruction_error")
        diff = self.decode(self.encode(images)).astype(np.float64) - images
        mse = float(np.mean(diff * diff))
        return {"mse": mse, "psnr": 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf}

    def to_dict(self):
        """A JSON-able description: everything needed to rebuild the tokenizer."""
        return {"type": self.type, "patch": self.patch, "image_size": list(self.image_size),
                "channels": self.channels, "codebook": self.codebook.tolist()}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("type") != cls.type:
            raise ValueError(f"VQTokenizer.from_dict expects a dict with type 'vq', "
                             f"got {d.get('type') if isinstance(d, dict) else type(d).__name__!r}")
        missing = [k for k in ("patch", "image_size", "channels", "codebook") if k not in d]
        if missing:
            raise ValueError(f"VQTokenizer.from_dict: missing keys {missing}")
        return cls(d["codebook"], d["patch"], d["image_size"], d["channels"])

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)
        return path

    @classmethod
    def load(cls, path):
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a VQ codebook (a JSON file written by "
                             f"VQTokenizer.save): {e}") from None
        return cls.from_dict(d)

    def __repr__(self):
        h, w = self.image_size
        return (f"VQTokenizer({self.n_codes} codes, {self.patch}x{self.patch} patches, "
                f"{h}x{w}x{self.channels} images -> {self.grid_size[0]}x{self.grid_size[1]} ids)")


def _as_float_images(images, who):
    """(N, H, W, C) float images; uint8 is scaled to [0, 1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"{who}: images must be float in [0, 1] or uint8, got dtype {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"{who}: images must be (N, H, W, C), got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{who}: no images")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{who}: images contain NaN or infinite values")
    return images


def _check_divisible(height, width, patch, who):
    if height % patch or width % patch:
        raise ValueError(f"{who}: image size {height}x{width} is not divisible by the patch size {patch}")
