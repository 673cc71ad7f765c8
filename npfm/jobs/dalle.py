"""The text-to-image jobs: ``npfm train dalle``, ``npfm draw`` and ``npfm dalle-eval``.

What a text-to-image model brings to the shared loop (``npfm.train``):

    data     a fixed training set of images (shapes drawn on the spot, or
             scikit-learn's digits), encoded ONCE into code grids by a k-means
             VQ codebook fitted before training (stored in the checkpoint's
             ``extra`` with the word vocabulary). Each step draws a batch of
             images and gives each a caption from a random training template,
             so an image is seen with several wordings.
    loss     1/8 text + 7/8 image cross-entropy over [BOS] text [SEP] codes
             (``npfm.models.dalle``).
    metrics  the held-out losses, and how often images generated for held-out
             captions show the requested attributes, by the judge below.

The judge. Generated images are scored by a classifier the generator never
saw: a small network (Linear, ReLU, Linear, trained with AdamW on the
cross-entropy) on two small feature sets computed from the pixels,

    shape    the shape's ink (brightness above the background), moved so that
             its centre of mass sits at the centre of the image: a linear
             model on it does not care where the shape was drawn
    colour   the mean colour of the ink, and that colour divided by its
             largest channel (brightness removed)
    digit    the pixels themselves (digits are already centred)

fitted on real training images and on their VQ reconstructions (so that the
blocky look of any decoded image is not mistaken for a different class). Its
own accuracy on real held-out images, and on their reconstructions (the best
a generator could score), is reported beside every number it produces.

Sampling draws each code at temperature 0.8 by default (``TEMPERATURE``).
CLIP reranking (``--clip``): each output image is the best of ``--candidates``
samples by the cosine similarity that a trained CLIP (``npfm train clip``)
gives to the image and the caption.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from .. import argtypes
from ..checkpoint import load_checkpoint
from ..core import Module
from ..layers.activations import ReLU
from ..layers.linear import Linear
from ..losses import cross_entropy_backward, cross_entropy_forward
from ..models.dalle import (DALLE, DALLEConfig, PRESETS, TextImageLoss, check_codebook,
                            encode_captions, generate_codes, make_stream, preset)
from ..optim import AdamW
from ..tokenizers.vq import VQTokenizer
from ..tokenizers.words import SPECIALS, WordTokenizer
from ..runfolder import check_output_file, check_run_folder
from ..train import TrainConfig, train

DEFAULT_OUT = os.path.join("runs", "dalle")
SAMPLES_NAME = "samples.png"
# Sampling a little sharper than the model's distribution: on the default run,
# 0.8 shows the requested attributes ~1.5% more often than 1.0 (92% vs 90.5%)
# and the drawings still differ from each other and from the training images.
TEMPERATURE = 0.8


# ----- the data sets ----------------------------------------------------------------

class ShapesImages:
    """Shapes for text-to-image: a fixed training set; captions re-drawn each step."""

    name = "shapes"
    attributes = ("shape", "colour")

    def __init__(self, n_train=20000, image_size=16, seed=0):
        from ..data import shapes
        self.shapes, self.image_size, self.seed, self.channels = shapes, image_size, seed, 3
        self.class_names = {"shape": shapes.SHAPES, "colour": shapes.COLOURS}
        self.templates = shapes.TRAIN_TEMPLATES
        self.train = shapes.make_shapes(n_train, "train", seed=seed, size=image_size)
        self.train["labels"] = {a: self.train[a] for a in self.attributes}

    def captions(self, data, rows, templates):
        """Captions of images ``rows`` of ``data``, with the given template indices."""
        s = self.shapes
        return [s.caption(data["shape"][i], data["colour"][i], data["size"][i],
                          data["position"][i], self.templates[t]) for i, t in zip(rows, templates)]

    def vocabulary_captions(self):
        """Captions in which every word of every training template occurs."""
        s = self.shapes
        return [s.caption(shape, colour, size, where, t) for t in self.templates
                for shape in s.SHAPES for colour in s.COLOURS for size in s.SIZES
                for where in s.POSITIONS]

    def held_out(self, split="test", n=512, seed=None):
        """A held-out set: images, captions (training templates) and labels.
        split "unseen" holds only the (shape, colour) pairs never in training."""
        seed = self.seed + 1 if seed is None else seed
        d = self.shapes.make_shapes(n, split, seed=seed, size=self.image_size)
        return {"images": d["images"], "captions": d["captions"],
                "labels": {a: d[a] for a in self.attributes}}

    def splits(self):
        return ("test", "unseen")

    def describe(self):
        return {"name": self.name, "image_size": self.image_size, "n_train": len(self.train["images"]),
                "seed": self.seed}


class DigitsImages:
    """scikit-learn's digits (8 x 8, gray) for text-to-image: 1,437 training images."""

    name = "digits"
    attributes = ("digit",)

    def __init__(self, seed=0, **_):
        from ..data import digits
        self.digits, self.image_size, self.seed, self.channels = digits, 8, seed, 1
        self.class_names = {"digit": tuple(str(d) for d in range(10))}
        self.templates = digits.TRAIN_TEMPLATES
        try:
            self.train = digits.load_digits_dataset("train", seed=0, channels=1)
            self._test = digits.load_digits_dataset("test", seed=0, channels=1)
        except digits.DigitsUnavailableError as err:
            raise RuntimeError(f"--data digits: {err}") from None
        self.train["labels"] = {"digit": self.train["labels"]}

    def captions(self, data, rows, templates):
        labels = data["labels"]["digit"] if isinstance(data["labels"], dict) else data["labels"]
        return [self.digits.caption(labels[i], self.templates[t]) for i, t in zip(rows, templates)]

    def vocabulary_captions(self):
        return [self.digits.caption(d, t) for t in self.templates for d in range(10)]

    def held_out(self, split="test", n=None, seed=None):
        d = self._test
        return {"images": d["images"], "captions": d["captions"], "labels": {"digit": d["labels"]}}

    def splits(self):
        return ("test",)

    def describe(self):
        return {"name": self.name, "image_size": self.image_size, "n_train": len(self.train["images"]),
                "seed": self.seed}


