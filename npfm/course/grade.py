"""The grader: runs each test of an autograder folder on a student's copy.

This file needs only the standard library and NumPy (it is copied as it is
into OUT/autograder, where Gradescope runs it without npfm installed).

Each test runs in its own Python process, started with the student's copy
first on ``sys.path`` and nothing else of ours: the parent loads the hidden
inputs from the autograder's .npz files and writes only the arrays that test
needs to the child's stdin; the child never learns where they came from and
never sees an expected value. It sends back what the student's function
returned; the parent compares. So:

    an infinite loop          -> that test times out, the others still run
    an exception, sys.exit    -> 0 for that test, with what happened
    megabytes of print        -> 0 for that test (more than PRINT_LIMIT bytes)
    wrong shape, wrong dtype  -> 0 for that test, saying what was expected
    an input changed in place -> 0 for that test, naming the input

Tolerance policy: relative error (max |a - b| / max(max |a|, max |b|, 1e-8))
below the autograder's tolerance (1e-6) earns the test's points, else 0; the
error measured is in the feedback. A test judged by a property (``check``:
MLM masking's statistics, zero-shot invariances, the GPT training run's
validation loss below its target) earns its points when the property holds.
Public tests' feedback is complete; hidden tests show their name, points and
passed / failed only. A test with a time limit of its own (the training run)
gets the longer of it and the grader's.
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

PRINT_LIMIT = 1 << 20          # bytes a test may print
FILE_LIMIT = 16 << 20          # bytes the child may write to any file (its output included)
DEFAULT_TIMEOUT = 20.0

# Harnesses for methods (not pairs): they build a Module or an optimizer from the
# test's arrays and keyword arguments and return what is compared. The build runs
# them on the instructor's npfm, the child on the student's: the same text.
SCENARIOS = r'''
def make_module(kw):
    """The float64 Module a backward test runs, from the test's keyword arguments."""
    import numpy as np
    rng = np.random.default_rng(kw["seed"])
    if kw["module"] == "MultiHeadAttention":
        from npfm.nn.attention import MultiHeadAttention
        return MultiHeadAttention(kw["dim"], kw["n_heads"], causal=kw["causal"], rng=rng,
                                  dtype=np.float64)
    if kw["module"] == "GPT":
        from npfm.models.gpt import GPT, GPTConfig
        config = GPTConfig(vocab_size=kw["vocab_size"], context=kw["context"], dim=kw["dim"],
                           n_layers=kw["n_layers"], n_heads=kw["n_heads"], hidden=kw["hidden"])
        return GPT(config, seed=kw["seed"], dtype=np.float64)
    if kw["module"] == "MLMHead":
        from npfm.core import Parameter
        from npfm.models.bert import BertConfig, MLMHead
        config = BertConfig(vocab_size=kw["vocab_size"], dim=kw["dim"], n_heads=1, eps=1e-5)
        E = Parameter(rng.standard_normal((kw["vocab_size"], kw["dim"])))   # the token embedding
        return MLMHead(config, E, rng=rng, dtype=np.float64)
    from npfm.nn.block import TransformerBlock
    return TransformerBlock(kw["dim"], kw["n_heads"], kw["hidden"], causal=kw["causal"],
                            norm_first=kw["norm_first"], rng=rng, dtype=np.float64)


def has_dx(kw):
    """Whether the backward returns a gradient of the input (GPT's ids have none)."""
    return kw["module"] != "GPT"


def module_inputs(arrays, kw):
    """The forward's arguments: in_0, and MLMHead's select (in_1) when there is one."""
    return [arrays["in_0"]] + ([arrays["in_1"]] if "in_1" in arrays else [])


