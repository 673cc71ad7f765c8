"""Shapes: small synthetic pictures of coloured shapes, each with a caption.

The image-text data set for CLIP and the text-to-image model, generated on
the spot (no download) and deterministic given a seed. Each image shows one
shape on a dark, slightly noisy background:

    shape     circle, square, triangle, cross, diamond, ring
    colour    red, orange, yellow, green, cyan, blue, purple, white
              (with a little random jitter in hue and brightness)
    size      small or large
    position  a 3 x 3 grid, "top left" ... "bottom right", with jitter

and a caption made from a template, e.g. "a small red circle in the top left".

Drawing. Every shape is a *signed distance* d(p) from pixel centre p to the
shape's outline, negative inside (a circle's is |p - c| - r). A pixel's ink
coverage is clip(0.5 - d, 0, 1): 1 well inside, 0 well outside, a one-pixel
ramp across the edge (cheap anti-aliasing). Then

    image = background * (1 - coverage) + colour * coverage

computed for all images of one shape at once on a coordinate grid.

Splits, for testing what a model has learned:

    "train"    (shape, colour) pairs not in UNSEEN_PAIRS
    "test"     the same pairs as train, new random draws
    "unseen"   only UNSEEN_PAIRS: one or two colours held out per shape, every
               colour held out once, so the pairs are new though each word is not

Captions use TRAIN_TEMPLATES; HELDOUT_TEMPLATES are never used by default and
test whether a text encoder generalises to new wording. ZERO_SHOT_TEMPLATES
turn a class name into a prompt for zero-shot classification.
"""

from __future__ import annotations

import math
import re

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "ring")
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "white")
SIZES = ("small", "large")
POSITIONS = ("top left", "top", "top right",
             "left", "center", "right",
             "bottom left", "bottom", "bottom right")
POSITION_PHRASES = ("in the top left", "at the top", "in the top right",
                    "on the left", "in the center", "on the right",
                    "in the bottom left", "at the bottom", "in the bottom right")

COLOUR_RGB = np.array([
    (0.92, 0.12, 0.10),   # red
    (1.00, 0.55, 0.05),   # orange
    (0.95, 0.92, 0.10),   # yellow
    (0.15, 0.80, 0.20),   # green
    (0.10, 0.85, 0.90),   # cyan
    (0.20, 0.35, 1.00),   # blue
    (0.72, 0.22, 0.92),   # purple
    (0.95, 0.95, 0.95),   # white
], dtype=np.float32)
"""COLOUR_RGB[c] is the base (r, g, b) of COLOURS[c], before jitter."""

UNSEEN_PAIRS = (
    ("circle", "green"), ("square", "purple"), ("triangle", "white"),
    ("cross", "red"), ("diamond", "cyan"), ("ring", "orange"),
    ("circle", "yellow"), ("square", "blue"),
)
"""(shape, colour) pairs held out of training: every shape and every colour once or twice."""

TRAIN_TEMPLATES = (
    "a {size} {colour} {shape} {where}",
    "a {colour} {shape}",
    "a photo of a {size} {colour} {shape}",
    "there is a {size} {colour} {shape} {where}",
    "a {colour} {shape} {where}",
    "a {size} {shape}, coloured {colour}",
)
HELDOUT_TEMPLATES = (
    "{where} there is a {colour} {shape}",
    "a picture of one {size} {colour} {shape}",
)
"""Templates never used in training, for testing new wording."""

ZERO_SHOT_TEMPLATES = ("a photo of a {}", "a {} shape", "a {}")
"""Prompts for zero-shot classification: the class name goes in the {}."""

SPLITS = ("train", "test", "unseen")

# index of (shape, colour) pair = shape * len(COLOURS) + colour
_UNSEEN = np.array([SHAPES.index(s) * len(COLOURS) + COLOURS.index(c) for s, c in UNSEEN_PAIRS])
_SEEN = np.setdiff1d(np.arange(len(SHAPES) * len(COLOURS)), _UNSEEN)


def _fix_articles(text):
    """'a orange' -> 'an orange' (and 'A orange' -> 'An orange')."""
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)


