"""The CLIP jobs: ``npfm train clip``, ``npfm zeroshot`` and ``npfm image-search``.

What a CLIP brings to the shared loop (``npfm.train``): its batches (images
with captions), its loss (the symmetric contrastive loss of the batch), a
step hook (clamp the logit scale at ln 100) and its metrics: the held-out
loss and zero-shot accuracies.

Two data sets, neither downloaded:

    shapes   coloured shapes drawn on the spot (``npfm.data.shapes``); a fresh
             batch every step. Zero-shot: name the shape, name the colour, on
             held-out images and on (shape, colour) pairs never seen in training.
    digits   scikit-learn's 1,797 handwritten digits (``npfm.data.digits``),
             1,438 to train and 359 held out. Zero-shot: name the digit.

Zero-shot prompts use templates that were never used in training (the data
sets' HELDOUT_TEMPLATES), with every other slot filled in every possible
way, e.g. for the shape "circle": "a picture of one small red circle",
"a picture of one large blue circle", ...; the class vector is the
renormalised mean of those prompts' text embeddings (template ensembling).
"""

from __future__ import annotations

import itertools
import os
import string

import numpy as np

from .. import argtypes
from ..checkpoint import load_checkpoint
from ..models.clip import (CLIP, CLIPConfig, PRESETS, class_recall, preset, zero_shot_accuracy,
                           zero_shot_classifier)
from ..tokenizers.words import WordTokenizer
from ..runfolder import check_run_folder
from ..train import TrainConfig, train

DEFAULT_OUT = os.path.join("runs", "clip")
SIMILARITY_NAME = "similarity.png"


def _template_fields(template):
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# ----- the data sets --------------------------------------------------------------