def module_backward(arrays, kw):
    """(dx, then each Parameter's grad after one forward and one backward). With
    grad_### arrays, each grad holds that value before the backward, which adds to it."""
    module = make_module(kw)
    params = [p for _, p in module.named_parameters()]
    for p, key in zip(params, sorted(k for k in arrays if k.startswith("param_"))):
        p.data[...] = arrays[key]
    module.forward(*module_inputs(arrays, kw))
    module.zero_grad()
    for p, key in zip(params, sorted(k for k in arrays if k.startswith("grad_"))):
        p.grad[...] = arrays[key]
    dx = module.backward(arrays["dy"])
    return ((dx,) if has_dx(kw) else ()) + tuple(p.grad for p in params)


block_backward = mha_backward = gpt_backward = mlm_head_backward = module_backward


def gpt_training(arrays, kw):
    """Train the tiny GPT with the copy's own code (its GPT, blocks, loss and AdamW)
    on the standard library in bytes: (validation loss, training losses)."""
    import numpy as np
    from npfm.data.corpus import load_corpus
    from npfm.models.gpt import GPT, preset
    from npfm.optim import AdamW
    from npfm.tasks.gpt import GPTTask, encode_corpus
    from npfm.tokenizers import ByteTokenizer
    tokenizer = ByteTokenizer()
    corpus = load_corpus("stdlib", max_bytes=kw["max_bytes"])
    train_ids, val_ids, _ = encode_corpus(tokenizer, corpus)
    model = GPT(preset(kw["preset"]), seed=kw["seed"])
    task = GPTTask(model, tokenizer, train_ids, val_ids, batch_size=kw["batch_size"],
                   eval_batches=kw["eval_batches"])
    optimizer = AdamW(model.parameters(), lr=kw["lr"], betas=tuple(kw["betas"]), weight_decay=0.0)
    rng = np.random.default_rng(kw["seed"])
    losses = []
    for _ in range(kw["steps"]):
        model.zero_grad()
        loss, _ = task.loss_and_backward(task.train_batch(rng))
        optimizer.step()
        losses.append(float(loss))
    return (np.array(task.evaluate()["val_loss"]), np.array(losses))


def zero_shot_properties(arrays, kw):
    """zero_shot_classify on the inputs; again with every embedding rescaled and the
    prompts reordered; and on its own class vectors, lengthened, as images."""
    import numpy as np
    from npfm.models.clip import zero_shot_classify
    images, texts, owner = arrays["in_0"], arrays["in_1"], arrays["in_2"]
    rng = np.random.default_rng(kw["seed"])
    predicted, W = zero_shot_classify(images, texts, owner)
    order = rng.permutation(len(owner))
    image_scale = rng.uniform(0.1, 10.0, size=(len(images), 1))
    text_scale = rng.uniform(0.1, 10.0, size=(len(texts), 1))
    again, W_again = zero_shot_classify(images * image_scale, (texts * text_scale)[order], owner[order])
    own, _ = zero_shot_classify(3.0 * np.asarray(W), texts, owner)
    return (predicted, W, again, W_again, own)


def adamw_steps(arrays, kw):
    from npfm.core import Parameter
    from npfm.optim import AdamW
    p = Parameter(arrays["in_0"].copy())
    opt = AdamW([p], lr=kw["lr"], betas=tuple(kw["betas"]), eps=kw["eps"],
                weight_decay=kw["weight_decay"])
    for g in arrays["in_1"]:
        p.grad[...] = g
        opt.step()
    return (p.data,)
'''

CHILD = r'''
import io, json, os, sys, traceback
result_pipe = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)                                     # the student's prints go to the log
import numpy as np

def send(meta, arrays=None):
    buf = io.BytesIO()
    np.savez(buf, **(arrays or {}))
    blob = json.dumps(meta).encode()
    result_pipe.write(len(blob).to_bytes(8, "little") + blob + buf.getvalue())
    result_pipe.flush()

data = sys.stdin.buffer.read()
n = int.from_bytes(data[:8], "little")
spec = json.loads(data[8:8 + n])
with np.load(io.BytesIO(data[8 + n:]), allow_pickle=False) as f:
    arrays = {key: f[key] for key in f.files}
