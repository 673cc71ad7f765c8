"""CLIP's contrastive loss as a Module that owns the learned temperature
(the pair: npfm/functional/clip_loss.py)."""

import math

import numpy as np

from ..core import Module, Parameter, check_array
from ..fast import pair

INIT_LOGIT_SCALE = math.log(1 / 0.07)      # temperature 0.07, as in CLIP
MAX_LOGIT_SCALE = math.log(100.0)          # s <= 100: logits stay in [-100, 100]


def check_clip_inputs(image_emb, text_emb, logit_scale, who="clip_loss"):
    """Both embeddings (B, E) with B >= 2, finite; logit_scale one finite number."""
    image_emb = check_array(image_emb, "image_emb", min_ndim=2, who=who)
    text_emb = check_array(text_emb, "text_emb", min_ndim=2, who=who)
    if image_emb.ndim != 2 or image_emb.shape != text_emb.shape:
        raise ValueError(f"{who}: image_emb {image_emb.shape} and text_emb {text_emb.shape} "
                         "must both be (B, E) with the same B and E")
    B = image_emb.shape[0]
    if B < 2:
        raise ValueError(f"{who}: a batch of {B} pair(s); the contrastive loss needs at least "
                         "two pairs (each image is contrasted with the other pairs' texts)")
    scale_value = np.asarray(logit_scale)
    if scale_value.size != 1 or not np.issubdtype(scale_value.dtype, np.number):
        raise TypeError(f"{who}: logit_scale must be one number, got {logit_scale!r}")
    for name, a in (("image_emb", image_emb), ("text_emb", text_emb), ("logit_scale", scale_value)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{who}: {name} contains NaN or infinite values")
    return image_emb, text_emb


class CLIPLoss(Module):
    """The contrastive loss with its learned temperature: owns ``logit_scale``.

    forward(image_emb, text_emb) -> loss;  backward(dloss=1.0) -> (dimage_emb, dtext_emb).
    ``clamp()`` caps the logit scale at ln(100), as CLIP does after each step.
    """

    def __init__(self, init=INIT_LOGIT_SCALE, max_value=MAX_LOGIT_SCALE, dtype=np.float32):
        # shape (1,), not a 0-d array: optimizers update arrays in place
        self.logit_scale = Parameter(np.full(1, init, dtype=dtype), decay=False)
        self.max_value = max_value

    def forward(self, image_emb, text_emb):
        image_emb, text_emb = check_clip_inputs(image_emb, text_emb, self.logit_scale.data)
        forward, self._backward = pair("clip_loss")
        loss, self._cache = forward(image_emb, text_emb, self.logit_scale.data)
        return loss

    def backward(self, dloss=1.0):
        cache = self._saved()
        dimage, dtext, dscale = self._backward(dloss, cache)
        self.logit_scale.grad += dscale
        return dimage, dtext

    def clamp(self):
        """logit_scale = min(logit_scale, ln 100), in place."""
        np.minimum(self.logit_scale.data, self.max_value, out=self.logit_scale.data)