def _name(value, names, what):
    """A name from ``names`` given the name itself or its index."""
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; expected one of {names}")
        return value
    index = int(value)
    if not 0 <= index < len(names):
        raise ValueError(f"{what} index {index} is out of range [0, {len(names)})")
    return names[index]


def caption(shape, colour, size, position, template=TRAIN_TEMPLATES[0]):
    """The caption of one image: ``template`` filled with the attribute words.

    shape, colour, size, position: names (``"circle"``) or indices into
    SHAPES, COLOURS, SIZES, POSITIONS. template: a string with any of the
    fields {shape} {colour} {size} {where}, e.g. TRAIN_TEMPLATES[k].

    >>> caption("circle", "orange", "small", "top left", "a {colour} {shape} {where}")
    'an orange circle in the top left'
    """
    where = POSITION_PHRASES[POSITIONS.index(_name(position, POSITIONS, "position"))]
    text = template.format(shape=_name(shape, SHAPES, "shape"),
                           colour=_name(colour, COLOURS, "colour"),
                           size=_name(size, SIZES, "size"), where=where)
    return _fix_articles(text)


def zero_shot_prompts(names, template=ZERO_SHOT_TEMPLATES[0]):
    """One prompt per class name: ``template.format(name)`` (e.g. "a photo of a circle")."""
    return [_fix_articles(template.format(name)) for name in names]


# ----- drawing -------------------------------------------------------------------

def _signed_distance(shape, px, py, r):
    """Signed distance (negative inside) from points (px, py) to a shape of radius r at 0.

    px, py: (n, S, S) coordinates relative to the shape's centre; r: (n, 1, 1).
    Every shape fits in the circle of radius ~r, so r sets its size.
    """
    ax, ay = np.abs(px), np.abs(py)
    if shape == "circle":
        return np.sqrt(px * px + py * py) - r
    if shape == "square":                       # half side 0.8 r
        return np.maximum(ax, ay) - 0.8 * r
    if shape == "triangle":                     # pointing up; centroid shifted so the box is centred
        q = py - 0.29 * r
        inradius = 0.58 * r
        return np.maximum(q, 0.866 * ax - 0.5 * q) - inradius
    if shape == "cross":                        # a plus sign: two bars of half width w
        w = np.maximum(0.32 * r, 0.9)
        return np.minimum(np.maximum(ax - 0.95 * r, ay - w), np.maximum(ax - w, ay - 0.95 * r))
    if shape == "diamond":                      # a square turned 45 degrees
        return (ax + ay - 1.05 * r) / math.sqrt(2.0)
    if shape == "ring":                         # outer radius r, a band of half width t
        t = np.maximum(0.3 * r, 0.75)
        return np.abs(np.sqrt(px * px + py * py) - (r - t)) - t
    raise ValueError(f"unknown shape {shape!r}")


