"""Activation functions: GELU (tanh approximation and exact) and ReLU.

GELU weights its input by the probability that a standard normal is below it:

    gelu(x) = x * Phi(x),   Phi(x) = (1 + erf(x / sqrt(2))) / 2 = erfc(-x / sqrt(2)) / 2
    gelu'(x) = Phi(x) + x * phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

BERT uses it exactly ("none"). GPT-2 uses the tanh approximation ("tanh"),
with k = sqrt(2 / pi) and a = 0.044715:

    t = tanh(k (x + a x^3)),   y = x (1 + t) / 2
    y' = (1 + t) / 2 + x (1 - t^2) k (1 + 3 a x^2) / 2
       = (1 + t) (1 + u (1 - t)) / 2,   u = x k (1 + 3 a x^2)

ReLU: y = max(x, 0), y' = 1 where x > 0 else 0 (0 at x = 0, as PyTorch).

NumPy has no vectorised erf (and scipy is not a dependency), so ``erf`` and
``erfc`` below evaluate W. J. Cody's rational approximations ("Rational
Chebyshev approximations for the error function", Math. Comp. 23, 1969), the
algorithm of netlib's specfun CALERF, accurate to float64 rounding. They work
in the input's dtype, so float32 stays float32.
"""

from __future__ import annotations

import math

import numpy as np

from ..core import Module, check_array
from ..parallel import map_rows

_K = math.sqrt(2.0 / math.pi)        # tanh GELU constants
_A = 0.044715

# Cody's coefficients, highest power first. Denominators are monic.
# |x| <= 0.46875, z = x^2:   erf(x) = x * N1(z) / D1(z)
_N1 = (1.85777706184603153e-1, 3.16112374387056560e0, 1.13864154151050156e2,
       3.77485237685302021e2, 3.20937758913846947e3)
_D1 = (1.0, 2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3,
       2.84423683343917062e3)
# 0.46875 < y <= 4:   erfc(y) = exp(-y^2) * N2(y) / D2(y)
_N2 = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e0,
       6.61191906371416295e1, 2.98635138197400131e2, 8.81952221241769090e2,
       1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3)
_D2 = (1.0, 1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2,
       1.62138957456669019e3, 3.29079923573345963e3, 4.36261909014324716e3,
       3.43936767414372164e3, 1.23033935480374942e3)
# y > 4, z = 1 / y^2:   erfc(y) = exp(-y^2) / y * (1 / sqrt(pi) - z * N3(z) / D3(z))
_N3 = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
       1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)
_D3 = (1.0, 2.56852019228982242e0, 1.87295284992346047e0, 5.27905102951428412e-1,
       6.05183413124413191e-2, 2.33520497626869185e-3)
_NEAR_ZERO = 0.46875
_ERFC_ZERO = 30.0                    # erfc(y) underflows to 0 (float64) for y > 27.3


def _polyval(coeffs, z):
    """coeffs[0] z^n + ... + coeffs[n] by Horner's rule; Python-float
    coefficients keep z's dtype (``np.polyval`` would promote float32)."""
    acc = np.full_like(z, coeffs[0])
    for c in coeffs[1:]:
        acc *= z
        acc += c
    return acc


def _exp_minus_square(y):
    """exp(-y^2) without the rounding error of y*y, which exp would amplify
    by y^2 (~700 near y = 26): split y = s + r with s a multiple of 1/16, so
    s*s is exact, and y^2 = s^2 + (y - s)(y + s)."""
    s = np.trunc(y * 16.0) / 16.0
    return np.exp(-s * s) * np.exp(-(y - s) * (y + s))


def _erf_near_zero(x):
    """erf(x), for |x| <= 0.46875."""
    z = x * x
    return x * _polyval(_N1, z) / _polyval(_D1, z)


def _erfc_away_from_zero(y):
    """erfc(y), for y >= 0.46875 (any y >= 0 is accepted; smaller ones give junk).

    The middle-range formula runs on the whole array: most activations fall
    there, and whole-array passes are several times cheaper than gathering a
    subset with a boolean mask. The rare tail y > 4 is patched by gathering.
    """
    y_mid = np.minimum(y, 4.0)
    r = _polyval(_N2, y_mid) / _polyval(_D2, y_mid)
    tail = y > 4.0
    if tail.any():
        y_tail = np.minimum(y[tail], _ERFC_ZERO)           # no inf - inf; erfc is 0 there anyway
        z = 1.0 / (y_tail * y_tail)
        r[tail] = (1.0 / math.sqrt(math.pi) - z * _polyval(_N3, z) / _polyval(_D3, z)) / y_tail
    r *= _exp_minus_square(np.minimum(y, _ERFC_ZERO))
    return r


def erf(x):
    """The error function, elementwise: (2 / sqrt(pi)) * integral_0^x exp(-t^2) dt.

    Accurate to float64 rounding; a float32 input gives a float32 output.
    """
    x = check_array(x, "x", min_ndim=0, who="erf")
    shape, x = x.shape, x.reshape(-1)                      # 0-d becomes (1,): ufuncs with out=
    y = np.abs(x)
    away = 1.0 - _erfc_away_from_zero(y)
    np.copysign(away, x, out=away)                         # erf is odd
    near = _erf_near_zero(np.clip(x, -_NEAR_ZERO, _NEAR_ZERO))
    return np.where(y <= _NEAR_ZERO, near, away).reshape(shape)


