"""The error function erf and its complement erfc, elementwise, for exact GELU.

NumPy has no vectorised erf (and scipy is not a dependency), so these
evaluate W. J. Cody's rational approximations ("Rational Chebyshev
approximations for the error function", Math. Comp. 23, 1969), the algorithm
of netlib's specfun CALERF, accurate to float64 rounding. Three ranges of
y = |x|:

    y <= 0.46875, z = y^2:   erf(x)  = x N1(z) / D1(z)
    0.46875 < y <= 4:        erfc(y) = exp(-y^2) N2(y) / D2(y)
    y > 4, z = 1 / y^2:      erfc(y) = exp(-y^2) / y (1 / sqrt(pi) - z N3(z) / D3(z))

and erf(x) = sign(x) (1 - erfc(|x|)), erfc(-y) = 2 - erfc(y). They work in the
input's dtype, so float32 stays float32.
"""

import math

import numpy as np

# Cody's coefficients, highest power first. Denominators are monic.
_N1 = (1.85777706184603153e-1, 3.16112374387056560e0, 1.13864154151050156e2,
       3.77485237685302021e2, 3.20937758913846947e3)
_D1 = (1.0, 2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3,
       2.84423683343917062e3)
_N2 = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e0,
       6.61191906371416295e1, 2.98635138197400131e2, 8.81952221241769090e2,
       1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3)
_D2 = (1.0, 1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2,
       1.62138957456669019e3, 3.29079923573345963e3, 4.36261909014324716e3,
       3.43936767414372164e3, 1.23033935480374942e3)
_N3 = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
       1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)
_D3 = (1.0, 2.56852019228982242e0, 1.87295284992346047e0, 5.27905102951428412e-1,
       6.05183413124413191e-2, 2.33520497626869185e-3)
NEAR_ZERO = 0.46875
_ERFC_ZERO = 30.0                    # erfc(y) underflows to 0 (float64) for y > 27.3


def _polyval(coeffs, z):
    """coeffs[0] z^n + ... + coeffs[n] by Horner's rule; Python-float
    coefficients keep z's dtype (``np.polyval`` would promote float32)."""
    acc = np.full_like(z, coeffs[0])
    for c in coeffs[1:]:
        acc = acc * z + c
    return acc


def _exp_minus_square(y):
    """exp(-y^2) without the rounding error of y*y, which exp would amplify
    by y^2 (~700 near y = 26): split y = s + r with s a multiple of 1/16, so
    s*s is exact, and y^2 = s^2 + (y - s)(y + s)."""
    s = np.trunc(y * 16.0) / 16.0
    return np.exp(-s * s) * np.exp(-(y - s) * (y + s))


def erf_near_zero(x):
    """erf(x), for |x| <= 0.46875."""
    z = x * x
    return x * _polyval(_N1, z) / _polyval(_D1, z)


def erfc_away_from_zero(y):
    """erfc(y), for y >= 0.46875 (any y >= 0 is accepted; smaller ones give junk)."""
    y_mid = np.minimum(y, 4.0)
    r = _polyval(_N2, y_mid) / _polyval(_D2, y_mid)                 # 0.46875 < y <= 4
    y_tail = np.clip(y, 4.0, _ERFC_ZERO)                           # y > 4 (no inf - inf)
    z = 1.0 / (y_tail * y_tail)
    r_tail = (1.0 / math.sqrt(math.pi) - z * _polyval(_N3, z) / _polyval(_D3, z)) / y_tail
    r = np.where(y > 4.0, r_tail, r)
    return r * _exp_minus_square(np.minimum(y, _ERFC_ZERO))


def erf(x):
    """The error function (2 / sqrt(pi)) * integral_0^x exp(-t^2) dt, elementwise."""
    x = np.asarray(x)
    y = np.abs(x)
    away = np.copysign(1.0 - erfc_away_from_zero(y), x)           # erf is odd
    near = erf_near_zero(np.clip(x, -NEAR_ZERO, NEAR_ZERO))
    return np.where(y <= NEAR_ZERO, near, away).astype(x.dtype)


def erfc(x):
    """1 - erf(x), elementwise, without the cancellation of 1 - erf(x) at large
    x (erfc(10) = 2.1e-45 to full precision)."""
    x = np.asarray(x)
    y = np.abs(x)
    away = erfc_away_from_zero(y)
    away = np.where(x < 0, 2.0 - away, away)                       # erfc(-y) = 2 - erfc(y)
    near = 1.0 - erf_near_zero(np.clip(x, -NEAR_ZERO, NEAR_ZERO))
    return np.where(y <= NEAR_ZERO, near, away).astype(x.dtype)
