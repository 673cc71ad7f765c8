"""The cost of a training step in the GPT-2 and the Llama layout of the same
preset (``npfm train gpt --arch gpt2|llama``), timed in turn in one process.

    python benchmarks/bench_arch.py [--preset default] [--rounds 8] [--steps 5]

Each round times ``--steps`` consecutive training steps (forward + backward +
AdamW, float32, B = 32) of one layout, then of the other, the order swapped
from one round to the next: a machine that slows down or speeds up during the
run slows both alike, so each round's ratio (llama time / GPT-2 time) is fair
even when the absolute times drift. The table gives every round, then the
median ratio and the spread (lowest, highest), in wall-clock time and in the
process's CPU time (which, on one thread, other jobs on the machine barely
move). The number of GPT-2 steps that take the time of N llama steps is N
times the ratio.
"""

import argparse
import os
import sys
import time

import npfm  # noqa: F401  first: it sets OpenBLAS's thread timeout before NumPy loads
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_gpt import npfm_step  # noqa: E402

from npfm.fast.threads import num_threads  # noqa: E402
from npfm.models.gpt import GPT, preset, with_arch  # noqa: E402

BATCH = 32
ARCHS = ("gpt2", "llama")


def seconds_per_step(step, steps):
    """(wall-clock, CPU) seconds per step. With one thread the CPU time is the
    work itself: it barely moves when other jobs take turns on the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def summary(name, ratios):
    ratios = np.array(ratios)
    return (f"llama / GPT-2 {name}: median {np.median(ratios):.3f}, lowest {ratios.min():.3f}, "
            f"highest {ratios.max():.3f} over {len(ratios)} rounds")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=["default", "large", "tiny"])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="training steps per layout per round")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    steps = {}
    for arch in ARCHS:
        config = with_arch(preset(args.preset), arch)
        model = GPT(config, seed=0)
        ids = rng.integers(0, config.vocab_size, size=(BATCH, config.context + 1))
        steps[arch] = npfm_step(model, ids)
        steps[arch]()                                   # warm-up: buffers, BLAS
        print(f"{arch}: {model.num_parameters():,} parameters")
    print(f"npfm: {num_threads()} threads; B={BATCH}, T={config.context}, preset {args.preset}; "
          f"{args.rounds} rounds of {args.steps} steps per layout, in turn")
    print(f"{'':>12} {'wall-clock s/step':^29} {'CPU s/step (one thread)':^29}")
    print(f"{'round':>5} {'first':>6} {'GPT-2':>8} {'llama':>8} {'ratio':>7}  "
          f"{'GPT-2':>8} {'llama':>8} {'ratio':>7}")
    wall_ratios, cpu_ratios = [], []
    for r in range(args.rounds):
        order = ARCHS if r % 2 == 0 else ARCHS[::-1]
        t = {arch: seconds_per_step(steps[arch], args.steps) for arch in order}
        wall_ratios.append(t["llama"][0] / t["gpt2"][0])
        cpu_ratios.append(t["llama"][1] / t["gpt2"][1])
        print(f"{r + 1:>5} {order[0]:>6} {t['gpt2'][0]:8.3f} {t['llama'][0]:8.3f} "
              f"{wall_ratios[-1]:7.3f}  {t['gpt2'][1]:8.3f} {t['llama'][1]:8.3f} "
              f"{cpu_ratios[-1]:7.3f}", flush=True)
    print(summary("wall-clock time", wall_ratios))
    print(summary("CPU time", cpu_ratios))

if __name__ == "__main__":
    main()