def erfc(x):
    """The complementary error function 1 - erf(x), elementwise, without the
    cancellation of 1 - erf(x) at large x (erfc(10) = 2.1e-45 to full precision)."""
    x = check_array(x, "x", min_ndim=0, who="erfc")
    shape, x = x.shape, x.reshape(-1)                      # 0-d becomes (1,): ufuncs with out=
    y = np.abs(x)
    away = _erfc_away_from_zero(y)
    np.subtract(2.0, away, out=away, where=x < 0)          # erfc(-y) = 2 - erfc(y)
    near = 1.0 - _erf_near_zero(np.clip(x, -_NEAR_ZERO, _NEAR_ZERO))
    return np.where(y <= _NEAR_ZERO, near, away).reshape(shape)


def _as_rows(*arrays):
    """Elementwise work sees any shape as rows: (...) -> (N, last), 0-d -> (1, 1)."""
    return [a.reshape(-1, a.shape[-1] if a.ndim else 1) for a in arrays]


def _gelu_tanh_rows(x, y, t):
    """Fills t = tanh(k (x + a x^3)) and y = x (1 + t) / 2 for a block of rows."""
    np.multiply(x, x, out=t)
    t *= _K * _A
    t += _K
    t *= x                                         # k (x + a x^3)
    np.tanh(t, out=t)                              # t
    np.add(t, 1.0, out=y)
    y *= x
    y *= 0.5                                       # x (1 + t) / 2


def _gelu_tanh_backward_rows(dy, x, t, dx):
    """Fills dx = dy (1 + t) (1 + u (1 - t)) / 2, u = x k (1 + 3 a x^2), for a block of rows."""
    u = x * x                                      # (n, last)
    u *= 3.0 * _K * _A
    u += _K
    u *= x                                         # u = x k (1 + 3 a x^2)
    np.subtract(1.0, t, out=dx)
    dx *= u
    dx += 1.0                                      # 1 + u (1 - t)
    dx *= np.add(t, 1.0, out=u)                    # (1 + t) (1 + u (1 - t))
    dx *= 0.5
    dx *= dy


def _gelu_exact_rows(x, y, Phi):
    """Fills Phi = erfc(-x / sqrt 2) / 2 and y = x Phi for a block of rows."""
    np.multiply(erfc(x * (-1.0 / math.sqrt(2.0))), 0.5, out=Phi)
    np.multiply(x, Phi, out=y)


def _gelu_exact_backward_rows(dy, x, Phi, dx):
    """Fills dx = dy (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    np.multiply(x, x, out=dx)
    dx *= -0.5
    np.exp(dx, out=dx)
    dx *= 1.0 / math.sqrt(2.0 * math.pi)           # phi(x)
    dx *= x
    dx += Phi                                      # Phi(x) + x phi(x)
    dx *= dy


def gelu_forward(x, approximate="tanh"):
    """y = x * Phi(x), exactly ("none") or with the tanh approximation ("tanh").

    x: (...)   ->   y: (...), cache

    Elementwise, so ``map_rows`` runs blocks of rows on every core.
    """
    if approximate not in ("tanh", "none"):
        raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")
    x = check_array(x, "x", min_ndim=0, who="gelu")
    y, s = np.empty(x.shape, x.dtype), np.empty(x.shape, x.dtype)  # y, and t or Phi
    kernel = _gelu_tanh_rows if approximate == "tanh" else _gelu_exact_rows
    map_rows(kernel, *_as_rows(x, y, s))
    return y, (approximate, x, s)


def gelu_backward(dy, cache):
    """dy: (...) -> dx: (...), dx = dy * gelu'(x)."""
    approximate, x, s = cache
    dx = np.empty(x.shape, x.dtype)                # (...)
    kernel = _gelu_tanh_backward_rows if approximate == "tanh" else _gelu_exact_backward_rows
    map_rows(kernel, *_as_rows(dy, x, s, dx))
    return dx


def relu_forward(x):
    """y = max(x, 0).   x: (...)   ->   y: (...), cache"""
    x = check_array(x, "x", min_ndim=0, who="relu")
    y = np.maximum(x, 0.0)                         # (...)
    return y, y > 0


def relu_backward(dy, cache):
    """dy: (...) -> dx = dy where x > 0, else 0."""
    positive = cache
    return dy * positive


class GELU(Module):
    """x * Phi(x); approximate="tanh" (GPT-2) or "none" (exact, BERT)."""

    def __init__(self, approximate="tanh"):
        if approximate not in ("tanh", "none"):
            raise ValueError(f"GELU: approximate must be 'tanh' or 'none', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        y, self._cache = gelu_forward(x, self.approximate)
        return y

    def backward(self, dy):
        return gelu_backward(dy, self._saved())


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x):
        y, self._cache = relu_forward(x)
        return y

    def backward(self, dy):
        return relu_backward(dy, self._saved())


def tanh_forward(x):
    """y = tanh(x), elementwise (BERT's pooler).   x: (...) -> y: (...), cache"""
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, cache):
    """dx = dy * (1 - y^2), since d tanh(x) / dx = 1 - tanh(x)^2."""
    y = cache
    return dy * (1.0 - y * y)


class Tanh(Module):
    """The tanh activation; no Parameters."""

    def forward(self, x):
        y, self._cache = tanh_forward(x)
        return y

    def backward(self, dy):
        return tanh_backward(dy, self._saved())
