"""What a text-to-image model brings to the shared loop (``npfm.train``):

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

The judge of generated images lives in npfm.evaluation.dalle_judge.
"""

import numpy as np
from ..checkpoint import load_checkpoint
from ..models.dalle import (DALLE, DALLEConfig, TextImageLoss, check_codebook, encode_captions,
                            generate_codes, make_stream)
from ..tokenizers.vq import VQTokenizer
from ..tokenizers.words import SPECIALS, WordTokenizer

# Sampling a little sharper than the model's distribution: on the default run,
# 0.8 shows the requested attributes ~1.5% more often than 1.0 (92% vs 90.5%)
# and the drawings still differ from each other and from the training images.
TEMPERATURE = 0.8


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


DATA_OVERRIDES = {                      # what a data set fixes in the architecture
    "shapes": dict(image_size=16, channels=3),
    "digits": dict(image_size=8, channels=1),
}


def write_samples(model, words, vq, captions, path, samples=4, seed=0):
    """A grid: one row per caption, ``samples`` images each, labelled with the caption."""
    from ..plot import image_grid
    images, _ = draw(model, words, vq, captions, samples, rng=np.random.default_rng(seed))
    labels = [c if j == 0 else "" for c in captions for j in range(samples)]
    image_grid(images, path, nrow=samples, labels=labels, scale=6)
    return path


def _words(text):
    from ..tokenizers.words import split_words
    return split_words(text)
