"""What the fast-vs-textbook tests share: the floors' error measure and its tolerances.

float64: 1e-12 relative (the floors compute the same math in another order);
float32: 1e-5 (a float32 sum of a few hundred terms in another order).
"""

import numpy as np

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def floor_error(fast, textbook, dtype, terms=0.0):
    """max |fast - textbook| / max(max |textbook|, terms), after checking dtype and shape.

    terms: the size of the terms the result is a difference of, where they
    can cancel (a result of exactly 0 on one floor is rounding noise of that
    size on the other).
    """
    fast, textbook = np.asarray(fast), np.asarray(textbook)
    assert fast.dtype == textbook.dtype == dtype, (fast.dtype, textbook.dtype, dtype)
    assert fast.shape == textbook.shape
    assert np.isfinite(fast).all() and np.isfinite(textbook).all()
    scale = max(float(np.abs(textbook).max(initial=0.0)), terms)
    if not scale > 0:
        return float(np.abs(fast).max(initial=0.0))       # 0 must be 0 exactly
    return float(np.abs(fast.astype(np.float64) - textbook).max(initial=0.0)) / scale
