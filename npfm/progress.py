"""One progress display for every training job.

    step  120/1000 | loss 1.2345 | 12,345 tok/s | elapsed 1m02s | left 8m31s | val 1.40

A line is printed at the first update, every ``every`` steps and at the last
step. On a terminal the line is rewritten in place with ``\\r``; anywhere else
(a notebook, a pipe, a log file) each line is printed on its own, so the log
keeps the whole history.

Speed and time left are measured over the last ``window`` updates, not since
the start: the first steps are often slow (caches warming up), and an
estimate over everything would take minutes to forget them.
"""

from __future__ import annotations

import math
import operator
import sys
import time
from collections import deque


class Progress:
    """Print training progress: step, loss, speed, elapsed and remaining time.

    total_steps: the step number of the last step.
    stream: where to print; None means ``sys.stdout`` at the time of printing
        (so notebooks and captured output see it).
    every: print every this many steps (plus the first update and the last step).
    start_step: the step a resumed run starts from (0 for a new run).
    unit: what ``items`` counts, shown as "<unit>/s": "tok", "img", "seq".
    clock: a function returning seconds; ``time.perf_counter`` unless a test
        passes a fake one.
    window: how many recent updates the speed and time-left estimates use.

    Attributes for the caller: ``rate`` (items per second, recent) and
    ``elapsed`` (seconds since this Progress was made).
    """

    def __init__(self, total_steps, stream=None, every=10, start_step=0, unit="tok",
                 clock=time.perf_counter, window=20):
        for name, value, low in (("total_steps", total_steps, 1), ("every", every, 1),
                                 ("start_step", start_step, 0), ("window", window, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"Progress: {name} must be an integer >= {low}, got {value!r}")
        if start_step > total_steps:
            raise ValueError(f"Progress: start_step ({start_step}) is past total_steps ({total_steps})")
        self.total_steps = total_steps
        self.every = every
        self.unit = unit
        self._stream = stream
        self._clock = clock
        self._start = self._last_time = clock()
        self._last_step = start_step
        self._updates = 0
        self._recent = deque(maxlen=window)   # (steps, seconds, items or None) per update
        self._shown = ""                      # the line now on screen, on a terminal

    @property
    def elapsed(self):
        """Seconds since this Progress was made."""
        return self._clock() - self._start

    @property
    def rate(self):
        """Items per second over the recent updates that reported items (0.0 if none)."""
        counted = [(items, seconds) for _, seconds, items in self._recent if items is not None]
        seconds = sum(s for _, s in counted)
        return sum(i for i, _ in counted) / seconds if seconds > 0 else 0.0

    def seconds_left(self, step):
        """Estimated seconds to reach ``total_steps`` from ``step`` at the recent pace."""
        steps = sum(n for n, _, _ in self._recent)
        if step >= self.total_steps:
            return 0.0
        if steps == 0:
            return math.nan
        return (self.total_steps - step) * sum(s for _, s, _ in self._recent) / steps

    def update(self, step, loss, items=None, **metrics):
        """Record that training reached ``step`` (1 after the first step) with ``loss``.

        items: how many tokens / images / sequences were processed since the
        previous update (None: not counted). metrics: more values to show,
        e.g. ``val=1.40, lr=3e-4``. Returns the printed line, or None.
        """
        try:
            step = operator.index(step)                  # an int or a NumPy integer
        except TypeError:
            raise TypeError(f"Progress.update: step must be an integer, got {step!r}") from None
        if step <= self._last_step:
            raise ValueError(f"Progress.update: step {step} does not come after step {self._last_step}")
        if items is not None and items < 0:
            raise ValueError(f"Progress.update: items must be >= 0, got {items!r}")
        now = self._clock()
        self._recent.append((step - self._last_step, now - self._last_time, items))
        self._last_step, self._last_time = step, now
        self._updates += 1
        if not (self._updates == 1 or step % self.every == 0 or step >= self.total_steps):
            return None
        line = self.format_line(step, loss, now - self._start, metrics)
        self._show(line, final=step >= self.total_steps)
        return line

    def format_line(self, step, loss, elapsed, metrics):
        """The text of one progress line."""
        width = len(str(self.total_steps))
        parts = [f"step {step:>{width}}/{self.total_steps}", f"loss {float(loss):.4f}"]
        if any(items is not None for _, _, items in self._recent):
            parts.append(f"{_format_rate(self.rate)} {self.unit}/s")
        parts.append(f"elapsed {_format_duration(elapsed)}")
        parts.append(f"left {_format_duration(self.seconds_left(step))}")
        parts.extend(f"{name} {_format_value(value)}" for name, value in metrics.items())
        return " | ".join(parts)

    def message(self, text):
        """Print a line of text (a validation result, a sample) without breaking the display."""
        stream = self._out()
        if self._shown and _is_tty(stream):
            # clear the progress line, print the text, then draw the progress line again
            stream.write("\r" + " " * len(self._shown) + "\r" + f"{text}\n" + self._shown)
        else:
            stream.write(f"{text}\n")
        _flush(stream)

    def close(self):
        """End the progress line on a terminal (call it if training stops early)."""
        if self._shown:
            self._out().write("\n")
            _flush(self._out())
            self._shown = ""

    def _out(self):
        return sys.stdout if self._stream is None else self._stream

    def _show(self, line, final):
        stream = self._out()
        if _is_tty(stream):
            pad = " " * max(0, len(self._shown) - len(line))   # cover a longer previous line
            stream.write("\r" + line + pad + ("\n" if final else ""))
            self._shown = "" if final else line
        else:
            stream.write(line + "\n")
        _flush(stream)


def _format_duration(seconds):
    """42 -> '0m42s', 3725 -> '1h02m05s'; unknown -> '?'."""
    if not math.isfinite(seconds):
        return "?"
    total = int(round(max(seconds, 0.0)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _format_rate(rate):
    """12345.6 -> '12,346'; 42.31 -> '42.3'; 3.14159 -> '3.14'."""
    if rate >= 100:
        return f"{rate:,.0f}"
    return f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"


def _format_value(value):
    """Floats with 4 significant digits (1.4, 0.0003, 1.235e+05), the rest as str."""
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return str(int(value))
    return f"{number:.4g}"


def _is_tty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _flush(stream):
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()
