"""Where a GPT training step's time goes: matrix products, each fast kernel,
AdamW, clipping and Python, against the machine's measured sgemm speed.

    python benchmarks/profile_gpt.py [--preset default] [--steps 5] [--scaling] [--torch] [--products]

Every kernel the Modules call (``npfm.fast.pair``) is wrapped in a timer for
the run; a kernel's time includes the matrix products inside it (linear's
are almost all products; attention's about half). The effective GFLOP/s is
the step's floating-point work (6 x parameters x tokens for the products of
the weights, plus attention's 12 B T^2 C per layer for q k^T and P v, forward
and backward) divided by the step's time, beside a plain float32 sgemm of the
step's largest product shape.

``--torch`` profiles the same model in PyTorch eager as well
(``npfm.torch_twins.torch_gpt``, ``torch.profiler``): its own operations' time
per step, the matrix products (mm, bmm, addmm) summed; and ``--products``
times the step's weight products alone (every Linear's forward, dx and dW at
the step's shapes, back to back) in NumPy and in PyTorch, in turn: whether
the two BLAS libraries are at parity on the work both steps must do.

``--scaling`` asks which parts use the second core: steps run alternately on
one thread and on all of them (``npfm.fast.threads.set_num_threads`` and
OpenBLAS's own count), ``--steps`` rounds, and each part's median time on each
is printed with its speed-up. A part with a speed-up near 1 runs on one core
(Python between NumPy calls, a single-threaded ufunc); one well under the
number of threads is bound by memory or by its threads' hand-offs. The last
column is what the step would gain if that part scaled perfectly.
"""

import argparse
import collections
import os
import statistics
import sys
import time

import npfm  # noqa: F401  first: it sets OpenBLAS's thread timeout before NumPy loads
import numpy as np

import npfm.fast as fast  # noqa: E402
from npfm.models.gpt import GPT, preset  # noqa: E402
from npfm.nn import CrossEntropyLoss  # noqa: E402
from npfm.optim import AdamW, clip_grad_norm, param_groups  # noqa: E402

BATCH = {"default": 32, "large": 16, "tiny": 8}


def timed(fn, name, totals):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - t0
    return wrapper


def sgemm_gflops(M, K, N, repeat=5):
    a = np.random.default_rng(0).standard_normal((M, K)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((K, N)).astype(np.float32)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * M * K * N / best / 1e9


def scaling(step, totals, rounds):
    """Each part's median ms on one thread and on all, the two alternated round by round."""
    threads = fast.threads
    n = threads.num_threads()
    blas = threads._blas_threads()
    blas_n = blas[0]() if blas else None
    runs = {1: collections.defaultdict(list), n: collections.defaultdict(list)}
    try:
        for r in range(rounds):
            for k in ((1, n) if r % 2 == 0 else (n, 1)):
                threads.set_num_threads(k)
                if blas:
                    blas[1](1 if k == 1 else blas_n)
                step()                                           # warm-up at this count
                totals.clear()
                t0 = time.perf_counter()
                step()
                wall = time.perf_counter() - t0
                runs[k]["step"].append(wall)
                for name, seconds in totals.items():
                    runs[k][name].append(seconds)
                runs[k]["other: Python, residuals"].append(wall - sum(totals.values()))
    finally:
        threads.set_num_threads(n)
        if blas:
            blas[1](blas_n)
    median = statistics.median
    print(f"\n{'part':<28} {'1 thread':>9} {f'{n} threads':>10} {'speed-up':>9} {'gain if x' + str(n):>10}"
          f"   (ms, median of {rounds} rounds)")
    for name in sorted(runs[1], key=lambda k: -median(runs[1][k])):
        one, many = median(runs[1][name]) * 1e3, median(runs[n][name]) * 1e3
        print(f"{name:<28} {one:9.1f} {many:10.1f} {one / many:9.2f} {many - one / n:10.1f}")


PRODUCTS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")


def torch_profile(torch, model, ids, steps):
    """PyTorch's step at the same model, by operation (self time per step)."""
    from torch.profiler import ProfilerActivity, profile

    from bench_gpt import torch_step                         # the step bench_gpt.py times

    from npfm.torch_twins.torch_gpt import TorchGPT
    step = torch_step(torch, TorchGPT(model.config).load_npfm(model), ids)
    step()                                                   # warm up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - t0) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    ops = sorted(((e.key, e.self_cpu_time_total / 1e3 / steps) for e in prof.key_averages()),
                 key=lambda kv: -kv[1])
    profiled = sum(ms for _, ms in ops)
    products = sum(ms for name, ms in ops if name in PRODUCTS)
    print(f"\nPyTorch {torch.__version__} eager, {torch.get_num_threads()} threads: step {wall * 1e3:.1f} ms "
          f"({profiled:.1f} ms under the profiler)")
    print(f"{'operation (self time)':<40} {'ms/step':>9} {'share':>7}")
    print(f"{'matrix products (' + ', '.join(p[6:] for p in PRODUCTS) + ')':<40} {products:9.1f} "
          f"{products / profiled:7.1%}")
    for name, ms in [kv for kv in ops if kv[0] not in PRODUCTS][:12]:
        print(f"{name:<40} {ms:9.1f} {ms / profiled:7.1%}")


