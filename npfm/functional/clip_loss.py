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

import math

import numpy as np

from .l2_normalize import l2_normalize_backward, l2_normalize_forward
from .softmax import log_softmax


def clip_loss_forward(image_emb, text_emb, logit_scale):
    """Symmetric InfoNCE loss of B matching (image, text) pairs.

    image_emb: (B, E) raw image embeddings (not normalised)
    text_emb:  (B, E) raw text embeddings; row i matches image row i
    logit_scale: a number, or an array of one element (a Parameter of shape (1,)),
                 the log of the inverse temperature; its gradient has its shape
    ->  loss (a 0-d array of the embeddings' dtype), cache
    """
    B = image_emb.shape[0]
    s = math.exp(float(np.reshape(logit_scale, ())))              # a Python float keeps the dtype
    u, u_cache = l2_normalize_forward(image_emb)                   # (B, E)
    v, v_cache = l2_normalize_forward(text_emb)                    # (B, E)
    Z = s * (u @ v.T)                                              # (B, B)
    log_R = log_softmax(Z, axis=1)                                 # image -> text
    log_K = log_softmax(Z, axis=0)                                 # text -> image
    diag = np.arange(B)
    loss = -(log_R[diag, diag].sum() + log_K[diag, diag].sum()) / (2 * B)
    cache = (u, v, u_cache, v_cache, s, Z, log_R, log_K, np.shape(logit_scale))
    return np.asarray(loss, dtype=image_emb.dtype), cache


def clip_loss_backward(dloss, cache):
    """dloss: a number -> (dimage_emb (B, E), dtext_emb (B, E), dlogit_scale)."""
    u, v, u_cache, v_cache, s, Z, log_R, log_K, scale_shape = cache
    B = Z.shape[0]
    dZ = np.exp(log_R) + np.exp(log_K) - 2.0 * np.eye(B, dtype=Z.dtype)   # (R - I) + (K - I)
    dZ = dZ * (float(dloss) / (2 * B))                             # (B, B)
    dlogit_scale = np.full(scale_shape, (dZ * Z).sum(), dtype=Z.dtype)
    du = s * dZ @ v                                                # (B, E)
    dv = s * dZ.T @ u                                              # (B, E)
    return (l2_normalize_backward(du, u_cache), l2_normalize_backward(dv, v_cache),
            dlogit_scale)
