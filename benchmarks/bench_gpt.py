"""GPT speed: a training step (forward + backward + AdamW) at the default and
large presets, and generation tokens/s with and without the KV cache, beside
the same model in PyTorch eager (npfm.torch_twins.torch_gpt) in the same process
where torch is importable.

    python benchmarks/bench_gpt.py [--repeat 10] [--new-tokens 256] [--generation-only]

Ratios are npfm time / PyTorch time (lower is better); each training row is
followed by the step with the batch whole (no micro-batches, ``npfm/nn/data_parallel.py``)
timed in turn with the split step (its ratio is split / whole), and by the
textbook floor's time (``npfm.fast.reference()``: one step, after a warm-up one). For generation the table also gives the cache's speed-up over
recomputing the window.
"""

import argparse
import os
import sys
import time

import npfm  # noqa: F401  first: it sets OpenBLAS's thread timeout before NumPy loads
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_of_pair, row, torch_or_none  # noqa: E402

from npfm.nn import CrossEntropyLoss  # noqa: E402
from npfm.models.gpt import GPT, generate, preset  # noqa: E402
from npfm.optim import AdamW, param_groups  # noqa: E402
from npfm.fast.threads import num_threads  # noqa: E402
from npfm.nn import data_parallel  # noqa: E402

BATCH = {"default": 32, "large": 16}


def npfm_step(model, ids):
    opt = AdamW(param_groups(model, 0.1), lr=1e-4)
    loss = CrossEntropyLoss()

    def step():
        model.zero_grad()
        loss(model(ids[:, :-1]), ids[:, 1:])
        model.backward(loss.backward())
        opt.step()
    return step


def whole_batch(step):
    """``step`` with its batch run whole: no micro-batches (npfm/nn/data_parallel.py)."""
    def run():
        saved, data_parallel.MIN_TOKENS = data_parallel.MIN_TOKENS, 1 << 62
        try:
            step()
        finally:
            data_parallel.MIN_TOKENS = saved
    return run


def torch_step(torch, ref, ids):
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-4)
    x, y = torch.from_numpy(ids[:, :-1]), torch.from_numpy(ids[:, 1:])

    def step():
        opt.zero_grad(set_to_none=False)
        logits = ref(x)
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()
        opt.step()
    return step


def npfm_tokens_per_s(model, prompt, n, use_cache):
    t0 = time.perf_counter()
    generate(model, prompt, n, temperature=0, use_cache=use_cache)
    return n / (time.perf_counter() - t0)


def torch_tokens_per_s(torch, ref, prompt, n, context, use_cache):
    tokens = list(prompt)
    t0 = time.perf_counter()
    with torch.no_grad():
        caches, start = None, 0
        for _ in range(n):
            if len(tokens) - start > context:         # the same sliding window as npfm
                start, caches = len(tokens) - context // 2, None
            if use_cache:
                if caches is None:
                    caches = [[None, None] for _ in range(ref.config.n_layers)]
                    logits = ref(torch.tensor([tokens[start:]]), caches)[0, -1]
                else:
                    logits = ref(torch.tensor([tokens[-1:]]), caches)[0, -1]
            else:
                logits = ref(torch.tensor([tokens[start:]]))[0, -1]
            tokens.append(int(logits.argmax()))
    return n / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--presets", nargs="+", default=["default", "large"])
    parser.add_argument("--generation-only", action="store_true",
                        help="skip the training step; time generation only")
    args = parser.parse_args()
    torch = torch_or_none()
    if torch:
        from npfm.torch_twins.torch_gpt import TorchGPT
        print(f"PyTorch {torch.__version__} eager, {torch.get_num_threads()} threads; NumPy {np.__version__}")
    else:
        print("torch is not importable: npfm times only")
    print(f"npfm: {num_threads()} threads; OPENBLAS_THREAD_TIMEOUT="
          f"{os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset (28)')}")
    if args.generation_only:
        return generation(args, torch)
    rng = np.random.default_rng(0)
    print(f"\ntraining step (forward + backward + AdamW), float32, best of {args.repeat}")
    print(f"{'':<34} {'npfm':>12} {'PyTorch':>12} {'ratio':>7}")
    for name in args.presets:
        config = preset(name)
        B = BATCH[name]
        model = GPT(config)
        ids = rng.integers(0, config.vocab_size, size=(B, config.context + 1))
        ref_step = None
        if torch:
            ref_step = torch_step(torch, TorchGPT(config).load_npfm(model), ids)
        t_ours, t_ref = best_of_pair(npfm_step(model, ids), ref_step, args.repeat)
        label = f"{name}: B={B} T={config.context} C={config.dim} L={config.n_layers}"
        print(row(label, t_ours, t_ref), flush=True)
        step = npfm_step(model, ids)
        t_split, t_whole = best_of_pair(step, whole_batch(step), args.repeat)
        print(f"{'  micro-batches / batch whole':<34} {t_split * 1e3:9.1f} ms {t_whole * 1e3:9.1f} ms  "
              f"{t_split / t_whole:6.2f}x", flush=True)
        with npfm.fast.reference():                # the textbook floor: one step after a warm-up
            textbook_step = npfm_step(model, ids)
            textbook_step()
            t0 = time.perf_counter()
            textbook_step()
            t_textbook = time.perf_counter() - t0
        print(row("  textbook floor (--reference)", t_textbook, t_ref), flush=True)
    generation(args, torch)


def generation(args, torch):
    """Tokens/s of greedy generation with and without the KV cache, npfm and PyTorch."""
    if torch:
        from npfm.torch_twins.torch_gpt import TorchGPT
    rng = np.random.default_rng(1)                 # the prompts, whatever was timed before
    n = args.new_tokens
    print(f"\ngeneration of {n} new tokens after a 16-token prompt, greedy, tokens/s")
    print(f"{'':<34} {'npfm':>12} {'PyTorch':>12} {'cache speed-up (npfm)':>22}")
    for name in args.presets:
        config = preset(name)
        model = GPT(config)
        prompt = rng.integers(0, config.vocab_size, size=16)
        ref = TorchGPT(config).load_npfm(model) if torch else None
        # best of 3 rounds, the four runs of a round in turn (as best_of_pair)
        ours, theirs = {True: 0.0, False: 0.0}, {True: 0.0, False: 0.0}
        for _ in range(3):
            for use_cache in (True, False):
                ours[use_cache] = max(ours[use_cache], npfm_tokens_per_s(model, prompt, n, use_cache))
                if torch:
                    theirs[use_cache] = max(theirs[use_cache], torch_tokens_per_s(
                        torch, ref, prompt, n, config.context, use_cache))
        for use_cache in (True, False):
            label = f"{name}: {'KV cache' if use_cache else 'recompute'}"
            theirs_s = f"{theirs[use_cache]:9.0f} t/s" if torch else f"{'-':>12}"
            print(f"{label:<34} {ours[use_cache]:8.0f} t/s {theirs_s}", flush=True)
        print(f"{'':<34} {'':>12} {'':>12} {ours[True] / ours[False]:21.1f}x")


if __name__ == "__main__":
    main()
