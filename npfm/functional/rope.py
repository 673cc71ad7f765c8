"""Rotary position embedding, RoPE (Su et al., 2021), in Llama's half-split layout.

RoPE adds no vector to the input: it *rotates* each query and key by an angle
proportional to its position, so that the product of a query at position m
and a key at position n depends on m and n only through m - n.

The D channels of a head are D / 2 planes; plane i pairs channel i with
channel i + D / 2 (the "half-split" layout of Hugging Face's Llama, whose
``rotate_half(x) = concat(-x2, x1)``; the paper pairs neighbours 2i, 2i + 1
instead, which is the same model with permuted channels). Plane i turns at
the frequency theta_i = base^(-2i / D), so at position p it is rotated by
p * theta_i. With x1 = x[..., :D/2], x2 = x[..., D/2:]:

    y1 = x1 cos - x2 sin
    y2 = x2 cos + x1 sin          i.e.   y = x * cos + rotate_half(x) * sin

with cos and sin of shape (T, D) (the D / 2 angles written twice). Row t of
a (..., T, D) input sits at position offset + t: a KV cache decoding token
number p passes offset = p.

Backward. The rotation R is orthogonal, so dx = R^T dy, the rotation by the
opposite angle. Since rotate_half^T(u) = concat(u2, -u1) = -rotate_half(u):

    dx = dy * cos - rotate_half(dy * sin)
       = (dy1 cos + dy2 sin,  dy2 cos - dy1 sin)
"""


import numpy as np


def rope_tables(T, D, offset=0, base=10000.0, dtype=np.float64):
    """cos and sin of the angles (offset + t) * base^(-2i / D), each (T, D).

    The angles are computed in float64 (positions reach the thousands) and
    the tables are cast to ``dtype`` at the end.
    """
    half = D // 2
    theta = base ** (-np.arange(half) * (2.0 / D))                        # (D/2,)
    angles = np.arange(offset, offset + T, dtype=np.float64)[:, None] * theta  # (T, D/2)
    angles = np.concatenate([angles, angles], axis=-1)                    # (T, D)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def rotate_half(x):
    """concat(-x2, x1) over the last axis: each plane turned by 90 degrees."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)       # (..., D)


def rope_forward(x, offset=0, base=10000.0):
    """y = x * cos + rotate_half(x) * sin, row t at position offset + t.

    x: (..., T, D) with D even   ->   y: (..., T, D), cache
    """
    T, D = x.shape[-2:]
    cos, sin = rope_tables(T, D, offset, base, x.dtype)                   # (T, D) each
    return x * cos + rotate_half(x) * sin, (cos, sin)


def rope_backward(dy, cache):
    """dx = dy * cos - rotate_half(dy * sin): the rotation by minus the angle."""
    cos, sin = cache
    return dy * cos - rotate_half(dy * sin)                               # (..., T, D)