DATASETS = {"shapes": ShapesImages, "digits": DigitsImages}


def make_data(name, n_train=20000, seed=0):
    if name not in DATASETS:
        raise ValueError(f"unknown text-to-image data {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name](n_train=n_train, seed=seed)


# ----- the judge: a classifier the generator never saw --------------------------------

def ink_features(images):
    """(shape features (N, S*S), colour features (N, 6)) of images (N, S, S, ch).

    ink = brightness above the image's median (the background), scaled to
    [0, 1]; the shape features are the ink rolled so that its centre of mass
    is at the image centre; the colour features are the ink-weighted mean
    colour and that colour over its largest channel.
    """
    x = np.asarray(images, dtype=np.float32)
    N, S = x.shape[0], x.shape[1]
    grey = x.max(axis=-1)                                              # (N, S, S)
    background = np.median(grey.reshape(N, -1), axis=1)[:, None, None]  # (N, 1, 1)
    ink = np.clip((grey - background) / 0.5, 0.0, 1.0)                 # (N, S, S)
    total = ink.sum(axis=(1, 2)) + 1e-6                                # (N,)
    centre_y = (ink.sum(axis=2) * np.arange(S)).sum(axis=1) / total    # (N,)
    centre_x = (ink.sum(axis=1) * np.arange(S)).sum(axis=1) / total    # (N,)
    shift_y = np.round((S - 1) / 2 - centre_y).astype(np.int64)        # (N,)
    shift_x = np.round((S - 1) / 2 - centre_x).astype(np.int64)        # (N,)
    rows = (np.arange(S)[None, :] - shift_y[:, None]) % S              # (N, S)
    cols = (np.arange(S)[None, :] - shift_x[:, None]) % S              # (N, S)
    centred = ink[np.arange(N)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (N, S, S)
    weight = ink[..., None]                                            # (N, S, S, 1)
    rgb = (x * weight).sum(axis=(1, 2)) / (weight.sum(axis=(1, 2)) + 1e-6)   # (N, ch)
    chroma = rgb / (rgb.max(axis=1, keepdims=True) + 1e-6)             # (N, ch)
    return centred.reshape(N, S * S), np.concatenate([rgb, chroma], axis=1)


def judge_features(images, attributes):
    """{attribute: features (N, F)}: ink_features for shapes, the pixels for digits."""
    out = {}
    if "shape" in attributes or "colour" in attributes:
        out["shape"], out["colour"] = ink_features(images)
    if "digit" in attributes:
        out["digit"] = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    return out


class PixelClassifier(Module):
    """p(class | x) = softmax(relu(z @ W1 + b1) @ W2 + b2), z = (x - mean) / std:
    a one-hidden-layer network, trained by AdamW on the cross-entropy of
    mini-batches (Linear, ReLU and cross_entropy are npfm's own pairs)."""

    def __init__(self, X, y, n_classes, hidden=128, steps=300, batch_size=512, lr=3e-3, seed=0):
        X = np.asarray(X, dtype=np.float32)
        rng = np.random.default_rng(seed)
        self.mean, self.std = X.mean(axis=0), X.std(axis=0) + 1e-3        # (F,)
        self.fc1 = Linear(X.shape[1], hidden, std=math.sqrt(1.0 / X.shape[1]), rng=rng)
        self.act = ReLU()
        self.fc2 = Linear(hidden, n_classes, std=0.01, rng=rng)
        optimizer = AdamW(self.parameters(), lr=lr, weight_decay=0.0)
        Z = (X - self.mean) / self.std                                    # (N, F)
        for _ in range(steps):
            rows = rng.integers(0, len(Z), batch_size)                    # (B,)
            self.zero_grad()
            _, cache = cross_entropy_forward(self.forward(Z[rows]), y[rows])
            self.backward(cross_entropy_backward(1.0, cache))
            optimizer.step()

    def forward(self, z):
        return self.fc2(self.act(self.fc1(z)))                            # (B, classes)

    def backward(self, dlogits):
        return self.fc1.backward(self.act.backward(self.fc2.backward(dlogits)))

    def predict(self, X):
        return self.forward((np.asarray(X, dtype=np.float32) - self.mean) / self.std).argmax(axis=1)


class Judge:
    """One PixelClassifier per attribute of the data ("shape" and "colour", or "digit")."""

    def __init__(self, data, vq, n=6000, steps=300, seed=0):
        rng = np.random.default_rng(seed)
        rows = rng.permutation(len(data.train["images"]))[:n]
        real = data.train["images"][rows]
        images = np.concatenate([real, vq.decode(vq.encode(real))])       # real + reconstructed
        self.attributes, self.class_names = data.attributes, data.class_names
        features = judge_features(images, self.attributes)
        self.models = {}
        for a in self.attributes:
            labels = np.concatenate([data.train["labels"][a][rows]] * 2)
            self.models[a] = PixelClassifier(features[a], labels, len(self.class_names[a]),
                                             steps=steps, seed=seed)

    def predict(self, images):
        """{attribute: predicted class ids (N,)}."""
        features = judge_features(images, self.attributes)
        return {a: m.predict(features[a]) for a, m in self.models.items()}

    def match(self, images, labels, predicted=None):
        """(N,) bool: every attribute of the image judged as requested."""
        predicted = self.predict(images) if predicted is None else predicted
        ok = np.ones(len(images), dtype=bool)
        for a in self.attributes:
            ok &= predicted[a] == np.asarray(labels[a])
        return ok

    def accuracy(self, images, labels):
        """{attribute: accuracy, "all": every attribute right} on labelled images."""
        predicted = self.predict(images)
        out = {a: float((predicted[a] == labels[a]).mean()) for a in self.attributes}
        out["all"] = float(self.match(images, labels, predicted).mean())
        return out

    def describe(self, images):
        """A short label per image: the judged attributes, e.g. "red circle"."""
        predicted = self.predict(images)
        order = [a for a in ("colour", "shape", "digit") if a in predicted]
        return [" ".join(self.class_names[a][predicted[a][i]] for a in order) for i in range(len(images))]


# ----- CLIP reranking -------------------------------------------------------------

class ClipReranker:
    """Scores (image, caption) pairs by a trained CLIP's cosine similarity."""

    def __init__(self, path, config: DALLEConfig):
        from .clip import load_model
        self.model, self.tokenizer, _ = load_model(path)
        cc = self.model.config
        if (cc.image_size, cc.channels) != (config.image_size, config.channels):
            raise ValueError(f"--clip: that CLIP reads {cc.image_size}x{cc.image_size}x{cc.channels} "
                             f"images, this generator draws {config.image_size}x{config.image_size}"
                             f"x{config.channels}; train a CLIP on the same data")
        self.path = path

    def scores(self, images, captions):
        """(N,) cosine similarity of image i and caption i."""
        image_emb = self.model.encode_images(images)                            # (N, E)
        text_emb = self.model.encode_texts(
            self.tokenizer.encode_batch(list(captions), self.model.config.context))   # (N, E)
        return (image_emb * text_emb).sum(axis=1)


# ----- drawing ----------------------------------------------------------------------

def draw(model, words, vq, captions, samples=1, rng=None, temperature=TEMPERATURE, top_k=None,
         clip=None, candidates=8, batch_size=512):
    """Images for each caption: (len(captions) * samples, S, S, ch), caption-major,
    and their CLIP scores (or None).

    With ``clip`` each image is the best of ``candidates`` samples by CLIP.
    """
    if samples < 1:
        raise ValueError(f"the number of samples must be at least 1, got {samples}")
    if clip is not None and candidates < 1:
        raise ValueError(f"--candidates must be at least 1, got {candidates}")
    rng = np.random.default_rng() if rng is None else rng
    captions = [captions] if isinstance(captions, str) else list(captions)
    text_ids = encode_captions(words, captions, model.config)                  # (n, L)
    per = samples * (candidates if clip is not None else 1)
    wanted = np.repeat(text_ids, per, axis=0)                                  # (n * per, L)
    codes = np.concatenate([generate_codes(model, wanted[i:i + batch_size], rng, temperature, top_k)
                            for i in range(0, len(wanted), batch_size)])       # (n * per, N)
    images = vq.decode(codes)                                                  # (n * per, S, S, ch)
    if clip is None:
        return images, None
    scores = clip.scores(images, np.repeat(captions, per)).reshape(-1, candidates)   # (n * samples, cand)
    best = scores.argmax(axis=1)                                               # (n * samples,)
    picked = np.arange(len(best)) * candidates + best
    return images[picked], scores[np.arange(len(best)), best]


# ----- the task for the training loop --------------------------------------------------

class DALLETask:
    """Text-to-image training on [BOS] caption [SEP] codes, for ``npfm.train.train``.

    unk_prob: each caption word is replaced by [UNK] with this probability, so
    the model has learned what to do with a word it does not know.
    """

    kind = "dalle"
    unit = "img"

    def __init__(self, model: DALLE, words, vq, data, batch_size=64, unk_prob=0.03, n_eval=256,
                 judge=None, n_judge=64, seed=0):
        check_codebook(model.config, vq)
        self.model, self.words, self.vq, self.data = model, words, vq, data
        self.batch_size, self.unk_prob = batch_size, unk_prob
        self.objective = TextImageLoss(model, pad_id=words.pad_id)
        self.codes = vq.encode(data.train["images"]).reshape(len(data.train["images"]), -1)  # (n, N)
        held = data.held_out("test")
        rows = np.arange(min(n_eval, len(held["images"])))
        eval_streams = make_stream(encode_captions(words, [held["captions"][i] for i in rows],
                                                   model.config),
                                   vq.encode(held["images"][rows]), model.config)
        self.eval_set = [eval_streams[i:i + batch_size] for i in range(0, len(rows), batch_size)]
        self.judge = judge
        self.judge_set = {"captions": held["captions"][:n_judge],
                          "labels": {a: v[:n_judge] for a, v in held["labels"].items()}}
        self.seed = seed

    def config_dict(self):
        return self.model.config.to_dict()

    def extra(self):
        return {"words": self.words.to_dict(), "vq": self.vq.to_dict(), "data": self.data.describe(),
                "batch_size": self.batch_size, "unk_prob": self.unk_prob}

    def train_batch(self, rng):
        B = self.batch_size
        rows = rng.integers(0, len(self.codes), B)                            # (B,)
        templates = rng.integers(0, len(self.data.templates), B)              # (B,)
        text_ids = self.words.encode_batch(self.data.captions(self.data.train, rows, templates),
                                           self.model.config.text_len).astype(np.int64)   # (B, L)
        is_word = text_ids >= len(SPECIALS)                                   # not [PAD] [EOT] [UNK]
        dropped = is_word & (rng.random(text_ids.shape) < self.unk_prob)
        text_ids[dropped] = self.words.unk_id
        return make_stream(text_ids, self.codes[rows], self.model.config)     # (B, L+2+N)

    def loss_and_backward(self, stream):
        loss = self.objective(stream)
        self.objective.backward(1.0)
        return loss, len(stream)

    def evaluate(self):
        totals = np.zeros(3)
        for stream in self.eval_set:
            loss = float(self.objective(stream))
            totals += np.array([loss, self.objective.text_loss, self.objective.image_loss]) * len(stream)
        val, text, image = totals / sum(len(s) for s in self.eval_set)
        out = {"val_loss": val, "val_text_loss": text, "val_image_loss": image}
        if self.judge is not None:
            images, _ = draw(self.model, self.words, self.vq, self.judge_set["captions"],
                             rng=np.random.default_rng(self.seed))
            out["val_match"] = float(self.judge.match(images, self.judge_set["labels"]).mean())
        return out


# ----- loading ------------------------------------------------------------------------------

def load_model(path, codebook=None):
    """(DALLE in eval mode, word tokenizer, VQ tokenizer, checkpoint) from ``npfm train dalle``.

    codebook: an optional VQTokenizer JSON file to use instead of the one in
    the checkpoint; it must match the model (same patch size, image size, codes).
    """
    ckpt = load_checkpoint(path, kind="dalle")
    config = DALLEConfig.from_dict(ckpt.config)
    model = DALLE(config)
    model.load_state_dict(ckpt.model_state)
    words = WordTokenizer.from_dict(ckpt.need("words"))
    vq = VQTokenizer.load(codebook) if codebook else VQTokenizer.from_dict(ckpt.need("vq"))
    check_codebook(config, vq)
    if words.vocab_size != config.text_vocab:
        raise ValueError(f"{path}: the word tokenizer has {words.vocab_size} words, the model "
                         f"{config.text_vocab}")
    return model.eval(), words, vq, ckpt


def data_of(ckpt, n_train=None):
    """The data set a checkpoint was trained on, rebuilt (it is deterministic)."""
    info = ckpt.need("data")
    return make_data(info["name"], n_train=n_train or info["n_train"], seed=info["seed"])


# ----- commands ----------------------------------------------------------------------

def add_commands(sub, train_models, finetune_models=None):
    p = train_models.add_parser("dalle", help="train a text-to-image transformer (DALL-E style)")
    p.add_argument("--data", default="shapes", choices=sorted(DATASETS),
                   help="shapes (drawn on the spot, default) or digits (needs scikit-learn)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--steps", type=argtypes.positive_int, default=None)
    p.add_argument("--batch-size", type=argtypes.positive_int, default=None)
    p.add_argument("--lr", type=argtypes.positive_float, default=None)
    p.add_argument("--n-train", type=argtypes.positive_int, default=20000, help="training images (shapes)")
    p.add_argument("--codes", type=argtypes.positive_int, default=128, help="codebook size K")
    p.add_argument("--patch", type=argtypes.positive_int, default=2, help="VQ patch size (pixels per side)")
    p.add_argument("--dim", type=argtypes.positive_int, default=None, help="override the preset's width")
    p.add_argument("--layers", type=argtypes.positive_int, default=None, help="override the preset's depth")
    p.add_argument("--dropout", type=argtypes.dropout_rate, default=None)
    p.add_argument("--eval-every", type=argtypes.positive_int, default=None)
    p.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT}-DATA)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (its checkpoint and metrics)")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.set_defaults(func=train_command)

    d = sub.add_parser("draw", help="draw images for a caption with a trained text-to-image model")
    d.add_argument("caption", help='e.g. "a large blue square in the bottom right"')
    d.add_argument("--checkpoint", required=True)
    d.add_argument("--samples", type=argtypes.positive_int, default=8, help="images to draw")
    d.add_argument("--out", default="grid.png", help="PNG path of the grid")
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    d.add_argument("--clip", default=None, help="a CLIP checkpoint: keep the best of --candidates")
    d.add_argument("--candidates", type=argtypes.positive_int, default=8, help="samples per image when reranking")
    d.add_argument("--temperature", type=argtypes.nonnegative_float, default=TEMPERATURE)
    d.add_argument("--top-k", type=argtypes.positive_int, default=None)
    d.add_argument("--codebook", default=None, help="a VQ codebook JSON to use instead of the checkpoint's")
    d.add_argument("--seed", type=argtypes.seed, default=None)
    d.set_defaults(func=draw_command)

    e = sub.add_parser("dalle-eval", help="judge a text-to-image checkpoint: attribute match, "
                                          "reranking, unseen pairs, distance to training images")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--clip", default=None, help="a CLIP checkpoint for best-of-N reranking")
    e.add_argument("--captions", type=argtypes.positive_int, default=300, help="held-out captions per split")
    e.add_argument("--samples", type=argtypes.positive_int, default=4, help="images per caption")
    e.add_argument("--candidates", type=argtypes.positive_int, default=8)
    e.add_argument("--temperature", type=argtypes.nonnegative_float, default=TEMPERATURE)
    e.add_argument("--top-k", type=argtypes.positive_int, default=None)
    e.add_argument("--out", default=None,
                   help="folder of eval.json and figures (default: the checkpoint's)")
    e.add_argument("--seed", type=argtypes.seed, default=0)
    e.set_defaults(func=eval_command)