class ShapesData:
    """Shapes for CLIP: fresh training batches, fixed held-out sets, zero-shot tasks."""

    name = "shapes"
    channels = 3

    def __init__(self, image_size=16, n_eval=512, n_zero_shot=500, seed=0):
        from ..data import shapes
        self.shapes, self.image_size = shapes, image_size
        self.seed = seed
        self.n_eval, self.n_zero_shot = n_eval, n_zero_shot

    def vocabulary_captions(self):
        """Training captions to build the word vocabulary from (every word occurs)."""
        return self.shapes.make_shapes(2000, "train", seed=self.seed, size=self.image_size)["captions"]

    def train_batch(self, rng, batch_size):
        """A fresh batch of the training split, drawn from ``rng``."""
        d = self.shapes.make_shapes(batch_size, "train", seed=int(rng.integers(2**31)),
                                    size=self.image_size)
        return d["images"], d["captions"]

    def held_out(self, split="test", n=None, seed=None):
        """(images, captions, class ids, data dict) of a held-out split; class = (shape, colour)."""
        d = self.shapes.make_shapes(n or self.n_eval, split, seed=self.seed + 1 if seed is None else seed,
                                    size=self.image_size)
        return d["images"], d["captions"], d["shape"] * len(self.shapes.COLOURS) + d["colour"], d

    def class_prompts(self, attribute, templates=None):
        """Prompts per class of ``attribute`` ("shape" or "colour"): each template
        filled with the class and every value of its other slots."""
        s = self.shapes
        templates = s.HELDOUT_TEMPLATES if templates is None else templates
        values = {"shape": s.SHAPES, "colour": s.COLOURS, "size": s.SIZES, "where": s.POSITIONS}
        prompts = []
        for cls in values[attribute]:
            mine = []
            for t in templates:
                if "{}" in t:                                   # a class-name template
                    mine.append(s.zero_shot_prompts([cls], t)[0])
                    continue
                others = sorted(_template_fields(t) - {attribute})
                for combo in itertools.product(*(values[f] for f in others)):
                    attrs = {"shape": s.SHAPES[0], "colour": s.COLOURS[0], "size": s.SIZES[0],
                             "where": s.POSITIONS[0], attribute: cls, **dict(zip(others, combo))}
                    mine.append(s.caption(attrs["shape"], attrs["colour"], attrs["size"],
                                          attrs["where"], t))
            prompts.append(mine)
        return prompts

    def zero_shot_tasks(self, n=None, templates=None):
        """[(metric name, class prompts, images, labels)]: shape and colour, held-out and unseen."""
        tasks = []
        for split, prefix in (("test", ""), ("unseen", "unseen_")):
            d = self.shapes.make_shapes(n or self.n_zero_shot, split, seed=self.seed + 2,
                                        size=self.image_size)
            for attribute in ("shape", "colour"):
                tasks.append((f"{prefix}{attribute}_acc", self.class_prompts(attribute, templates),
                              d["images"], d[attribute]))
        return tasks

    def search_pool(self, n=None):
        """Held-out images to search: the test split and the never-seen pairs (4:1)."""
        n = self.n_eval if n is None else n
        test = self.held_out("test", n - n // 5)
        if n // 5 == 0:                 # held_out(n=0) would mean its default size
            return test[:3]
        unseen = self.held_out("unseen", n // 5)
        return (np.concatenate([test[0], unseen[0]]), test[1] + unseen[1],
                np.concatenate([test[2], unseen[2]]))

    def figure_examples(self, k=8):
        """k held-out images of k different (shape, colour) classes, with their captions."""
        images, captions, classes, _ = self.held_out("test", 200)
        _, first = np.unique(classes, return_index=True)
        pick = np.sort(first)[:k]
        return images[pick], [captions[i] for i in pick]

    def describe(self):
        return {"name": self.name, "image_size": self.image_size}


class DigitsData:
    """scikit-learn's digits for CLIP: a fixed train / held-out split, captions re-drawn each step."""

    name = "digits"
    channels = 1
    image_size = 8

    def __init__(self, seed=0, **_):
        from ..data import digits
        self.digits = digits
        try:
            self.train_set = digits.load_digits_dataset("train", seed=0, channels=1)
            self.test_set = digits.load_digits_dataset("test", seed=0, channels=1)
        except digits.DigitsUnavailableError as err:
            raise RuntimeError(f"--data digits: {err}") from None
        self.seed = seed

    def vocabulary_captions(self):
        return [self.digits.caption(label, t) for label in range(10) for t in self.digits.TRAIN_TEMPLATES]

    def train_batch(self, rng, batch_size):
        """Random training images, each with a caption from a random training template."""
        idx = rng.integers(0, len(self.train_set["labels"]), batch_size)          # (B,)
        templates = rng.integers(0, len(self.digits.TRAIN_TEMPLATES), batch_size)  # (B,)
        labels = self.train_set["labels"][idx]
        captions = [self.digits.caption(y, self.digits.TRAIN_TEMPLATES[t]) for y, t in zip(labels, templates)]
        return self.train_set["images"][idx], captions

    def held_out(self, split="test", n=None, seed=None):
        d = self.test_set
        return d["images"], d["captions"], d["labels"], d

    def class_prompts(self, attribute="digit", templates=None):
        """Prompts per digit: each template with the digit's word and its numeral."""
        g = self.digits
        templates = g.HELDOUT_TEMPLATES if templates is None else templates
        prompts = []
        for label in range(10):
            mine = []
            for t in templates:
                if "{}" in t:
                    mine += [t.format(g.DIGIT_WORDS[label]), t.format(label)]
                else:
                    mine.append(g.caption(label, t))
            prompts.append(mine)
        return prompts

    def zero_shot_tasks(self, n=None, templates=None):
        d = self.test_set
        return [("digit_acc", self.class_prompts("digit", templates), d["images"], d["labels"])]

    def search_pool(self, n=None):
        images, captions, labels, _ = self.held_out()
        return images, captions, labels

    def figure_examples(self, k=10):
        images, captions, labels, _ = self.held_out()
        _, first = np.unique(labels, return_index=True)
        pick = first[:k]
        return images[pick], [captions[i] for i in pick]

    def describe(self):
        return {"name": self.name, "image_size": self.image_size}


DATASETS = {"shapes": ShapesData, "digits": DigitsData}


def make_data(name, image_size=16, seed=0):
    if name not in DATASETS:
        raise ValueError(f"unknown CLIP data {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name](image_size=image_size, seed=seed)


def zero_shot_report(model, tokenizer, data, n=None, templates=None):
    """{metric name: accuracy} of every zero-shot task of ``data``."""
    was_training = model.training
    model.eval()
    out = {}
    for name, prompts, images, labels in data.zero_shot_tasks(n, templates):
        classifier = zero_shot_classifier(model, tokenizer, prompts)
        out[name] = zero_shot_accuracy(model, classifier, images, labels)
    model.train(was_training)
    return out


# ----- the task for the training loop --------------------------------------------------

class CLIPTask:
    """Contrastive image-text training, for ``npfm.train.train``."""

    kind = "clip"
    unit = "img"

    def __init__(self, model: CLIP, tokenizer, data, batch_size=128):
        if batch_size < 2:
            raise ValueError(f"--batch-size must be at least 2 (the contrastive loss needs "
                             f"two pairs), got {batch_size}")
        self.model, self.tokenizer, self.data = model, tokenizer, data
        self.batch_size = batch_size
        images, captions, _, _ = data.held_out("test")
        n = (len(images) // batch_size) * batch_size or len(images)
        ids = tokenizer.encode_batch(captions, model.config.context)
        self.eval_set = [(images[i:i + batch_size], ids[i:i + batch_size])
                         for i in range(0, n, batch_size) if len(images[i:i + batch_size]) >= 2]
        self._tasks = data.zero_shot_tasks()

    def config_dict(self):
        return self.model.config.to_dict()

    def extra(self):
        return {"tokenizer": self.tokenizer.to_dict(), "data": self.data.describe(),
                "batch_size": self.batch_size}

    def train_batch(self, rng):
        images, captions = self.data.train_batch(rng, self.batch_size)
        return images, self.tokenizer.encode_batch(captions, self.model.config.context)

    def loss_and_backward(self, batch):
        images, ids = batch
        loss = self.model.forward(images, ids)
        self.model.backward(1.0)
        return loss, len(images)

    def after_step(self):
        self.model.clamp_logit_scale()

    def evaluate(self):
        losses = [float(self.model.forward(images, ids)) for images, ids in self.eval_set]
        out = {"val_loss": float(np.mean(losses))}
        for name, prompts, images, labels in self._tasks:
            classifier = zero_shot_classifier(self.model, self.tokenizer, prompts)
            out[f"val_{name}"] = zero_shot_accuracy(self.model, classifier, images, labels)
        out["temperature"] = self.model.temperature
        return out


# ----- commands ----------------------------------------------------------------------

def add_commands(sub, train_models, finetune_models=None):
    p = train_models.add_parser("clip", help="train a CLIP (image and text towers, contrastive)")
    p.add_argument("--data", default="shapes", choices=sorted(DATASETS),
                   help="shapes (drawn on the spot, default) or digits (needs scikit-learn)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--steps", type=argtypes.positive_int, default=None)
    p.add_argument("--batch-size", type=argtypes.positive_int, default=None)
    p.add_argument("--lr", type=argtypes.positive_float, default=None)
    p.add_argument("--eval-every", type=argtypes.positive_int, default=None)
    p.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT}-DATA)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (its checkpoint and metrics)")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.set_defaults(func=train_command)

    z = sub.add_parser("zeroshot", help="zero-shot classification with a trained CLIP")
    z.add_argument("--checkpoint", required=True)
    z.add_argument("--n", type=argtypes.positive_int, default=2000, help="held-out images per split (shapes)")
    z.set_defaults(func=zeroshot_command)

    s = sub.add_parser("image-search", help="rank held-out images for a text query (trained CLIP)")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--query", required=True, help='e.g. "a red circle"')
    s.add_argument("--k", type=argtypes.positive_int, default=8, help="how many images to show")
    s.add_argument("--n", type=argtypes.positive_int, default=500, help="held-out images to search (shapes)")
    s.add_argument("--out", default=None, help="PNG path (default: search.png next to the checkpoint)")
    s.add_argument("--image", type=argtypes.nonnegative_int, default=None,
                   help="also rank the distinct captions for held-out image number IMAGE")
    s.set_defaults(func=image_search_command)


# defaults of the main job: `npfm train clip` ends within 10 minutes on 2 cores
JOB_DEFAULTS = {
    "shapes": dict(steps=4000, batch_size=128, lr=2e-3, eval_every=500),
    "digits": dict(steps=2000, batch_size=128, lr=2e-3, eval_every=500),
}
DATA_OVERRIDES = {                      # what a data set fixes in the architecture
    "shapes": dict(image_size=16, patch=4, channels=3),
    "digits": dict(image_size=8, patch=2, channels=1),
}


def train_command(args):
    defaults = JOB_DEFAULTS[args.data]
    out = args.out or f"{DEFAULT_OUT}-{args.data}"
    check_run_folder(out, args.resume, args.overwrite)
    steps = args.steps or defaults["steps"]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr or defaults["lr"]
    eval_every = args.eval_every or min(defaults["eval_every"], steps)
    ckpt = None
    if args.resume:                      # a mismatch is named before any data is made
        ckpt = load_checkpoint(os.path.join(out, "checkpoint.npz"), kind="clip")
        if ckpt.need("data")["name"] != args.data:
            raise ValueError(f"--resume: the checkpoint in {out} was trained on "
                             f"{ckpt.need('data')['name']}, not {args.data}")
    data = make_data(args.data, seed=args.seed)
    if ckpt is not None:
        tokenizer = WordTokenizer.from_dict(ckpt.need("tokenizer"))
        config = CLIPConfig.from_dict(ckpt.config)
    else:
        tokenizer = WordTokenizer.train(data.vocabulary_captions())
        config = preset(args.preset, vocab_size=tokenizer.vocab_size, eot_id=tokenizer.eot_id,
                        **DATA_OVERRIDES[args.data])
    model = CLIP(config, seed=args.seed)
    print(f"data: {args.data}; vocabulary {tokenizer.vocab_size} words")
    print(f"model: CLIP, width {config.dim}, {config.image_layers} image + {config.text_layers} "
          f"text layers, {config.n_patches} patches of {config.patch}x{config.patch}, joint space "
          f"{config.embed_dim}; {model.num_parameters():,} parameters")
    task = CLIPTask(model, tokenizer, data, batch_size=batch_size)
    cfg = TrainConfig(steps=steps, lr=lr, min_lr=lr / 10, warmup=min(100, steps // 10),
                      weight_decay=0.1, eval_every=eval_every, checkpoint_every=eval_every,
                      log_every=min(10, steps), seed=args.seed)
    result = train(task, cfg, out, resume=args.resume, overwrite=args.overwrite)
    ev = result.last_eval
    print("\nheld-out: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items()))
    path = write_similarity_figure(model, tokenizer, data, os.path.join(out, SIMILARITY_NAME))
    print(f"checkpoint, metrics.jsonl, loss.png and {os.path.basename(path)} in {out}")
    return 0


def write_similarity_figure(model, tokenizer, data, path):
    """Held-out images of different classes against their captions: cosine similarities."""
    images, captions = data.figure_examples()
    model.eval()
    sim = model.encode_images(images) @ model.encode_texts(
        tokenizer.encode_batch(captions, model.config.context)).T                   # (k, k)
    from ..plot import similarity_figure
    similarity_figure(images, captions, sim, path)
    return path


def load_model(path):
    """(CLIP in eval mode, tokenizer, data) from a checkpoint written by ``npfm train clip``."""
    ckpt = load_checkpoint(path, kind="clip")
    model = CLIP(CLIPConfig.from_dict(ckpt.config))
    model.load_state_dict(ckpt.model_state)
    tokenizer = WordTokenizer.from_dict(ckpt.need("tokenizer"))
    info = ckpt.need("data")
    data = make_data(info["name"], image_size=info["image_size"])
    return model.eval(), tokenizer, data


def zeroshot_command(args):
    model, tokenizer, data = load_model(args.checkpoint)
    print(f"zero-shot classification on {data.name}: prompts from templates never used in "
          f"training, ensembled per class")
    rows = [("held-out templates", None)]
    if data.name == "shapes":
        rows.append(("class-name templates", data.shapes.ZERO_SHOT_TEMPLATES))
    for label, templates in rows:
        report = zero_shot_report(model, tokenizer, data, n=args.n, templates=templates)
        print(f"\n{label}: " + "; ".join(
            templates or (data.shapes.HELDOUT_TEMPLATES if data.name == "shapes"
                          else data.digits.HELDOUT_TEMPLATES)))
        for name, acc in report.items():
            print(f"  {name:<20} {acc:7.2%}")
    return 0


def image_search_command(args):
    if args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    if args.k > args.n:
        raise ValueError(f"--k {args.k} is more than --n {args.n}, the images searched: "
                         f"give --k <= --n")
    model, tokenizer, data = load_model(args.checkpoint)
    images, captions, classes = data.search_pool(args.n)
    if args.k > len(images):
        raise ValueError(f"--k {args.k} is more than the {len(images)} images searched "
                         f"(--n {args.n}): give --k <= --n")
    image_emb = model.encode_images(images)                                         # (N, E)
    query = model.encode_texts(tokenizer.encode_batch([args.query], model.config.context))[0]
    scores = image_emb @ query                                                      # (N,)
    unknown = [w for w in tokenizer.encode(args.query) if w == tokenizer.unk_id]
    if unknown:
        print(f"note: {len(unknown)} word(s) of the query are not in the vocabulary ([UNK])")
    order = np.argsort(-scores, kind="stable")[:args.k]
    print(f'query "{args.query}": the {args.k} best of {len(images)} held-out images')
    for rank, i in enumerate(order, 1):
        print(f"  #{rank}  {scores[i]:.3f}  {captions[i]}")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "search.png")
    from ..plot import search_figure
    search_figure(args.query, images[order], scores[order], out)
    print(f"wrote {out}")
    text_emb = model.encode_texts(tokenizer.encode_batch(captions, model.config.context))
    if args.image is not None:
        if not 0 <= args.image < len(images):
            raise ValueError(f"--image must be in [0, {len(images)}), got {args.image}")
        distinct = sorted(set(captions))
        first = [captions.index(c) for c in distinct]
        caption_scores = text_emb[first] @ image_emb[args.image]                  # (distinct,)
        print(f'image {args.image} (its caption: "{captions[args.image]}"): the best captions')
        for rank, j in enumerate(np.argsort(-caption_scores, kind="stable")[:5], 1):
            print(f"  #{rank}  {caption_scores[j]:.3f}  {distinct[j]}")
    recall = class_recall(image_emb @ text_emb.T, classes, classes)
    print("class-level recall on these images and their captions: "
          f"text->image R@1 {recall['t2i@1']:.2%}, R@5 {recall['t2i@5']:.2%}; "
          f"image->text R@1 {recall['i2t@1']:.2%}, R@5 {recall['i2t@5']:.2%}")
    return 0