def render(shape, colour, size, position, image_size=16, seed=0):
    """Draw images from attribute indices; returns (images, coverage).

    shape, colour, size, position: (N,) int arrays of indices into SHAPES,
    COLOURS, SIZES, POSITIONS. The jitter (colour, radius, centre) and the
    background are drawn from ``np.random.default_rng(seed)`` (or pass a
    Generator as seed).

    images: (N, S, S, 3) float32 in [0, 1];  coverage: (N, S, S) float32, the
    fraction of each pixel covered by the shape.
    """
    shape, colour, size, position = (np.asarray(a, dtype=np.int64).ravel()
                                     for a in (shape, colour, size, position))
    n = shape.size
    if not all(a.size == n for a in (colour, size, position)):
        raise ValueError("render: shape, colour, size and position must have the same length")
    for a, names, what in ((shape, SHAPES, "shape"), (colour, COLOURS, "colour"),
                           (size, SIZES, "size"), (position, POSITIONS, "position")):
        if n and (a.min() < 0 or a.max() >= len(names)):
            raise ValueError(f"render: {what} indices must be in [0, {len(names)})")
    S = _check_size(image_size)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    # geometry, in pixels: radius by size, centre on a 3 x 3 grid inside the margin
    radius = np.where(size == 0, 0.2, 0.31) * S * rng.uniform(0.92, 1.08, n)      # (N,)
    margin = radius + 0.5                                                           # (N,)
    grid_row, grid_col = position // 3, position % 3
    jitter = rng.uniform(-0.04, 0.04, (2, n)) * S                                   # (2, N)
    cx = np.clip(margin + grid_col / 2 * (S - 2 * margin) + jitter[0], margin, S - margin)
    cy = np.clip(margin + grid_row / 2 * (S - 2 * margin) + jitter[1], margin, S - margin)

    # coverage of every pixel centre (i + 0.5), one shape kind at a time
    centres = np.arange(S) + 0.5                                                    # (S,)
    coverage = np.empty((n, S, S), dtype=np.float32)                                # (N, S, S)
    for k, name in enumerate(SHAPES):
        idx = np.flatnonzero(shape == k)
        if idx.size == 0:
            continue
        px = centres[None, None, :] - cx[idx, None, None]                           # (n_k, 1, S)
        py = centres[None, :, None] - cy[idx, None, None]                           # (n_k, S, 1)
        px, py = np.broadcast_arrays(px, py)                                        # (n_k, S, S)
        d = _signed_distance(name, px, py, radius[idx, None, None])
        coverage[idx] = np.clip(0.5 - d, 0.0, 1.0)

    # colours with jitter; a dark, slightly tinted, noisy background
    rgb = COLOUR_RGB[colour] * rng.uniform(0.85, 1.0, (n, 1)) \
        + rng.uniform(-0.04, 0.04, (n, 3))                                          # (N, 3)
    rgb = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    tint = (rng.uniform(0.03, 0.15, (n, 1, 1, 1))
            + rng.uniform(-0.03, 0.03, (n, 1, 1, 3))).astype(np.float32)            # (N, 1, 1, 3)
    noise = rng.standard_normal((n, S, S, 3), dtype=np.float32)                     # (N, S, S, 3)
    background = tint + np.float32(0.02) * noise                                    # (N, S, S, 3)
    a = coverage[..., None]                                                         # (N, S, S, 1)
    images = background * (1.0 - a) + rgb[:, None, None, :] * a                     # (N, S, S, 3)
    return np.clip(images, 0.0, 1.0, out=images), coverage


def colour_jitter(images, coverage, colour, rng, amount=0.3, max_draws=100):
    """Each image's red, green and blue scaled by gains of its own (an augmentation),
    drawn so that its colour keeps its name.

    images: (N, S, S, 3) in [0, 1]; coverage: (N, S, S), the shape's ink in each
    pixel; colour: (N,) indices into COLOURS; rng: a Generator; amount: gains
    are drawn uniformly from [1 - amount, 1 + amount], one per image and channel.
    An image's gains are drawn again while its ink (the colour of the pixels
    the shape covers) times them is nearer another colour's base (COLOUR_RGB)
    than its own, so its caption stays true; after max_draws the leftovers keep
    gains of 1. Returns a new (N, S, S, 3) float32 array, clipped to [0, 1].

    Why: a shape's pixels are its colour times its coverage, so an image tower
    can learn each shape's look anew for every colour it was shown in, and that
    does not carry over to the (shape, colour) pairs it never saw (UNSEEN_PAIRS).
    Shown each shape in colours moved around by the gains, it learns the shape
    apart from the colour.
    """
    images = np.asarray(images)
    coverage = np.asarray(coverage)
    colour = np.asarray(colour, dtype=np.int64).ravel()
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"colour_jitter: images must be (N, S, S, 3), got shape {images.shape}")
    if coverage.shape != images.shape[:3]:
        raise ValueError(f"colour_jitter: coverage must be {images.shape[:3]}, got {coverage.shape}")
    if colour.shape != images.shape[:1] or (colour.size and (colour.min() < 0
                                                             or colour.max() >= len(COLOURS))):
        raise ValueError(f"colour_jitter: colour must be {len(images)} indices in "
                         f"[0, {len(COLOURS)}), got {colour.tolist()[:8]}")
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"colour_jitter: amount must be in [0, 1), got {amount!r}")
    gains = rng.uniform(1.0 - amount, 1.0 + amount, (len(images), 3))              # (N, 3)
    weight = coverage.astype(np.float64) ** 8                                        # (N, S, S) ~ covered
    ink = (np.einsum("nij,nijc->nc", weight, images)
           / np.maximum(weight.sum(axis=(1, 2)), 1e-12)[:, None])                    # (N, 3)
    wrong = np.zeros(len(images), dtype=bool)                                       # (N,)
    for _ in range(max_draws):
        moved = np.minimum(ink * gains, 1.0)                                        # (N, 3)
        named = ((moved[:, None, :] - COLOUR_RGB[None]) ** 2).sum(-1).argmin(1)    # (N,)
        wrong = named != colour
        if not wrong.any():
            break
        gains[wrong] = rng.uniform(1.0 - amount, 1.0 + amount, (int(wrong.sum()), 3))
    else:
        gains[wrong] = 1.0
    out = images * gains[:, None, None, :].astype(np.float32)                      # (N, S, S, 3)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def _check_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 12:
        raise ValueError(f"image size must be an integer >= 12 (16, 24 or 32 are usual), "
                         f"got {image_size!r}")
    return int(image_size)