# defaults of the main job: `npfm train dalle` ends within 15 minutes on 2 cores
JOB_DEFAULTS = {
    "shapes": dict(steps=5000, batch_size=32, lr=3e-3, eval_every=1000),
    # 1,437 images only: without dropout a longer run memorises them (59% of the
    # drawings were exact code copies after 3000 steps; 0% with these settings)
    "digits": dict(steps=1500, batch_size=32, lr=3e-3, eval_every=500, dropout=0.2),
}
DATA_OVERRIDES = {                      # what a data set fixes in the architecture
    "shapes": dict(image_size=16, channels=3),
    "digits": dict(image_size=8, channels=1),
}
FIGURE_CAPTIONS = {
    "shapes": ["a large blue square in the bottom right", "a small red circle in the top left",
               "a yellow triangle", "a large white cross in the center", "a green diamond on the left",
               "a small purple ring at the bottom", "a large green circle", "a cyan diamond"],
    "digits": [f"a handwritten {d}" for d in range(10)],
}


def train_command(args):
    defaults = JOB_DEFAULTS[args.data]
    out = args.out or f"{DEFAULT_OUT}-{args.data}"
    check_run_folder(out, args.resume, args.overwrite)
    steps = args.steps or defaults["steps"]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr or defaults["lr"]
    eval_every = args.eval_every or min(defaults["eval_every"], steps)
    t0 = time.perf_counter()
    data = make_data(args.data, n_train=args.n_train, seed=args.seed)
    if args.resume:
        ckpt = load_checkpoint(os.path.join(out, "checkpoint.npz"), kind="dalle")
        if ckpt.need("data") != data.describe():
            raise ValueError(f"--resume: the checkpoint in {out} was trained on {ckpt.need('data')}, "
                             f"this run asks for {data.describe()}")
        words = WordTokenizer.from_dict(ckpt.need("words"))
        vq = VQTokenizer.from_dict(ckpt.need("vq"))
        config = DALLEConfig.from_dict(ckpt.config)
    else:
        words = WordTokenizer.train(data.vocabulary_captions())
        print(f"fitting the image codebook: k-means, {args.codes} codes of "
              f"{args.patch}x{args.patch} patches ...", flush=True)
        vq = VQTokenizer.fit(data.train["images"], n_codes=args.codes, patch=args.patch, seed=args.seed)
        longest = max(len(_words(c)) for c in data.vocabulary_captions())
        overrides = dict(text_vocab=words.vocab_size, text_len=longest + 1, n_codes=args.codes,
                         patch=args.patch, **DATA_OVERRIDES[args.data])
        dropout = args.dropout if args.dropout is not None else defaults.get("dropout")
        for name, value in (("dim", args.dim), ("n_layers", args.layers), ("dropout", dropout)):
            if value is not None:
                overrides[name] = value
        config = preset(args.preset, **overrides)
    error = vq.reconstruction_error(data.train["images"][:2000])
    print(f"data: {args.data}, {len(data.train['images'])} training images; vocabulary "
          f"{words.vocab_size} words")
    print(f"codebook: {vq}; reconstruction MSE {error['mse']:.4f} (PSNR {error['psnr']:.1f} dB)")
    model = DALLE(config, seed=args.seed)
    print(f"model: {config.n_layers} layers, width {config.dim}, {config.n_heads} heads; stream "
          f"[BOS] + {config.text_len} text + [SEP] + {config.n_image_tokens} codes; joint vocabulary "
          f"{config.vocab_size}; {model.num_parameters():,} parameters")
    judge = Judge(data, vq, seed=args.seed)
    task = DALLETask(model, words, vq, data, batch_size=batch_size, judge=judge, seed=args.seed)
    cfg = TrainConfig(steps=steps, lr=lr, min_lr=lr / 10, warmup=min(100, steps // 10),
                      weight_decay=0.1, eval_every=eval_every, checkpoint_every=eval_every,
                      log_every=min(10, steps), seed=args.seed)
    result = train(task, cfg, out, resume=args.resume, overwrite=args.overwrite)
    ev = result.last_eval
    print("\nheld-out: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items()))
    path = write_samples(model, words, vq, FIGURE_CAPTIONS[args.data], os.path.join(out, SAMPLES_NAME),
                         seed=args.seed)
    print(f"checkpoint, metrics.jsonl, loss.png and {os.path.basename(path)} in {out} "
          f"({time.perf_counter() - t0:.0f} s in all)")
    return 0


def write_samples(model, words, vq, captions, path, samples=4, seed=0):
    """A grid: one row per caption, ``samples`` images each, labelled with the caption."""
    from ..plot import image_grid
    images, _ = draw(model, words, vq, captions, samples, rng=np.random.default_rng(seed))
    labels = [c if j == 0 else "" for c in captions for j in range(samples)]
    image_grid(images, path, nrow=samples, labels=labels, scale=6)
    return path


def draw_command(args):
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    if args.candidates < 1:
        raise ValueError(f"--candidates must be at least 1, got {args.candidates}")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0 (0 = the most likely code), got {args.temperature}")
    check_output_file(args.out, args.overwrite)
    model, words, vq, _ = load_model(args.checkpoint, codebook=args.codebook)
    text_ids = encode_captions(words, args.caption, model.config)[0]
    unknown = [w for w in _words(args.caption) if w not in words.ids]
    if unknown:
        print(f"note: not in the vocabulary, read as [UNK]: {', '.join(unknown)}")
    if len(_words(args.caption)) > model.config.text_len - 1:
        print(f"note: the caption has more than {model.config.text_len - 1} words; "
              f"the model reads \"{words.decode(text_ids)}\"")
    clip = ClipReranker(args.clip, model.config) if args.clip else None
    rng = np.random.default_rng(args.seed)
    images, scores = draw(model, words, vq, [args.caption], args.samples, rng, args.temperature,
                          args.top_k, clip, args.candidates)
    labels = None
    if scores is not None:
        order = np.argsort(-scores, kind="stable")
        images, scores = images[order], scores[order]
        labels = [f"clip {s:.2f}" for s in scores]
    from ..plot import image_grid
    image_grid(images, args.out, nrow=min(args.samples, 8), labels=labels, scale=6)
    how = f", each the best of {args.candidates} by CLIP" if clip else ""
    print(f'wrote {args.out}: {args.samples} images for "{args.caption}"{how}')
    return 0


def _words(text):
    from ..tokenizers.words import split_words
    return split_words(text)


# ----- evaluation -------------------------------------------------------------------------

def rms_distances(a, b, chunk=1024):
    """(len(a),) distance from each image of a to its nearest image of b:
    sqrt(mean over pixels of the squared difference), i.e. RMS per value."""
    A = a.reshape(len(a), -1).astype(np.float64)                         # (n, P)
    Bm = b.reshape(len(b), -1).astype(np.float64)                        # (m, P)
    b2 = (Bm * Bm).sum(axis=1)                                           # (m,)
    out = np.empty(len(A))
    for i in range(0, len(A), chunk):
        block = A[i:i + chunk]
        d2 = (block * block).sum(axis=1)[:, None] - 2.0 * block @ Bm.T + b2[None, :]   # (chunk, m)
        out[i:i + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0) / A.shape[1])
    return out


def same_class_distances(images, keys, rng, n_pairs=2000):
    """RMS distance between random pairs of images with the same key (e.g. all attributes):
    a random image i, then a random image j among those that share its key."""
    keys = np.asarray(keys)
    order = np.argsort(keys, kind="stable")                              # images grouped by key
    grouped = keys[order]
    i = rng.integers(0, len(keys), n_pairs)                              # (n_pairs,)
    first = np.searchsorted(grouped, keys[i], side="left")               # each group's extent
    last = np.searchsorted(grouped, keys[i], side="right")
    j = order[first + (rng.random(n_pairs) * (last - first)).astype(np.int64)]
    i, j = i[i != j], j[i != j]
    diff = images[i].reshape(len(i), -1).astype(np.float64) - images[j].reshape(len(j), -1)
    return np.sqrt((diff * diff).mean(axis=1))


def evaluate_generator(model, words, vq, data, judge, n_captions=200, samples=4, clip=None,
                       candidates=8, temperature=TEMPERATURE, top_k=None, seed=0, log=print):
    """Every number of ``npfm dalle-eval``, as a dict (see eval_command)."""
    report = {"judge": {}, "match": {}, "copies": {}}
    rng = np.random.default_rng(seed)
    # the judge's own accuracy, on real held-out images and on their reconstructions
    for split in data.splits():
        held = data.held_out(split, n=1000, seed=seed + 7)
        report["judge"][split] = {
            "real": judge.accuracy(held["images"], held["labels"]),
            "reconstructed": judge.accuracy(vq.decode(vq.encode(held["images"])), held["labels"])}
    generated = {}
    for split in data.splits():
        held = data.held_out(split, n=n_captions, seed=seed + 11)
        captions = held["captions"][:n_captions]
        labels = {a: np.repeat(v[:n_captions], samples) for a, v in held["labels"].items()}
        t0 = time.perf_counter()
        images, _ = draw(model, words, vq, captions, samples, rng, temperature, top_k)
        per_attribute = judge.predict(images)
        ok = judge.match(images, labels, per_attribute)
        report["match"][split] = {"rate": float(ok.mean()), "images": len(images),
                                  "seconds": time.perf_counter() - t0}
        for a in judge.attributes:
            report["match"][split][a] = float((per_attribute[a] == labels[a]).mean())
        generated[split] = (images, captions, labels)
        log(f"  {split:<7} {len(images)} images: requested attributes in {ok.mean():.1%}")
        if clip is not None:
            picked, _ = draw(model, words, vq, captions, samples, rng, temperature, top_k,
                             clip, candidates)
            ok = judge.match(picked, labels)
            report["match"][split][f"clip_best_of_{candidates}"] = float(ok.mean())
            log(f"  {split:<7} best of {candidates} by CLIP: requested attributes in {ok.mean():.1%}")
    # copies: compared in decoded (VQ) pixel space, where a copied code grid is at distance 0
    train_images = data.train["images"]
    train_codes = vq.encode(train_images)
    train_recon = vq.decode(train_codes)
    images = generated[data.splits()[0]][0]
    gen_codes = vq.encode(images).reshape(len(images), -1)
    held = data.held_out(data.splits()[0], n=len(images), seed=seed + 13)
    real_recon = vq.decode(vq.encode(held["images"]))
    keys = _class_keys(data)
    pairs = same_class_distances(train_recon, keys, rng)
    gen_nn = rms_distances(images, train_recon)
    real_nn = rms_distances(real_recon, train_recon)
    train_set = {row.tobytes() for row in train_codes.reshape(len(train_codes), -1)}
    report["copies"] = {
        "generated_to_nearest_train": _summary(gen_nn),
        "real_held_out_to_nearest_train": _summary(real_nn),
        "same_class_train_pairs": _summary(pairs),
        "exact_code_copies": float(np.mean([row.tobytes() in train_set for row in gen_codes])),
        "class": "all attributes equal" if data.name == "shapes" else "same digit",
    }
    return report, generated


def _class_keys(data):
    t = data.train
    if data.name == "shapes":
        return ((t["shape"] * 8 + t["colour"]) * 2 + t["size"]) * 9 + t["position"]
    return t["labels"]["digit"]


def _summary(x):
    return {"median": float(np.median(x)), "p10": float(np.percentile(x, 10)),
            "min": float(np.min(x)), "mean": float(np.mean(x))}


def eval_command(args):
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    if args.captions < 1:
        raise ValueError(f"--captions must be at least 1, got {args.captions}")
    model, words, vq, ckpt = load_model(args.checkpoint)
    data = data_of(ckpt)
    out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
    os.makedirs(out, exist_ok=True)
    clip = ClipReranker(args.clip, model.config) if args.clip else None
    print(f"judge: a small network on pixel features, fitted on {data.name} training images "
          f"and their VQ reconstructions ...", flush=True)
    judge = Judge(data, vq, seed=args.seed)
    print(f"generating {args.samples} images for each of {args.captions} held-out captions per split "
          f"(temperature {args.temperature}{', top-k ' + str(args.top_k) if args.top_k else ''}):")
    report, generated = evaluate_generator(model, words, vq, data, judge, args.captions, args.samples,
                                           clip, args.candidates, args.temperature, args.top_k,
                                           args.seed)
    print("\nthe judge on real held-out images (and on their VQ reconstructions):")
    for split, acc in report["judge"].items():
        print(f"  {split:<7} " + ", ".join(f"{a} {acc['real'][a]:.1%} ({acc['reconstructed'][a]:.1%})"
                                           for a in acc["real"]))
    print("\ngenerated images showing the requested " + " and ".join(judge.attributes) + ":")
    for split, m in report["match"].items():
        extra = "".join(f", {k.replace('_', ' ')} {v:.1%}" for k, v in m.items() if k.startswith("clip"))
        what = "pairs never seen in training" if split == "unseen" else "held-out captions"
        print(f"  {split:<7} {m['rate']:.1%}{extra}   ({m['images']} images, {what})")
    c = report["copies"]
    median = {k.split("_to_")[0] if "_to_" in k else k: v["median"]
              for k, v in c.items() if isinstance(v, dict)}
    print("\nnot copies (RMS pixel distance, all images through the codebook), medians:")
    print(f"  generated image -> nearest training image      {median['generated']:.3f}"
          f" (10th percentile {c['generated_to_nearest_train']['p10']:.3f})")
    print(f"  real held-out image -> nearest training image  {median['real_held_out']:.3f}")
    print(f"  two training images of one class              {median['same_class_train_pairs']:.3f}"
          f" ({c['class']})")
    print(f"  generated code grids identical to a training image's: {c['exact_code_copies']:.1%}")
    report["settings"] = {k: getattr(args, k) for k in ("checkpoint", "clip", "captions", "samples",
                                                        "candidates", "temperature", "top_k", "seed")}
    with open(os.path.join(out, "eval.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    from ..plot import image_grid
    for split, (images, captions, _) in generated.items():
        k = min(8, len(captions))
        pick = np.arange(k * args.samples)
        labels = [captions[i // args.samples] if i % args.samples == 0 else "" for i in pick]
        image_grid(images[pick], os.path.join(out, f"eval_{split}.png"), nrow=args.samples,
                   labels=labels, scale=6)
    print(f"\nwrote eval.json and eval_*.png in {out}")
    return 0
