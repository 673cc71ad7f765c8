"""How well a text-to-image model draws what it is asked (``npfm dalle-eval``).

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

import math
import time
import numpy as np
from ..core import Module
from ..nn.activations import ReLU
from ..nn.linear import Linear
from ..nn.cross_entropy import CrossEntropyLoss
from ..models.dalle import DALLEConfig
from ..optim import AdamW
from ..tasks.dalle import TEMPERATURE, draw

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
        loss = CrossEntropyLoss()
        for _ in range(steps):
            rows = rng.integers(0, len(Z), batch_size)                    # (B,)
            self.zero_grad()
            loss.forward(self.forward(Z[rows]), y[rows])
            self.backward(loss.backward())
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


class ClipReranker:
    """Scores (image, caption) pairs by a trained CLIP's cosine similarity."""

    def __init__(self, path, config: DALLEConfig):
        from ..tasks.clip import load_model
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