sys.path.insert(0, spec["student"])
try:
    import importlib
    mod = importlib.import_module(spec["import"])
    where = os.path.realpath(mod.__file__)
    if not where.startswith(os.path.realpath(spec["student"]) + os.sep):
        raise ImportError("npfm was imported from " + where + ", not from the submission")
    inputs = [None if i in spec["none_inputs"] else arrays["in_%d" % i] for i in range(spec["n_inputs"])]
    originals = [None if x is None else x.copy() for x in inputs]
    kwargs = spec["kwargs"]
    if spec["kind"] == "scenario":
        harness = {}
        exec(spec["scenarios"], harness)
        out = harness[spec["function"]](arrays, kwargs)
    elif spec["kind"] == "weights":
        out = (getattr(mod, "attention_weights")(inputs[0], inputs[1], inputs[3]),)
    elif spec["kind"] in ("statistics", "call"):
        kwargs = dict(kwargs)
        for key, cls in spec["construct"].items():
            kwargs[key] = getattr(mod, cls)(**kwargs[key])
        if "rng_seed" in kwargs:
            kwargs["rng"] = np.random.default_rng(kwargs.pop("rng_seed"))
        out = getattr(mod, spec["function"])(*inputs, **kwargs)
        if not isinstance(out, tuple):
            out = (out,)
    else:
        pair = getattr(mod, spec["concept"] + "_forward")(*inputs, **kwargs)
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(spec["concept"] + "_forward should return (y, cache), got "
                            + type(pair).__name__)
        out = (pair[0],)
        if spec["kind"] == "backward":
            dy = arrays["dy"]
            dy_copy = dy.copy()
            out = getattr(mod, spec["concept"] + "_backward")(dy, pair[1])
            if not isinstance(out, tuple):
                out = (out,)
            if not np.array_equal(dy, dy_copy, equal_nan=True):
                raise ValueError("the backward changed dy in place")
    for i, (x, x0) in enumerate(zip(inputs, originals)):
        if x is not None and not np.array_equal(x, x0, equal_nan=True):
            raise ValueError("input %d (%s) was changed in place" % (i, spec["input_names"][i]))
    meta, results = {"status": "ok", "outputs": []}, {}
    for i, o in enumerate(out):
        if o is None:
            meta["outputs"].append("none")
        elif isinstance(o, (np.ndarray, np.generic)):
            meta["outputs"].append("array")
            results["out_%d" % i] = np.asarray(o)
        elif isinstance(o, float):
            meta["outputs"].append("python float")
            results["out_%d" % i] = np.asarray(o)
        else:
            meta["outputs"].append(type(o).__name__)
    send(meta, results)
except SystemExit as e:
    send({"status": "error", "message": "called sys.exit(%r)" % (e.code,)})
except BaseException as e:
    tb = traceback.extract_tb(e.__traceback__)
    here = [f for f in tb if f.filename.startswith(spec["student"])]
    line = (" (%s, line %d)" % (os.path.relpath(here[-1].filename, spec["student"]), here[-1].lineno)
            if here else "")
    send({"status": "error", "message": "%s: %s%s" % (type(e).__name__, e, line)})
