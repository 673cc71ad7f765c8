"""CLIP's symmetric contrastive loss, L2 normalisation and temperature included.

A batch holds B matching (image, text) pairs: pair i is image i with text i.
Each image should pick its own text out of the B texts, and each text its
own image. Forward, for raw embeddings X (images) and Y (texts):

    u_i = x_i / |x_i|        v_j = y_j / |y_j|         unit vectors     (B, E)
    s = exp(logit_scale)                                 temperature 1/s
    Z = s * u @ v^T          Z_ij = s cos(image i, text j)              (B, B)
    L = ( CE(rows of Z, i) + CE(columns of Z, j) ) / 2
      = -1/(2B) sum_i [ log softmax_row(Z)_ii + log softmax_col(Z)_ii ]

The two cross-entropies are image -> text (each row is a softmax over the
texts) and text -> image (each column a softmax over the images). Backward,
reversing each line, with R = softmax over each row and K = softmax over each
column (both (B, B)) and I the identity:

    dZ = dL / (2B) * ((R - I) + (K - I))
    d logit_scale = sum(dZ * Z)          Z = s * cos, and ds/d logit_scale = s
    du = s * dZ @ v                      dv = s * dZ^T @ u
    dx = (du - u (u . du)) / |x|         the normalisation removes the radial part

The loss needs B >= 2: with one pair there is nothing to contrast and the
loss is identically 0. With random embeddings Z is near 0 and L ~ ln(B).
"""

from __future__ import annotations

import math

import numpy as np

from ..core import Module, Parameter, check_array

INIT_LOGIT_SCALE = math.log(1 / 0.07)      # temperature 0.07, as in CLIP
MAX_LOGIT_SCALE = math.log(100.0)          # s <= 100: logits stay in [-100, 100]


def l2_normalize_forward(x, eps=1e-12):
    """u = x / |x| over the last axis.   x: (..., E) -> u: (..., E), cache"""
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))           # (..., 1)
    norm = np.maximum(norm, eps)                                   # a zero vector stays 0
    u = x / norm                                                   # (..., E)
    return u, (u, norm)


def l2_normalize_backward(du, cache):
    """dx = (du - u (u . du)) / |x|: only the tangential part of du survives."""
    u, norm = cache
    return (du - u * (u * du).sum(axis=-1, keepdims=True)) / norm


def _log_softmax(z, axis):
    """Stable log-softmax: subtract the max before exponentiating."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def clip_loss_forward(image_emb, text_emb, logit_scale):
    """Symmetric InfoNCE loss of B matching (image, text) pairs.

    image_emb: (B, E) raw image embeddings (not normalised)
    text_emb:  (B, E) raw text embeddings; row i matches image row i
    logit_scale: a number, or an array of one element (a Parameter of shape (1,)),
                 the log of the inverse temperature; its gradient has its shape
    ->  loss (a 0-d array of the embeddings' dtype), cache
    """
    image_emb = check_array(image_emb, "image_emb", min_ndim=2, who="clip_loss")
    text_emb = check_array(text_emb, "text_emb", min_ndim=2, who="clip_loss")
    if image_emb.ndim != 2 or image_emb.shape != text_emb.shape:
        raise ValueError(f"clip_loss: image_emb {image_emb.shape} and text_emb {text_emb.shape} "
                         "must both be (B, E) with the same B and E")
    B = image_emb.shape[0]
    if B < 2:
        raise ValueError(f"clip_loss: a batch of {B} pair(s); the contrastive loss needs at least "
                         "two pairs (each image is contrasted with the other pairs' texts)")
    scale_value = np.asarray(logit_scale)
    if scale_value.size != 1 or not np.issubdtype(scale_value.dtype, np.number):
        raise TypeError(f"clip_loss: logit_scale must be one number, got {logit_scale!r}")
    for name, a in (("image_emb", image_emb), ("text_emb", text_emb), ("logit_scale", scale_value)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"clip_loss: {name} contains NaN or infinite values")
    s = math.exp(float(scale_value.reshape(())))                 # a Python float keeps the dtype

    u, u_cache = l2_normalize_forward(image_emb)                   # (B, E)
    v, v_cache = l2_normalize_forward(text_emb)                    # (B, E)
    Z = s * (u @ v.T)                                              # (B, B)
    log_R = _log_softmax(Z, axis=1)                                # image -> text
    log_K = _log_softmax(Z, axis=0)                                # text -> image
    diag = np.arange(B)
    loss = -(log_R[diag, diag].sum() + log_K[diag, diag].sum()) / (2 * B)
    cache = (u, v, u_cache, v_cache, s, Z, log_R, log_K, np.shape(logit_scale))
    return np.asarray(loss, dtype=image_emb.dtype), cache


def clip_loss_backward(dloss, cache):
    """dloss: a number -> (dimage_emb (B, E), dtext_emb (B, E), dlogit_scale)."""
    u, v, u_cache, v_cache, s, Z, log_R, log_K, scale_shape = cache
    B = Z.shape[0]
    dloss = float(dloss)
    dZ = np.exp(log_R) + np.exp(log_K)                             # R + K    (B, B)
    dZ[np.diag_indices(B)] -= 2.0                                  # (R - I) + (K - I)
    dZ *= dloss / (2 * B)
    dlogit_scale = np.full(scale_shape, (dZ * Z).sum(), dtype=Z.dtype)
    dcos = s * dZ                                                  # (B, B)
    du = dcos @ v                                                  # (B, E)
    dv = dcos.T @ u                                                # (B, E)
    dimage = l2_normalize_backward(du, u_cache)
    dtext = l2_normalize_backward(dv, v_cache)
    return dimage, dtext, dlogit_scale


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
        loss, self._cache = clip_loss_forward(image_emb, text_emb, self.logit_scale.data)
        return loss

    def backward(self, dloss=1.0):
        dimage, dtext, dscale = clip_loss_backward(dloss, self._saved())
        self.logit_scale.grad += dscale
        return dimage, dtext

    def clamp(self):
        """logit_scale = min(logit_scale, ln 100), in place."""
        np.minimum(self.logit_scale.data, self.max_value, out=self.logit_scale.data)