def make_shapes(n, split="train", seed=0, size=16, templates=None):
    """Generate ``n`` captioned images of one split, deterministically.

    split: "train", "test" (same (shape, colour) pairs, new draws) or
        "unseen" (only UNSEEN_PAIRS). Each split draws from its own random
        stream, so train and test never share an image.
    size: image side in pixels (16 by default; 24 or 32 for more detail).
    templates: caption templates to draw from (default TRAIN_TEMPLATES; pass
        HELDOUT_TEMPLATES to test new wording).

    Returns a dict:
        images    (N, S, S, 3) float32 in [0, 1]
        captions  list of N strings
        shape, colour, size, position, template   (N,) int indices into
                  SHAPES, COLOURS, SIZES, POSITIONS and the templates
        coverage  (N, S, S) float32, the shape's ink in each pixel
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"make_shapes: n must be a non-negative integer, got {n!r}")
    if split not in SPLITS:
        raise ValueError(f"make_shapes: split must be one of {SPLITS}, got {split!r}")
    S = _check_size(size)
    templates = tuple(TRAIN_TEMPLATES if templates is None else templates)
    if not templates or not all(isinstance(t, str) for t in templates):
        raise ValueError("make_shapes: templates must be a non-empty sequence of strings")
    rng = np.random.default_rng([int(seed), SPLITS.index(split), S])

    pairs = rng.choice(_UNSEEN if split == "unseen" else _SEEN, size=n)             # (N,)
    shape, colour = pairs // len(COLOURS), pairs % len(COLOURS)
    size_ = rng.integers(0, len(SIZES), n)                                          # (N,)
    position = rng.integers(0, len(POSITIONS), n)                                   # (N,)
    template = rng.integers(0, len(templates), n)                                   # (N,)
    images, coverage = render(shape, colour, size_, position, S, rng)
    captions = [caption(s, c, z, p, templates[t])
                for s, c, z, p, t in zip(shape, colour, size_, position, template)]
    return {"images": images, "captions": captions, "shape": shape, "colour": colour,
            "size": size_, "position": position, "template": template, "coverage": coverage}


class ShapesDataset:
    """``make_shapes`` as an object: ``len(ds)``, ``ds[i] -> (image, caption)``,
    and the arrays as attributes (``ds.images``, ``ds.captions``, ``ds.shape``, ...)."""

    def __init__(self, n, split="train", seed=0, size=16, templates=None):
        data = make_shapes(n, split=split, seed=seed, size=size, templates=templates)
        self.split, self.seed, self.image_size = split, seed, size
        self.images = data["images"]
        self.captions = data["captions"]
        self.shape, self.colour = data["shape"], data["colour"]
        self.size, self.position = data["size"], data["position"]
        self.template, self.coverage = data["template"], data["coverage"]

    def __len__(self):
        return len(self.captions)

    def __getitem__(self, i):
        return self.images[i], self.captions[i]

    def __repr__(self):
        return (f"ShapesDataset({len(self)} images, split={self.split!r}, "
                f"{self.image_size}x{self.image_size})")
