"""The progress display, driven by a fake clock so every number is known."""

import io

import numpy as np
import pytest

from npfm.progress import Progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def run(progress, clock, steps, seconds_per_step=0.5, items=1000, **metrics):
    lines = []
    for step in steps:
        clock.now += seconds_per_step
        lines.append(progress.update(step, loss=2.0 / step, items=items, **metrics))
    return lines


def test_line_format():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(1000, stream=out, every=10, clock=clock)
    lines = run(progress, clock, range(1, 121), val=1.4, lr=3e-4)
    line = lines[-1]
    # 120 steps of 0.5 s: 60 s elapsed, 880 steps left at 0.5 s = 440 s, 2000 tok/s
    assert line == ("step  120/1000 | loss 0.0167 | 2,000 tok/s | elapsed 1m00s | "
                    "left 7m20s | val 1.4 | lr 0.0003")
    assert out.getvalue().splitlines()[-1] == line
    assert progress.rate == pytest.approx(2000.0)
    assert progress.elapsed == pytest.approx(60.0)


def test_every_first_and_last_step():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(25, stream=out, every=10, clock=clock)
    lines = run(progress, clock, range(1, 26))
    printed = [step for step, line in zip(range(1, 26), lines) if line is not None]
    assert printed == [1, 10, 20, 25]
    assert [ln.split("|")[0].strip() for ln in out.getvalue().splitlines()] == \
        ["step  1/25", "step 10/25", "step 20/25", "step 25/25"]
    assert "left 0m00s" in lines[-1]


def test_time_left_follows_the_recent_pace():
    clock = FakeClock()
    progress = Progress(100, stream=io.StringIO(), every=1, clock=clock, window=5)
    run(progress, clock, range(1, 11), seconds_per_step=10.0)     # a slow start
    line = run(progress, clock, range(11, 21), seconds_per_step=1.0)[-1]
    assert "left 1m20s" in line                                    # 80 steps at 1 s, not 10 s
    assert "elapsed 1m50s" in line


def test_resumed_run_and_units():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(1000, stream=out, every=100, start_step=500, unit="img", clock=clock)
    clock.now += 50.0
    line = progress.update(600, loss=0.5, items=3200)       # 100 steps in 50 s, 64 img/s
    assert line.startswith("step  600/1000 | loss 0.5000 | 64.0 img/s | elapsed 0m50s | left 3m20s")


def test_no_items_no_rate_and_hours():
    clock = FakeClock()
    progress = Progress(10_000, stream=io.StringIO(), every=1, clock=clock)
    clock.now += 3725.0
    line = progress.update(np.int64(1), loss=np.float32(3.0))
    assert "/s" not in line and progress.rate == 0.0
    assert "elapsed 1h02m05s" in line


def test_message_on_plain_stream_and_on_a_terminal():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(20, stream=out, every=10, clock=clock)
    run(progress, clock, range(1, 11))
    progress.message("val loss 1.23")
    assert out.getvalue().splitlines()[-1] == "val loss 1.23"
    assert "\r" not in out.getvalue()

    clock, term = FakeClock(), FakeTerminal()
    progress = Progress(20, stream=term, every=10, clock=clock)
    lines = run(progress, clock, range(1, 11))
    progress.message("val loss 1.23")
    text = term.getvalue()
    assert text.endswith("\rval loss 1.23\n" + lines[-1])        # the line is drawn again
    last = run(progress, clock, range(11, 21))[-1]
    assert term.getvalue().endswith("\r" + last + "\n")          # the last step ends the line
    assert term.getvalue().count("\n") == 2                      # the message and the last step
    progress.close()
    assert term.getvalue().count("\n") == 2                      # nothing left to close


def test_default_stream_is_stdout(capsys):
    clock = FakeClock()
    progress = Progress(5, every=5, clock=clock)
    run(progress, clock, range(1, 6))
    out = capsys.readouterr()
    assert "step 5/5" in out.out and out.err == ""


def test_bad_arguments():
    with pytest.raises(ValueError, match="total_steps"):
        Progress(0)
    with pytest.raises(ValueError, match="every"):
        Progress(10, every=0)
    with pytest.raises(ValueError, match="start_step"):
        Progress(10, start_step=11)
    clock = FakeClock()
    progress = Progress(10, stream=io.StringIO(), clock=clock)
    progress.update(3, 1.0)
    with pytest.raises(ValueError, match="does not come after"):
        progress.update(3, 1.0)
    with pytest.raises(TypeError, match="integer"):
        progress.update(4.5, 1.0)
