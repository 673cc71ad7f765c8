"""What a CLIP brings to the shared loop (``npfm.train``): its batches (images
with captions), its loss (the symmetric contrastive loss of the batch), a
step hook (clamp the logit scale at ln 100) and its metrics: the held-out
loss and zero-shot accuracies.

Two data sets, neither downloaded:

    shapes   coloured shapes drawn on the spot (``npfm.data.shapes``); a fresh
             batch every step, its colours jittered by gains per channel that
             keep each colour's name (``colour_jitter``), so that the image tower
             learns shapes apart from colours. Zero-shot: name the shape, name
             the colour, on held-out images and on (shape, colour) pairs never
             seen in training.
    digits   scikit-learn's 1,797 handwritten digits (``npfm.data.digits``),
             1,438 to train and 359 held out. Zero-shot: name the digit.
             143 of the 1,438 (a tenth) are held back from training: with
             the VALIDATION templates they pick the run's best step (best.npz).
             Training captions come from many templates, each word other than
             the digit's name dropped to [UNK] with probability 0.4, so that
             new wording (read as [UNK]s) does not move a caption's embedding.

Zero-shot prompts use templates that were never used in training (the data
sets' HELDOUT_TEMPLATES), with every other slot filled in every possible
way, e.g. for the shape "circle": "a picture of one small red circle",
"a picture of one large blue circle", ...; the class vector is the
renormalised mean of those prompts' text embeddings (template ensembling).
"""

import itertools
import os
import string

import numpy as np

from ..checkpoint import load_checkpoint, save_checkpoint
from ..models.clip import CLIP, CLIPConfig, zero_shot_accuracy, zero_shot_classifier
from ..tokenizers.words import WordTokenizer

BEST_NAME = "best.npz"                  # the step chosen on the VALIDATION templates (digits)
SELECTION_METRIC = "selection_digit_acc"


def _template_fields(template):
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class ShapesData:
    """Shapes for CLIP: fresh training batches, fixed held-out sets, zero-shot tasks."""

    name = "shapes"
    channels = 3

    jitter = 0.3                        # training images' gains: 1 -+ jitter per channel

    def __init__(self, image_size=16, n_eval=512, n_zero_shot=500, seed=0):
        from ..data import shapes
        self.shapes, self.image_size = shapes, image_size
        self.seed = seed
        self.n_eval, self.n_zero_shot = n_eval, n_zero_shot

    def vocabulary_captions(self):
        """Training captions to build the word vocabulary from (every word occurs)."""
        return self.shapes.make_shapes(2000, "train", seed=self.seed, size=self.image_size)["captions"]

    def train_batch(self, rng, batch_size):
        """A fresh batch of the training split, drawn from ``rng``, its colours jittered
        (``colour_jitter``, gains of 1 -+ jitter that keep each colour's name) so that the
        image tower learns shapes apart from colours: the never-seen pairs then come out right."""
        d = self.shapes.make_shapes(batch_size, "train", seed=int(rng.integers(2**31)),
                                    size=self.image_size)
        images = self.shapes.colour_jitter(d["images"], d["coverage"], d["colour"], rng, self.jitter)
        return images, d["captions"]

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

    p_unknown = 0.4                     # word dropout of the training captions (noisy_caption)

    def __init__(self, seed=0, **_):
        from ..data import digits
        self.digits = digits
        try:
            train_set = digits.load_digits_dataset("train", seed=0, channels=1)
            self.test_set = digits.load_digits_dataset("test", seed=0, channels=1)
        except digits.DigitsUnavailableError as err:
            raise RuntimeError(f"--data digits: {err}") from None
        # a tenth of the training images is held back for choices (never trained on):
        # with the VALIDATION templates they pick a run's best step; the test images
        # and the TEST templates choose nothing
        is_val = digits.stratified_split(train_set["labels"], 0.1, seed=1)          # (N,)
        self.train_set = {k: v[~is_val] for k, v in train_set.items() if k != "captions"}
        self.val_set = {k: v[is_val] for k, v in train_set.items() if k != "captions"}
        self.seed = seed

    def vocabulary_captions(self):
        return [self.digits.caption(label, t) for label in range(10)
                for t in self.digits.CLIP_TRAIN_TEMPLATES]

    def train_batch(self, rng, batch_size):
        """Random training images, each with a caption from a random training template,
        its words other than the digit's name dropped to [UNK] with probability p_unknown."""
        g = self.digits
        idx = rng.integers(0, len(self.train_set["labels"]), batch_size)           # (B,)
        templates = rng.integers(0, len(g.CLIP_TRAIN_TEMPLATES), batch_size)       # (B,)
        labels = self.train_set["labels"][idx]
        captions = [g.noisy_caption(y, g.CLIP_TRAIN_TEMPLATES[t], rng, self.p_unknown)
                    for y, t in zip(labels, templates)]
        return self.train_set["images"][idx], captions

    def held_out(self, split="test", n=None, seed=None):
        d = self.test_set
        return d["images"], d["captions"], d["labels"], d

    def class_prompts(self, attribute="digit", templates=None):
        """Prompts per digit: each template with the digit's word and its numeral."""
        g = self.digits
        templates = g.TEST_TEMPLATES if templates is None else templates
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

    def validation_tasks(self):
        """Zero-shot tasks on the held-back images, one per VALIDATION template (each alone,
        as the test template is used): their mean accuracy chooses a run's best step."""
        d = self.val_set
        return [(f"selection_{i}_digit_acc", self.class_prompts("digit", [t]), d["images"], d["labels"])
                for i, t in enumerate(self.digits.VALIDATION_TEMPLATES)]

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
        if hasattr(data, "validation_tasks"):
            self._tasks += data.validation_tasks()
        self.step = 0                    # optimizer steps taken (train_command sets it on --resume)
        self.best = None                 # (score, step, state) of the best selection score so far

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
        self.step += 1

    def evaluate(self):
        losses = [float(self.model.forward(images, ids)) for images, ids in self.eval_set]
        out = {"val_loss": float(np.mean(losses))}
        for name, prompts, images, labels in self._tasks:
            classifier = zero_shot_classifier(self.model, self.tokenizer, prompts)
            out[f"val_{name}"] = zero_shot_accuracy(self.model, classifier, images, labels)
        out["temperature"] = self.model.temperature
        singles = [v for k, v in out.items() if k.startswith("val_selection_")]
        if singles:
            out[f"val_{SELECTION_METRIC}"] = float(np.mean(singles))
        score = out.get(f"val_{SELECTION_METRIC}")
        if score is not None and (self.best is None or score > self.best[0]):
            self.best = (score, self.step, self.model.state_dict())
        return out


DATA_OVERRIDES = {                      # what a data set fixes in the architecture
    "shapes": dict(image_size=16, patch=4, channels=3),
    "digits": dict(image_size=8, patch=2, channels=1),
}


def write_best_checkpoint(task, path, keep_better=False):
    """Save the weights of the task's best selection score at ``path``; with keep_better
    (a --resume), a best.npz there from before the resume that scored higher stays.
    Returns the selection record kept: {"metric", "value", "step"}."""
    score, step, state = task.best
    if keep_better and os.path.exists(path):
        earlier = load_checkpoint(path, kind="clip").extra.get("selected", {})
        if earlier.get("value", -1.0) >= score:
            return earlier
    selected = {"metric": SELECTION_METRIC, "value": score, "step": step}
    save_checkpoint(path, kind=task.kind, config=task.config_dict(), model_state=state, step=step,
                    extra={**task.extra(), "selected": selected})
    return selected


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
