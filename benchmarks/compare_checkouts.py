"""This checkout's npfm against an older one, timed in turn in one process.

    git worktree add /tmp/npfm-0.1 f1b4568         # any older commit
    python benchmarks/compare_checkouts.py /tmp/npfm-0.1 [--rounds 12] [--new-tokens 256]

"Did this change lose speed?" is a question about two versions of npfm on
the same machine at the same moment. Two runs of bench_gpt.py an hour apart
cannot answer it: on a shared machine an absolute time drifts 2-3x from hour
to hour, and even the ratio against PyTorch moves by 5-10% between runs. So
the older checkout's package is copied under another name (``npfm_before``,
its imports of itself renamed), both are imported into this process, and each
measurement alternates between them, round after round, the order swapped
each round: a change of load touches both alike. The table gives each side's
median over the rounds and the median of the rounds' ratios (this / before,
each round's pair taken back to back: below 1 is faster for a step, above 1 is
more tokens per second for generation), with the middle half of those ratios
(their quartiles) to show how far one round's noise reaches.

Measured: a GPT training step (forward, backward, AdamW) at the default and
large presets, one causal TransformerBlock's forward + backward at each step's
shape, and greedy generation of ``--new-tokens`` tokens with the KV
cache, each version with its own fastest kernels. Only the API both versions
share is used (``models.gpt.GPT, generate, preset``, ``optim.AdamW,
param_groups``, ``nn.TransformerBlock``, the cross-entropy pair).
"""

import argparse
import importlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

import npfm  # noqa: F401  first: it sets OpenBLAS's thread timeout before NumPy loads
import numpy as np

BATCH = {"default": 32, "large": 16}
PACKAGE = "npfm_before"


def load_checkout(checkout, into):
    """The npfm package of ``checkout`` imported as ``npfm_before`` (a renamed copy in ``into``)."""
    source = os.path.join(checkout, "npfm")
    if not os.path.isfile(os.path.join(source, "__init__.py")):
        raise SystemExit(f"compare_checkouts: {checkout} holds no npfm package (no npfm/__init__.py)")
    target = os.path.join(into, PACKAGE)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    own_name = re.compile(r"^(\s*)(from|import) npfm(?=[.\s])", re.MULTILINE)
    for folder, _, files in os.walk(target):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                with open(path, "w", encoding="utf-8") as f:
                    f.write(own_name.sub(rf"\1\2 {PACKAGE}", text))
    sys.path.insert(0, into)
    return importlib.import_module(PACKAGE)


class Version:
    """One npfm: its GPT, generate, AdamW and the loss its models train with."""

    def __init__(self, package, label):
        self.label = label
        gpt = importlib.import_module(f"{package}.models.gpt")
        optim = importlib.import_module(f"{package}.optim")
        self.GPT, self.generate, self.preset = gpt.GPT, gpt.generate, gpt.preset
        self.AdamW, self.param_groups = optim.AdamW, optim.param_groups
        nn = importlib.import_module(f"{package}.nn")
        functional = importlib.import_module(f"{package}.functional")
        # the Module runs the fast floor's kernel where there is one; npfm 0.1 has only the pair
        self.loss = getattr(nn, "CrossEntropyLoss", None)
        self.TransformerBlock = nn.TransformerBlock
        self.pair = functional.cross_entropy_forward, functional.cross_entropy_backward

    def step(self, name, ids):
        model = self.GPT(self.preset(name))
        opt = self.AdamW(self.param_groups(model, 0.1), lr=1e-4)
        x, y = ids[:, :-1], ids[:, 1:]
        if self.loss is not None:
            loss = self.loss()

            def step():
                model.zero_grad()
                loss(model(x), y)
                model.backward(loss.backward())
                opt.step()
        else:
            forward, backward = self.pair

            def step():
                model.zero_grad()
                _, cache = forward(model(x), y)
                model.backward(backward(1.0, cache))
                opt.step()
        return step

    def block(self, name, B):
        """A causal pre-LN TransformerBlock's forward + backward at the preset's step shape."""
        config = self.preset(name)
        C, T = config.dim, config.context
        block = self.TransformerBlock(C, config.n_heads, 4 * C, causal=True, rng=np.random.default_rng(1))
        rng = np.random.default_rng(2)
        x, dy = (rng.standard_normal((B, T, C)).astype(np.float32) for _ in range(2))

        def step():
            block(x)
            block.backward(dy)
        return step

    def generation(self, name, n):
        model = self.GPT(self.preset(name))
        prompt = list(range(16))

        def run():
            self.generate(model, prompt, n, temperature=0, use_cache=True)
        return run


def in_turn(a, b, rounds):
    """Seconds of a() and of b() over ``rounds`` rounds, the order swapped each round."""
    a(), b()                                                   # warm-up
    times = ([], [])
    for r in range(rounds):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            (a, b)[i]()
            times[i].append(time.perf_counter() - t0)
    return times


def paired(ours, theirs, invert=False):
    """Median and quartiles of the rounds' ratios ours / theirs (theirs / ours if invert)."""
    ratios = sorted((b / a) if invert else (a / b) for a, b in zip(ours, theirs))
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return f"{median:8.3f}x  [{q1:.3f}, {q3:.3f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", help="an older checkout of npfm (a folder holding npfm/)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--presets", nargs="+", default=["default", "large"], choices=sorted(BATCH))
    args = parser.parse_args()
    if args.rounds < 1 or args.new_tokens < 1:
        raise SystemExit("compare_checkouts: --rounds and --new-tokens must be positive")
    with tempfile.TemporaryDirectory() as into:
        before = load_checkout(os.path.abspath(args.checkout), into)
        here, then = Version("npfm", f"this ({npfm.__version__})"), \
            Version(PACKAGE, f"before ({getattr(before, '__version__', '?')})")
        print(f"{here.label} against {then.label} from {args.checkout}; NumPy {np.__version__}; "
              f"median of {args.rounds} rounds, in turn")
        print(f"{'':<40} {'this':>12} {'before':>12}  this/before [quartiles]")
        rng = np.random.default_rng(0)
        for name in args.presets:
            ids = rng.integers(0, 256, size=(BATCH[name], here.preset(name).context + 1))
            ours, theirs = in_turn(here.step(name, ids), then.step(name, ids), args.rounds)
            a, b = statistics.median(ours), statistics.median(theirs)
            print(f"{'training step, ' + name:<40} {a * 1e3:9.1f} ms {b * 1e3:9.1f} ms "
                  f"{paired(ours, theirs)}", flush=True)
            ours, theirs = in_turn(here.block(name, BATCH[name]), then.block(name, BATCH[name]),
                                   args.rounds)
            a, b = statistics.median(ours), statistics.median(theirs)
            print(f"{'  its TransformerBlock, fwd + bwd':<40} {a * 1e3:9.1f} ms {b * 1e3:9.1f} ms "
                  f"{paired(ours, theirs)}", flush=True)
        for name in args.presets:
            n = args.new_tokens
            ours, theirs = in_turn(here.generation(name, n), then.generation(name, n), args.rounds)
            a, b = n / statistics.median(ours), n / statistics.median(theirs)
            print(f"{'KV-cache generation, ' + name + f', {n} tokens':<40} {a:9.0f} t/s {b:9.0f} t/s "
                  f"{paired(ours, theirs, invert=True)}", flush=True)


if __name__ == "__main__":
    main()
