"""What the plot tests look at: the pixels painted one exact colour."""

import numpy as np

from npfm.plot import BLACK


def ink(canvas, color=BLACK):
    """(rows, cols) of pixels painted exactly ``color``."""
    return np.nonzero(np.all(canvas == np.array(color, np.uint8), axis=-1))