def weight_products(torch, model, B, T, rounds=10):
    """Every Linear's forward, dx and dW products at the step's shapes, NumPy and PyTorch in turn."""
    rng = np.random.default_rng(0)
    shapes = [p.data.shape for name, p in model.named_parameters()       # the blocks' weights
              if name.startswith("blocks.") and p.data.ndim == 2]
    shapes.append((model.config.dim, model.config.vocab_size))          # the LM head (tied)
    work = []
    for K, N in shapes:
        x = rng.standard_normal((B * T, K)).astype(np.float32)
        W = rng.standard_normal((K, N)).astype(np.float32)
        dy = rng.standard_normal((B * T, N)).astype(np.float32)
        work.append((x, W, dy, *(torch.from_numpy(a) for a in (x, W, dy))))

    def numpy_products():
        for x, W, dy, *_ in work:
            x @ W, dy @ W.T, x.T @ dy

    def torch_products():
        for *_, x, W, dy in work:
            x @ W, dy @ W.T, x.T @ dy

    numpy_products(), torch_products()
    ours, theirs = [], []
    for r in range(rounds):
        for fn, times in ((numpy_products, ours), (torch_products, theirs))[::1 if r % 2 == 0 else -1]:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    a, b = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    print(f"\nthe step's weight products alone ({len(shapes)} weights x forward, dx, dW, N = {B * T}), "
          f"median of {rounds} rounds in turn:")
    print(f"NumPy (OpenBLAS) {a:.1f} ms, PyTorch {b:.1f} ms: ratio {a / b:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=sorted(BATCH))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--scaling", action="store_true",
                        help="each part on one thread and on all, alternated (--steps rounds)")
    parser.add_argument("--torch", action="store_true",
                        help="profile the same model's step in PyTorch eager as well")
    parser.add_argument("--products", action="store_true",
                        help="time the step's weight products alone, NumPy against PyTorch")
    args = parser.parse_args()
    config = preset(args.preset)
    B, T, C, L = BATCH[args.preset], config.context, config.dim, config.n_layers
    model = GPT(config)
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (B, T + 1))
    opt = AdamW(param_groups(model, 0.1), lr=1e-4)
    loss = CrossEntropyLoss()
    totals = collections.defaultdict(float)
    originals = {}
    for name, module in fast.KERNELS.items():
        for part in ("forward", "backward"):
            attr = f"{name}_{part}"
            originals[(module, attr)] = getattr(module, attr)
            setattr(module, attr, timed(getattr(module, attr), f"{name} {part}", totals))
    step_opt = timed(opt.step, "AdamW", totals)
    clip = timed(clip_grad_norm, "clip_grad_norm", totals)

    def step():
        model.zero_grad()
        loss(model(ids[:, :-1]), ids[:, 1:])
        model.backward(loss.backward())
        clip(model.parameters(), 1.0)
        step_opt()

    if args.scaling:
        return scaling(step, totals, args.steps)
    step()                                                   # warm up
    totals.clear()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    wall = (time.perf_counter() - t0) / args.steps
    for (module, attr), fn in originals.items():
        setattr(module, attr, fn)

    n_params = model.num_parameters()
    flops = 6 * n_params * B * T + L * 12 * B * T * T * C
    print(f"GPT {args.preset}: B={B} T={T} C={C} L={L}, {n_params:,} parameters, "
          f"{flops / 1e9:.1f} GFLOP per step, threads {fast.threads.num_threads()}")
    print(f"step {wall * 1e3:.1f} ms: {flops / wall / 1e9:.0f} GFLOP/s effective; "
          f"sgemm ({B * T}x{C})@({C}x{4 * C}) at {sgemm_gflops(B * T, C, 4 * C):.0f} GFLOP/s")
    print(f"\n{'part':<28} {'ms/step':>9} {'share':>7}")
    accounted = 0.0
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        per_step = seconds / args.steps
        accounted += per_step
        print(f"{name:<28} {per_step * 1e3:9.1f} {per_step / wall:7.1%}")
    rest = wall - accounted
    print(f"{'other (Python, residuals, textbook pairs)':<28} {rest * 1e3:9.1f} {rest / wall:7.1%}")
    if args.torch or args.products:
        try:
            import torch
        except ImportError:
            raise SystemExit("profile_gpt: --torch and --products need torch (pip install torch)")
        if args.torch:
            torch_profile(torch, model, ids, args.steps)
        if args.products:
            weight_products(torch, model, B, T)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main()
