"""L2 normalisation: each row scaled to unit length (CLIP's embeddings,
sentence embeddings, zero-shot class vectors).

    u = x / max(|x|, eps)

Backward. u depends on x through its direction only, so the part of du
along u (the radial part) has no effect on the loss, and the rest scales
by 1 / |x|:

    dx = (du - u (u . du)) / |x|
"""

import numpy as np


def l2_normalize_forward(x, eps=1e-12):
    """u = x / |x| over the last axis.   x: (..., E) -> u: (..., E), cache"""
    norm = np.maximum(np.sqrt((x * x).sum(axis=-1, keepdims=True)), eps)   # (..., 1)
    u = x / norm                                                   # (..., E); 0 stays 0
    return u, (u, norm)


def l2_normalize_backward(du, cache):
    """dx = (du - u (u . du)) / |x|: only the tangential part of du survives."""
    u, norm = cache
    return (du - u * (u * du).sum(axis=-1, keepdims=True)) / norm
