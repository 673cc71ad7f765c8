"""CLIP: an image tower and a text tower trained to agree, with a hand-written backward.

Two encoders map an image and a caption into one joint space of width E;
training pulls each image towards its own caption and away from the other
captions of the batch (``npfm.functional.clip_loss``).

Image tower, a Vision Transformer (ViT), for images (B, S, S, ch):

    patches = patchify(images)          cut into N = (S/p)^2 patches of p*p*ch values  (B, N, P)
    x = patches @ W_patch + b_patch     a linear patch embedding                        (B, N, C)
    x = [cls ; x] + P                   a learned class token in front, learned positions (B, N+1, C)
    x = ln_pre(x)
    x = block_l(x)   for l = 1..L       pre-LN, bidirectional                           (B, N+1, C)
    image_emb = ln_post(x[:, 0]) @ W_proj   the class token's output                    (B, E)

Text tower, a causal transformer over caption ids (B, T) that end in [EOT]:

    x = E[ids] + P[:T]                                                                  (B, T, C)
    x = block_l(x)   for l = 1..L       pre-LN, causal                                  (B, T, C)
    text_emb = ln_f(x)[b, eot_b] @ W_proj   the [EOT] position's output              (B, E)

Because the mask is causal, the [EOT] position sees the caption and nothing
after it: padding after [EOT] changes nothing and needs no padding mask.

The model, for B matching pairs:

    loss = clip_loss(image_emb, text_emb, logit_scale)
         = symmetric cross-entropy of exp(logit_scale) * cos(image i, text j)

Backward runs each line in reverse: the loss gives d image_emb, d text_emb and
d logit_scale; each tower's gradient enters at one position (the class token,
the [EOT] token), is scattered into a zero (B, T, C) array and flows back
through the blocks, the positions and the embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..config import ConfigMixin, default_hidden
from ..core import Module, Parameter, check_array, check_ids
from ..fast import pair
from ..functional.l2_normalize import l2_normalize_forward
from ..nn.clip_loss import INIT_LOGIT_SCALE, MAX_LOGIT_SCALE, check_clip_inputs
from ..nn.embedding import Embedding
from ..nn.layernorm import LayerNorm
from ..nn.linear import Linear
from ..nn.positional import PositionalEmbedding
from .decoder import DecoderStack, make_blocks


@dataclass(frozen=True)
class CLIPConfig(ConfigMixin):
    """Architecture of a CLIP. Both towers have width ``dim``; ``hidden`` defaults to 4 * dim."""
    image_size: int = 16
    patch: int = 4
    channels: int = 3
    vocab_size: int = 64
    context: int = 16
    eot_id: int = 1                     # WordTokenizer's [EOT]
    dim: int = 64
    n_heads: int = 4
    image_layers: int = 2
    text_layers: int = 2
    hidden: int = 0
    embed_dim: int = 64

    def __post_init__(self):
        default_hidden(self)
        if self.dim % self.n_heads:
            raise ValueError(f"CLIPConfig: dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.patch < 1 or self.image_size % self.patch:
            raise ValueError(f"CLIPConfig: patch size {self.patch} does not divide the image size "
                             f"{self.image_size}; choose a divisor such as "
                             f"{[p for p in range(1, self.image_size + 1) if self.image_size % p == 0]}")
        if not 0 <= self.eot_id < self.vocab_size:
            raise ValueError(f"CLIPConfig: eot_id {self.eot_id} is outside the vocabulary "
                             f"[0, {self.vocab_size})")
        if self.context < 2:
            raise ValueError(f"CLIPConfig: context must be >= 2 (a word and [EOT]), got {self.context}")

    @property
    def n_patches(self):
        return (self.image_size // self.patch) ** 2



PRESETS = {
    # for tests: whole-model gradient checks in seconds
    "tiny": CLIPConfig(image_size=8, patch=4, vocab_size=12, context=6, dim=8, n_heads=2,
                       image_layers=1, text_layers=1, embed_dim=6),
    # the main job on 16 x 16 shapes: 17 image tokens, captions of <= 16 words
    "default": CLIPConfig(image_size=16, patch=4, dim=64, n_heads=4, image_layers=2,
                          text_layers=2, embed_dim=64),
}


def preset(name, **overrides):
    """A named preset with some fields replaced (e.g. the tokenizer's vocab_size)."""
    if name not in PRESETS:
        raise ValueError(f"unknown CLIP preset {name!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# ----- patches --------------------------------------------------------------------

def patchify_forward(images, patch):
    """Cut images into non-overlapping patch x patch squares, by reshaping only.

    images: (B, S_h, S_w, ch)  ->  patches (B, N, P) with N = (S_h/p)(S_w/p),
    P = p*p*ch; patches run left to right, then top to bottom, and each patch
    lists its pixels row by row. The backward is the inverse reshape.
    """
    B, Sh, Sw, ch = images.shape
    p = patch
    if Sh % p or Sw % p:
        raise ValueError(f"patchify: patch size {p} does not divide the image size {Sh} x {Sw}")
    x = images.reshape(B, Sh // p, p, Sw // p, p, ch)              # (B, rows, p, cols, p, ch)
    x = x.transpose(0, 1, 3, 2, 4, 5)                              # (B, rows, cols, p, p, ch)
    return x.reshape(B, (Sh // p) * (Sw // p), p * p * ch), (images.shape, p)   # (B, N, P)


def patchify_backward(dpatches, cache):
    """dpatches: (B, N, P) -> dimages (B, S_h, S_w, ch): put each patch back in place."""
    (B, Sh, Sw, ch), p = cache
    dx = dpatches.reshape(B, Sh // p, Sw // p, p, p, ch)           # (B, rows, cols, p, p, ch)
    return dx.transpose(0, 1, 3, 2, 4, 5).reshape(B, Sh, Sw, ch)   # (B, S_h, S_w, ch)


def check_images(images, config, who="CLIP"):
    """Images as a float array (B, S, S, ch) matching the config, finite, B >= 1."""
    c = config
    expected = (c.image_size, c.image_size, c.channels)
    images = check_array(images, "images", who=who)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(f"{who}: images must be (B, {c.image_size}, {c.image_size}, {c.channels}) "
                         f"(B, height, width, channels), got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{who}: the batch of images is empty")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{who}: images contain NaN or infinite values")
    return images


def check_captions(ids, config, who="CLIP"):
    """Caption ids (B, T <= context), each row holding [EOT]; returns (ids, eot positions)."""
    c = config
    ids = check_ids(ids, c.vocab_size, name="caption ids", who=who)
    if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{who}: caption ids must be a non-empty (B, T) array, got shape {ids.shape}")
    if ids.shape[1] > c.context:
        raise ValueError(f"{who}: captions of {ids.shape[1]} tokens exceed the context of "
                         f"{c.context}; tokenizer.encode_batch(texts, {c.context}) truncates them")
    is_eot = ids == c.eot_id                                       # (B, T)
    if not is_eot.any(axis=1).all():
        row = int(np.flatnonzero(~is_eot.any(axis=1))[0])
        raise ValueError(f"{who}: caption {row} has no end-of-text token (id {c.eot_id}); "
                         "encode captions with tokenizer.encode_batch, which appends it")
    return ids, is_eot.argmax(axis=1)                              # first [EOT] of each row


# ----- the towers -------------------------------------------------------------------

class ImageEncoder(Module):
    """ViT: images (B, S, S, ch) -> image embeddings (B, E), not normalised."""

    def __init__(self, config: CLIPConfig, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        c = self.config = config
        self.patch_embed = Linear(c.patch * c.patch * c.channels, c.dim, std=0.02, rng=rng, dtype=dtype)
        self.cls = Parameter((rng.standard_normal(c.dim) * 0.02).astype(dtype), decay=False)
        self.pos = PositionalEmbedding(c.n_patches + 1, c.dim, std=0.01, rng=rng, dtype=dtype)
        self.ln_pre = LayerNorm(c.dim, dtype=dtype)
        self.blocks = make_blocks(c.dim, c.image_layers, c.n_heads, c.hidden, False, rng, dtype)
        self.ln_post = LayerNorm(c.dim, dtype=dtype)
        self.proj = Linear(c.dim, c.embed_dim, bias=False, std=c.dim ** -0.5, rng=rng, dtype=dtype)

    def forward(self, images):
        images = check_images(images, self.config, who="ImageEncoder")
        B = images.shape[0]
        patches, patch_cache = patchify_forward(images, self.config.patch)   # (B, N, P)
        x = self.patch_embed(patches)                                       # (B, N, C)
        cls = np.broadcast_to(self.cls.data, (B, 1, x.shape[-1]))           # (B, 1, C)
        x = np.concatenate([cls, x], axis=1)                                # (B, N+1, C)
        x = self.pos(x)
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)                                                    # (B, N+1, C)
        h = self.ln_post(x[:, 0])                                           # (B, C)
        self._cache = (patch_cache, x.shape)
        return self.proj(h)                                                 # (B, E)

    def backward(self, dy):
        """dy: (B, E) -> dimages (B, S, S, ch)."""
        patch_cache, x_shape = self._saved()
        dh = self.proj.backward(dy)                                         # (B, C)
        dx = np.zeros(x_shape, dtype=dh.dtype)                              # (B, N+1, C)
        dx[:, 0] = self.ln_post.backward(dh)                                # only the class token
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        dx = self.ln_pre.backward(dx)
        dx = self.pos.backward(dx)
        self.cls.grad += dx[:, 0].sum(axis=0)                               # shared by the batch
        dpatches = self.patch_embed.backward(dx[:, 1:])                     # (B, N, P)
        return patchify_backward(dpatches, patch_cache)


class TextEncoder(DecoderStack):
    """Causal transformer: caption ids (B, T) -> text embeddings (B, E), not normalised.

    The decoder stack's output at each caption's [EOT] token, projected.
    """

    def __init__(self, config: CLIPConfig, rng=None, dtype=np.float32):
        rng = np.random.default_rng(0) if rng is None else rng
        c = self.config = config
        self.tok_emb = Embedding(c.vocab_size, c.dim, std=0.02, rng=rng, dtype=dtype)
        self.pos = PositionalEmbedding(c.context, c.dim, std=0.01, rng=rng, dtype=dtype)
        self.build_stack(c.dim, c.text_layers, c.n_heads, c.hidden, c.context, rng, dtype)
        self.proj = Linear(c.dim, c.embed_dim, bias=False, std=c.dim ** -0.5, rng=rng, dtype=dtype)

    def forward(self, ids):
        ids, eot = check_captions(ids, self.config, who="TextEncoder")      # (B, T), (B,)
        x = self.tok_emb(ids)                                               # (B, T, C)
        x = self.pos(x)
        h = self.forward_stack(x)                                           # (B, T, C)
        rows = np.arange(ids.shape[0])
        self._cache = (rows, eot, h.shape)
        return self.proj(h[rows, eot])                                      # (B, E) at [EOT]

    def backward(self, dy):
        """dy: (B, E). Fills the grads; ids have no gradient (returns None)."""
        rows, eot, h_shape = self._saved()
        dh = np.zeros(h_shape, dtype=dy.dtype)                              # (B, T, C)
        dh[rows, eot] = self.proj.backward(dy)                              # only the [EOT] token
        dx = self.backward_stack(dh)
        dx = self.pos.backward(dx)
        self.tok_emb.backward(dx)
        return None


# ----- the model ------------------------------------------------------------------

class CLIP(Module):
    """Both towers and the learned temperature.

    forward(images, ids) -> the contrastive loss of the B pairs (a 0-d array);
    backward(dloss=1.0) -> dimages (ids have no gradient).
    encode_images / encode_texts give L2-normalised embeddings for retrieval.
    """

    def __init__(self, config: CLIPConfig, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.config = config
        self.image = ImageEncoder(config, rng=rng, dtype=dtype)
        self.text = TextEncoder(config, rng=rng, dtype=dtype)
        # shape (1,), not a 0-d array: optimizers update arrays in place
        self.logit_scale = Parameter(np.full(1, INIT_LOGIT_SCALE, dtype=dtype), decay=False)

    def forward(self, images, ids):
        images = check_images(images, self.config)
        ids, _ = check_captions(ids, self.config)
        if len(images) != len(ids):
            raise ValueError(f"CLIP: {len(images)} images but {len(ids)} captions; "
                             "the batch must hold matching pairs")
        image_emb = self.image(images)                                      # (B, E)
        text_emb = self.text(ids)                                           # (B, E)
        check_clip_inputs(image_emb, text_emb, self.logit_scale.data, who="CLIP")
        loss_forward, self._loss_backward = pair("clip_loss")
        loss, self._cache = loss_forward(image_emb, text_emb, self.logit_scale.data)
        return loss

    def backward(self, dloss=1.0):
        cache = self._saved()
        dimage_emb, dtext_emb, dscale = self._loss_backward(dloss, cache)
        self.logit_scale.grad += dscale
        self.text.backward(dtext_emb)
        return self.image.backward(dimage_emb), None

    LEGACY_KEYS = {"text.ln_final.": "text.ln_f."}     # checkpoints of npfm 0.1

    def load_state_dict(self, state, strict=True):
        """As Module's, reading the names of npfm 0.1's checkpoints too."""
        renamed = {}
        for key, value in state.items():
            for old, new in self.LEGACY_KEYS.items():
                if key.startswith(old):
                    key = new + key[len(old):]
            renamed[key] = value
        return super().load_state_dict(renamed, strict)

    def clamp_logit_scale(self):
        """logit_scale = min(logit_scale, ln 100), in place (after each optimizer step)."""
        np.minimum(self.logit_scale.data, MAX_LOGIT_SCALE, out=self.logit_scale.data)

    @property
    def temperature(self):
        return math.exp(-float(self.logit_scale.data[0]))

    def encode_images(self, images, batch_size=256):
        """(N, S, S, ch) -> unit-length image embeddings (N, E), in batches."""
        images = check_images(images, self.config, who="CLIP.encode_images")
        out = [self.image(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        return l2_normalize_forward(np.concatenate(out))[0]

    def encode_texts(self, ids, batch_size=256):
        """(N, T) caption ids -> unit-length text embeddings (N, E), in batches."""
        ids, _ = check_captions(ids, self.config, who="CLIP.encode_texts")
        out = [self.text(ids[i:i + batch_size]) for i in range(0, len(ids), batch_size)]
        return l2_normalize_forward(np.concatenate(out))[0]


# ----- using a trained CLIP -------------------------------------------------------------

def zero_shot_classify(image_emb, text_emb, owner):
    """Zero-shot classification with template ensembling (CLIP's prompt ensembling).

    Each class k has several prompts ("a photo of a {}", "a drawing of a {}", ...),
    embedded by the text tower; its class vector is the direction of their mean
    once each is of unit length, and an image belongs to its most similar class:

        u(v) = v / |v|
        W_k = u( mean over prompts p of class k of u(t_p) )      (K, E), unit rows
        scores = u(image_emb) @ W^T                              (N, K) cosines
        predicted = argmax_k scores                              (N,)

    Averaging unit vectors gives each prompt one vote; averaging the raw ones
    would let the longest embeddings decide.

    image_emb: (N, E)   text_emb: (P, E), one row per prompt, of any length
    owner: (P,) int, the class of each prompt (every class 0 .. K-1 has one)
    -> predicted (N,) int64, W (K, E)
    """
    K = int(owner.max()) + 1
    unit_texts = l2_normalize_forward(text_emb)[0]                               # (P, E)
    W = np.zeros((K, text_emb.shape[1]), text_emb.dtype)                          # (K, E)
    np.add.at(W, owner, unit_texts)                                               # sums: the mean's direction
    W = l2_normalize_forward(W)[0]                                                # (K, E)
    scores = l2_normalize_forward(image_emb)[0] @ W.T                             # (N, K)
    return scores.argmax(axis=1).astype(np.int64), W


def zero_shot_classifier(model: CLIP, tokenizer, class_prompts):
    """One unit vector per class from its prompts: template ensembling.

    class_prompts: a list (one entry per class) of lists of prompt strings,
    e.g. [["a photo of a circle", "a circle"], ["a photo of a square", ...]].
    Each class vector is the mean of its prompts' unit text embeddings,
    renormalised to length 1 (zero_shot_classify's W).
    Returns W (K, E): image class scores are encode_images(x) @ W.T.
    """
    if not class_prompts or any(not prompts for prompts in class_prompts):
        raise ValueError("zero_shot_classifier: every class needs at least one prompt")
    texts = [p for prompts in class_prompts for p in prompts]
    counts = [len(prompts) for prompts in class_prompts]
    emb = model.encode_texts(tokenizer.encode_batch(texts, model.config.context))   # (sum, E)
    owner = np.repeat(np.arange(len(counts)), counts)                             # class of each prompt
    return zero_shot_classify(emb[:0], emb, owner)[1]                             # no images: W alone


def zero_shot_accuracy(model: CLIP, classifier, images, labels):
    """Fraction of images whose most similar class vector is their label's."""
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"zero_shot_accuracy: {len(images)} images but {len(labels)} labels")
    scores = model.encode_images(images) @ classifier.T                           # (N, K)
    return float((scores.argmax(axis=1) == labels).mean())


def class_recall(sim, image_classes, text_classes, ks=(1, 5)):
    """Class-level recall@k of a retrieval, in both directions.

    sim: (N_images, N_texts) similarities; image_classes (N_images,) and
    text_classes (N_texts,) say which class each belongs to. When captions
    repeat ("a red circle" describes many images), asking for *the* matching
    caption is meaningless, so a hit is any result of the right class:

      text -> image recall@k: fraction of texts with an image of their class
                              among their k most similar images
      image -> text recall@k: the same for each image's k most similar texts
    Returns {"t2i@1": ..., "t2i@5": ..., "i2t@1": ..., "i2t@5": ...}.
    """
    sim = np.asarray(sim)
    image_classes, text_classes = np.asarray(image_classes), np.asarray(text_classes)
    if sim.shape != (len(image_classes), len(text_classes)):
        raise ValueError(f"class_recall: sim has shape {sim.shape}, expected "
                         f"({len(image_classes)}, {len(text_classes)})")
    out = {}
    by_text = np.argsort(-sim.T, axis=1, kind="stable")                          # (N_texts, N_images)
    by_image = np.argsort(-sim, axis=1, kind="stable")                           # (N_images, N_texts)
    for k in ks:
        hit_t2i = image_classes[by_text[:, :k]] == text_classes[:, None]          # (N_texts, k)
        hit_i2t = text_classes[by_image[:, :k]] == image_classes[:, None]         # (N_images, k)
        out[f"t2i@{k}"] = float(hit_t2i.any(axis=1).mean())
        out[f"i2t@{k}"] = float(hit_i2t.any(axis=1).mean())
    return out