'''


def rel_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-8))


def find_copy(folder):
    """The folder holding the submitted npfm/functional (the folder itself or one below)."""
    folder = os.path.abspath(folder)
    for root, dirs, _ in os.walk(folder):
        if os.path.isdir(os.path.join(root, "npfm", "functional")):
            return root
        if root[len(folder):].count(os.sep) >= 2:
            dirs[:] = []
    raise FileNotFoundError(f"no npfm/functional folder in {folder}")


def _limits():
    import resource
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_child(student, spec, arrays, timeout):
    """(meta, outputs, printed bytes) of one test run in a fresh process."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = json.dumps(dict(spec, student=student)).encode()
    payload = len(blob).to_bytes(8, "little") + blob + buf.getvalue()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NPFM_REFERENCE": "1",
           "OPENBLAS_NUM_THREADS": "1", "NPFM_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "HOME": tempfile.gettempdir()}
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.run([sys.executable, "-I", "-c", CHILD], input=payload,
                                  stdout=subprocess.PIPE, stderr=log, cwd=work, env=env,
                                  timeout=timeout, preexec_fn=_limits)
        except subprocess.TimeoutExpired:
            return {"status": "error", "message": f"timed out after {timeout:g} s"}, {}, 0
        printed = log.seek(0, os.SEEK_END)
        out = proc.stdout
    if printed > PRINT_LIMIT:
        return {"status": "error", "message": f"printed {printed / 1e6:.1f} MB "
                f"(the limit is {PRINT_LIMIT / 1e6:.1f} MB)"}, {}, printed
    if len(out) < 8:
        code = proc.returncode
        why = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        if code == -25:
            why = f"wrote more than {FILE_LIMIT >> 20} MB"
        return {"status": "error", "message": f"the test process {why} before returning"}, {}, printed
    n = int.from_bytes(out[:8], "little")
    meta = json.loads(out[8:8 + n])
    with np.load(io.BytesIO(out[8 + n:]), allow_pickle=False) as f:
        outputs = {k: f[k] for k in f.files}
    return meta, outputs, printed


def _outputs(meta, outputs, n, fn):
    kinds = meta["outputs"]
    if len(kinds) != n or any(k != "array" for k in kinds):
        raise AssertionError(f"{fn} should return {n} arrays, got {', '.join(kinds) or 'nothing'}")
    return [outputs[f"out_{i}"] for i in range(n)]


def _mlm_selection(test, arrays, meta, outputs):
    """mask_tokens: exactly max(1, round(p n)) of each row's n candidates chosen
    (labels = ids there, -100 elsewhere), no special position, ids kept elsewhere."""
    ids, special = arrays["in_0"], arrays["in_1"]
    new_ids, labels = _outputs(meta, outputs, 2, "mask_tokens")
    for name, a in (("input_ids", new_ids), ("labels", labels)):
        if a.shape != ids.shape:
            raise AssertionError(f"{name}: wrong shape {a.shape}, expected {ids.shape}")
    chosen = labels != -100
    if np.any(chosen & special):
        raise AssertionError(f"{int((chosen & special).sum())} special positions were chosen")
    if not np.array_equal(labels[chosen], ids[chosen]):
        raise AssertionError("labels at chosen positions are not the original ids")
    n = (~special).sum(axis=1)
    want = np.where(n > 0, np.maximum(1, np.round(n * test["kwargs"]["mask_prob"])), 0)
    wrong = int((chosen.sum(axis=1) != want).sum())
    if wrong:
        raise AssertionError(f"{wrong} of {len(n)} rows have a wrong number of chosen positions")
    if not np.array_equal(new_ids[~chosen], ids[~chosen]):
        raise AssertionError("input_ids changed at positions that were not chosen")
    return f"{int(chosen.sum())} positions chosen, {int(want.sum())} expected: ok"


def _mlm_replacement(test, arrays, meta, outputs):
    """mask_tokens: of the chosen positions, 80% / 10% / 10% within 5 standard errors;
    random replacements never [MASK] nor special, and spread over the vocabulary."""
    ids = arrays["in_0"]
    new_ids, labels = _outputs(meta, outputs, 2, "mask_tokens")
    if new_ids.shape != ids.shape or labels.shape != ids.shape:
        raise AssertionError(f"wrong shapes {new_ids.shape}, {labels.shape}, expected {ids.shape}")
    kw = test["kwargs"]
    chosen = labels != -100
    n = int(chosen.sum())
    if n == 0:
        raise AssertionError("no position was chosen")
    got, orig = new_ids[chosen], ids[chosen]
    masked = got == kw["mask_id"]
    kept = got == orig
    randomised = ~masked & ~kept
    if np.any(np.isin(got[randomised], kw["special_ids"])):
        raise AssertionError("a random replacement is a special token")
    allowed = kw["tokenizer_vocab_size"] - len(set(kw["special_ids"]) | {kw["mask_id"]})
    lines = []
    for label, share, want in (("[MASK]", masked.mean(), 0.8), ("random", randomised.mean(), 0.1 * (1 - 1 / allowed)),
                               ("kept", kept.mean(), 0.1 + 0.1 / allowed)):
        err = 5 * np.sqrt(want * (1 - want) / n)
        lines.append(f"{label}: {share:.3f} of {n} (expected {want:.3f} +- {err:.3f})")
        if abs(share - want) > err:
            raise AssertionError("; ".join(lines))
    if len(np.unique(got[randomised])) < min(20, randomised.sum() // 2):
        raise AssertionError("random replacements use too few distinct ids")
    return "\n".join(lines)


def _gpt_training(test, arrays, meta, outputs):
    """The training run: the validation loss after the stated steps below the target."""
    val, losses = _outputs(meta, outputs, 2, "the training run")
    kw = test["kwargs"]
    line = (f"validation loss {float(val):.3f} nats after {kw['steps']} steps "
            f"(training loss {losses[0]:.2f} -> {losses[-1]:.2f}); needed below {kw['target']}")
    if not (np.isfinite(val) and val < kw["target"]):
        raise AssertionError(line)
    return line + ": ok"


def _zero_shot_properties(test, arrays, meta, outputs):
    """Rescaling embeddings and reordering prompts change nothing; W has unit rows;
    each class vector (as an image) is classified as its own class."""
    predicted, W, again, W_again, own = _outputs(meta, outputs, 5, "zero_shot_classify")
    K = int(arrays["in_2"].max()) + 1
    N, E = arrays["in_0"].shape
    if predicted.shape != (N,) or W.shape != (K, E) or own.shape != (K,):
        raise AssertionError(f"wrong shapes: predicted {predicted.shape}, W {W.shape}; expected "
                             f"({N},) and ({K}, {E})")
    tolerance = test["tolerance"]
    lengths = rel_error(np.sqrt((W.astype(np.float64) ** 2).sum(axis=1)), np.ones(K))
    moved = rel_error(W_again, W)
    for bad, what in ((lengths >= tolerance, f"the class vectors' lengths differ from 1 by {lengths:.2e}"),
                      (moved >= tolerance, f"W changed by {moved:.2e} when the embeddings were "
                                           "rescaled and the prompts reordered"),
                      (not np.array_equal(again, predicted), "the predictions changed when the "
                                                             "embeddings were rescaled"),
                      (not np.array_equal(own, np.arange(K)), "a class vector, as an image, was "
                                                              "not classified as its own class")):
        if bad:
            raise AssertionError(what)
    return f"lengths {lengths:.1e}, W moved {moved:.1e}, predictions unchanged: ok"


STATISTICS = {"mlm_selection": _mlm_selection, "mlm_replacement": _mlm_replacement,
              "gpt_training": _gpt_training, "zero_shot_properties": _zero_shot_properties}


def judge(test, meta, outputs, expected, tolerance, arrays=None):
    """(passed, feedback) for one test's outputs against the expected arrays."""
    if meta["status"] != "ok":
        return False, meta["message"]
    if test.get("check"):
        try:
            return True, STATISTICS[test["check"]](dict(test, tolerance=tolerance), arrays, meta,
                                                   outputs)
        except AssertionError as e:
            return False, str(e)
    kinds = meta["outputs"]
    fn = test["function"]
    lines, ok = [], True
    for j, (index, want) in enumerate(expected):
        label = test["output_names"][j]
        if index >= len(kinds):
            return False, f"{fn} returned {len(kinds)} values, expected at least {index + 1}"
        kind = kinds[index]
        if want is None:
            if kind != "none":
                ok = False
                lines.append(f"{label}: expected None, got an array")
            continue
        if kind != "array":
            return False, f"{label}: expected a NumPy array, got {kind}"
        got = outputs[f"out_{index}"]
        if got.shape != want.shape:
            return False, f"{label}: wrong shape {got.shape}, expected {want.shape}"
        if got.dtype != want.dtype:
            return False, f"{label}: wrong dtype {got.dtype}, expected {want.dtype}"
        err = rel_error(got, want)
        good = err < tolerance
        ok &= good
        lines.append(f"{label}: relative error {err:.2e} ({'ok' if good else 'too large'}, "
                     f"tolerance {tolerance:g})")
        if not good and not test["hidden"]:
            lines.append(f"  expected {np.array2string(want.ravel()[:6], precision=5)} ..."
                         f"\n  got      {np.array2string(got.ravel()[:6], precision=5)} ...")
    return ok, "\n".join(lines)


def load_autograder(folder):
    with open(os.path.join(folder, "tests.json")) as f:
        return json.load(f)


def grade(student_dir, autograder, timeout=None, jobs=2):
    """Grade a student's copy: a list of Gradescope test dicts, in order, each
    also with ``passed`` and ``detail`` (the full feedback, for the instructor
    only: a hidden test's ``output`` is just passed / failed)."""
    config = load_autograder(autograder)
    student = find_copy(student_dir)
    timeout = timeout or config.get("timeout", DEFAULT_TIMEOUT)

    def one(test):
        with np.load(os.path.join(autograder, "data", test["data"]), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        send = {k: v for k, v in arrays.items() if not k.startswith("expected_")}
        expected = [(index, arrays.get(f"expected_{j}")) for j, index in enumerate(test["compare"])]
        spec = {k: test[k] for k in ("import", "concept", "kind", "n_inputs", "none_inputs",
                                     "kwargs", "input_names", "function", "construct")}
        if test["kind"] == "scenario":
            spec["scenarios"] = SCENARIOS
        limit = max(timeout, test.get("timeout", 0))         # a training run has its own
        meta, outputs, _ = run_child(student, spec, send, limit)
        passed, feedback = judge(test, meta, outputs, expected, config["tolerance"], arrays)
        shown = feedback if not test["hidden"] else ("passed" if passed else "failed")
        if not test["hidden"]:
            shown = f"inputs: {test['shapes']}\n{feedback}"
        return {"name": test["name"], "score": test["points"] if passed else 0.0,
                "max_score": test["points"], "output": shown, "visibility": test["visibility"],
                "passed": passed, "detail": feedback}

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, config["tests"]))


def results_json(results):
    """Gradescope's results.json: score and tests (name, score, max_score, output, visibility)."""
    tests = [{k: r[k] for k in ("name", "score", "max_score", "output", "visibility")} for r in results]
    return {"score": sum(r["score"] for r in results), "tests": tests,
            "output": f"{sum(r['passed'] for r in results)} of {len(results)} tests passed"}


def table(results):
    """The terminal table: one line a test, then the total."""
    width = max([len(r["name"]) for r in results] + [4])
    lines = [f"{'test':<{width}}  {'points':>11}  result"]
    for r in results:
        lines.append(f"{r['name']:<{width}}  {r['score']:>5g} / {r['max_score']:<3g}  "
                     f"{'PASS' if r['passed'] else 'FAIL'}")
        if not r["passed"] and r["visibility"] and r["output"] not in ("failed",):
            lines.extend("    " + line for line in r["output"].splitlines())
    total = sum(r["score"] for r in results)
    lines.append(f"{'total':<{width}}  {total:>5g} / {sum(r['max_score'] for r in results):<3g}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="grade", description="grade a student's npfm copy")
    parser.add_argument("student")
    parser.add_argument("--autograder", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--json")
    parser.add_argument("--timeout", type=float)
    args = parser.parse_args(argv)
    results = grade(args.student, args.autograder, args.timeout)
    print(table(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results_json(results), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
