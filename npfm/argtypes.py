"""Argument types shared by every command: a bad value is refused while parsing.

argparse calls ``type(text)`` for each option; raising
``argparse.ArgumentTypeError`` makes the ``npfm`` parser print one line
naming the option (``npfm: error: --steps must be a positive integer, got
0``) and exit with status 2. Checking here, once, means no command can read ``--steps 0`` as
"use the default" (``args.steps or default``) or run with a negative count.

    p.add_argument("--steps", type=positive_int)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--temperature", type=nonnegative_float)
"""

from __future__ import annotations

import argparse
import math


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _finite(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text):
    """An integer >= 1 (a count of steps, tokens, images, ...)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def nonnegative_int(text):
    """An integer >= 0 (0 meaning "none", e.g. --sample-tokens 0)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def seed(text):
    """A random seed: an integer >= 0 (what np.random.default_rng accepts)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (a random seed), got {value}")
    return value


def finite_float(text):
    """Any finite number (no nan, no inf)."""
    return _finite(text)


def positive_float(text):
    """A finite number > 0 (a learning rate)."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {value}")
    return value


def nonnegative_float(text):
    """A finite number >= 0 (a temperature: 0 = greedy)."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def dropout_rate(text):
    """A finite number in [0, 1): the probability of dropping a unit."""
    value = _finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {value}")
    return value


def open_fraction(text):
    """A finite number strictly between 0 and 1 (the share of a corpus kept for validation)."""
    value = _finite(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {value}")
    return value
