'''The text of the files the build writes into the student copy.'''

COURSEWORK = '''"""Coursework helpers: save a notebook cell's function into your copy, run the public checks.

    coursework.save(layernorm_backward)   write it into npfm/functional/layernorm.py and use it now
    coursework.check(1)                   assignment 1's public checks, printed as a table

The public checks compare your backward with central differences of your own
forward (npfm.gradcheck) on public shapes, and test properties any correct
forward has. The grader also compares your forward with reference outputs on
hidden inputs, and your gradients on hidden shapes.
"""

import ast
import importlib
import inspect
import os
import sys
import textwrap

import numpy as np

import npfm.functional
from npfm.gradcheck import check_pair

ASSIGNMENTS = {}
TOLERANCE = 1e-6
TRAINING = {}                  # the graded training run of assignment 3, as the grader runs it
SCENARIOS = ""                 # the grader's harnesses of methods (they hold no solution)
HERE = os.path.dirname(os.path.abspath(__file__))


def _module_of(name):
    for module in ("linear", "activations", "layernorm", "softmax", "cross_entropy",
                   "embedding", "attention", "l2_normalize", "clip_loss", "../data.mlm",
                   "../tokenizers.vq", "../models.dalle", "../models.clip"):
        where = "npfm." + module[3:] if module.startswith("../") else "npfm.functional." + module
        mod = importlib.import_module(where)
        if hasattr(mod, name):
            return mod
    raise ValueError(name + " is not a function of npfm.functional")


def save(fn, cls=None):
    """Write ``fn`` (defined in a notebook cell) over its stub in your copy, and use it now.
    A method names its class: save(backward, TransformerBlock)."""
    mod = sys.modules[cls.__module__] if cls is not None else _module_of(fn.__name__)
    source = textwrap.dedent(inspect.getsource(fn))
    source = "".join(line for line in source.splitlines(keepends=True)     # nbgrader's markers
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    source = source if source.endswith("\\n") else source + "\\n"
    path = mod.__file__
    text = open(path).read()
    scope = ast.parse(text)
    if cls is not None:
        scope = next(n for n in scope.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    node = next(n for n in scope.body if isinstance(n, ast.FunctionDef) and n.name == fn.__name__)
    indent = " " * node.col_offset
    lines = text.splitlines(keepends=True)
    lines[node.lineno - 1:node.end_lineno] = [textwrap.indent(source, indent)]
    with open(path, "w") as f:
        f.write("".join(lines))
    tree = ast.parse(source)
    ast.increment_lineno(tree, node.lineno - 1)             # tracebacks point into the file
    defined = {}
    exec(compile(tree, path, "exec"), mod.__dict__, defined)  # its globals: the module's
    if cls is not None:
        setattr(cls, fn.__name__, defined[fn.__name__])
        print("saved " + cls.__name__ + "." + fn.__name__ + " into " + os.path.relpath(path, HERE))
        return
    stub = getattr(mod, fn.__name__)
    setattr(mod, fn.__name__, defined[fn.__name__])
    for name, other in list(sys.modules.items()):          # every module that imported the stub
        if name.split(".")[0] == "npfm" and getattr(other, fn.__name__, None) is stub:
            setattr(other, fn.__name__, defined[fn.__name__])
    print("saved " + fn.__name__ + " into " + os.path.relpath(path, HERE))


def _f(name):
    return getattr(npfm.functional, name)


def _pair(concept):
    return (lambda *a, **k: _f(concept + "_forward")(*a, **k),
            lambda *a, **k: _f(concept + "_backward")(*a, **k))


def _gradcheck(concept, inputs, **kwargs):
    errors = check_pair(*_pair(concept), inputs, **kwargs)
    return max(errors.values()) if errors else 0.0


def _rng():
    return np.random.default_rng(0)


def c_linear():
    r = _rng()
    yield "linear_backward: (2, 3, 5) @ (5, 4) + (4,)", _gradcheck(
        "linear", [r.standard_normal((2, 3, 5)), r.standard_normal((5, 4)), r.standard_normal(4)])
    y, _ = _f("linear_forward")(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4))
    yield "linear_forward: ones @ ones is 3", float(np.abs(y - 3).max())


def c_relu():
    x = _rng().standard_normal((3, 4))
    x = np.where(np.abs(x) < 1e-2, 0.5, x)
    yield "relu_backward: (3, 4)", _gradcheck("relu", [x])
    y, _ = _f("relu_forward")(np.array([-1.0, 2.0]))
    yield "relu_forward: relu([-1, 2]) = [0, 2]", float(np.abs(y - [0, 2]).max())


def c_gelu():
    r = _rng()
    for form in ("tanh", "none"):
        yield "gelu_backward: (2, 5), approximate=" + repr(form), _gradcheck(
            "gelu", [r.standard_normal((2, 5)) * 2], approximate=form)
    y, _ = _f("gelu_forward")(np.array([0.0, 20.0, -20.0]), approximate="none")
    yield "gelu_forward: gelu(0) = 0, gelu(20) = 20, gelu(-20) = 0", float(np.abs(y - [0, 20, 0]).max())


def c_layernorm():
    r = _rng()
    yield "layernorm_backward: (2, 3, 6)", _gradcheck(
        "layernorm", [r.standard_normal((2, 3, 6)), r.standard_normal(6), r.standard_normal(6)])
    y, _ = _f("layernorm_forward")(r.standard_normal((4, 8)) * 3 + 2, np.ones(8), np.zeros(8))
    yield "layernorm_forward: mean 0, variance 1 per row", float(
        max(np.abs(y.mean(-1)).max(), np.abs(y.var(-1) - 1).max() * 1e-2))


def c_softmax():
    r = _rng()
    yield "softmax_backward: (3, 5)", _gradcheck("softmax", [r.standard_normal((3, 5))])
    y, _ = _f("softmax_forward")(r.standard_normal((3, 5)) * 1000)
    bad = np.inf if not np.all(np.isfinite(y)) else float(np.abs(y.sum(-1) - 1).max())
    yield "softmax_forward: logits of size 1000, rows sum to 1", bad


def c_log_softmax():
    x = _rng().standard_normal((3, 5)) * 1000
    y = _f("log_softmax")(x)
    bad = np.inf if not np.all(np.isfinite(y)) else float(np.abs(np.exp(y).sum(-1) - 1).max())
    yield "log_softmax: logits of size 1000, exp(rows) sum to 1", bad


def c_cross_entropy():
    r = _rng()
    targets = np.array([[1, -100, 3], [0, 2, -100]])
    yield "cross_entropy_backward: (2, 3, 4) with ignore_index", _gradcheck(
        "cross_entropy", [r.standard_normal((2, 3, 4)), targets], dy=np.asarray(0.7))
    loss, _ = _f("cross_entropy_forward")(np.zeros((3, 5)), np.array([0, 1, 4]))
    yield "cross_entropy_forward: zero logits give log V", abs(float(loss) - np.log(5))


def c_embedding():
    r = _rng()
    ids = np.array([[1, 1, 2], [1, 0, 2]])
    yield "embedding_backward: repeated ids", _gradcheck("embedding", [ids, r.standard_normal((4, 3))])
    W = r.standard_normal((4, 3))
    y, _ = _f("embedding_forward")(ids, W)
    yield "embedding_forward: rows of W", float(np.abs(y - W[ids]).max())


def c_attention():
    r = _rng()
    q, k, v = (r.standard_normal((1, 2, 4, 3)) for _ in range(3))
    mask = np.tri(4, 4, dtype=bool)
    yield "attention_backward: (1, 2, 4, 3), causal mask", _gradcheck("attention", [q, k, v, mask])
    y1, _ = _f("attention_forward")(q, k, v, mask)
    k2, v2 = k.copy(), v.copy()
    k2[..., -1, :] += 5
    v2[..., -1, :] -= 5
    y2, _ = _f("attention_forward")(q, k2, v2, mask)
    yield "attention_forward: causal output ignores the last token", float(np.abs(y1[..., :-1, :] - y2[..., :-1, :]).max())
    none = np.zeros((4, 4), bool)
    y3, _ = _f("attention_forward")(q, k, v, none)
    yield "attention_forward: fully masked rows give zeros", float(np.abs(y3).max()) if np.all(np.isfinite(y3)) else np.inf


def c_l2_normalize():
    x = _rng().standard_normal((3, 5)) * 3
    yield "l2_normalize_backward: (3, 5)", _gradcheck("l2_normalize", [x])
    u, _ = _f("l2_normalize_forward")(x)
    yield "l2_normalize_forward: unit rows", float(np.abs((u * u).sum(-1) - 1).max())


def c_clip_loss():
    r = _rng()
    x, y = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    yield "clip_loss_backward: B = 4, E = 3, with logit_scale", _gradcheck(
        "clip_loss", [x, y, np.array([1.3])], dy=np.asarray(0.8))
    loss, _ = _f("clip_loss_forward")(np.eye(4), np.eye(4)[[1, 2, 3, 0]], np.array([0.0]))
    expected = -np.log(1 / (3 + np.e)) * 1.0
    yield "clip_loss_forward: permuted unit vectors, scale 1", abs(float(loss) - expected)


def c_mask_tokens():
    from npfm.data import mlm
    r = _rng()
    ids = r.integers(5, 300, size=(64, 40))
    ids[:, 0], ids[:, -1] = 1, 2
    special = np.isin(ids, [0, 1, 2, 3])
    new, labels = mlm.mask_tokens(ids, special, 300, 4, np.random.default_rng(1), 0.15,
                                  special_ids=[0, 1, 2, 3])
    chosen = labels != -100
    yield "mask_tokens: 15% of 38 candidates = 6 chosen per row", float(np.abs(chosen.sum(1) - 6).max())
    yield "mask_tokens: no special position chosen", float((chosen & special).sum())
    yield "mask_tokens: labels are the original ids", float((labels[chosen] != ids[chosen]).sum())
    share = float((new[chosen] == 4).mean())
    yield "mask_tokens: about 80% of the chosen become [MASK] (within 0.06)", max(0.0, abs(share - 0.8) - 0.06)


def c_squared_distances():
    from npfm.tokenizers import vq
    X = _rng().standard_normal((6, 3))
    d2 = vq.squared_distances(X, X)
    yield "squared_distances: 0 on the diagonal, symmetric, >= 0", float(
        max(np.abs(np.diag(d2)).max(), np.abs(d2 - d2.T).max(), -min(d2.min(), 0.0)))


def c_nearest_code():
    from npfm.tokenizers import vq
    X = _rng().standard_normal((20, 3))
    ids, d2 = vq.nearest_code(X, X[:5], chunk=3)
    yield "nearest_code: the first 5 points are their own codes", float(
        np.abs(ids[:5] - np.arange(5)).max() + np.abs(d2[:5]).max())


def c_kmeans():
    from npfm.tokenizers import vq
    r = _rng()
    X = np.concatenate([r.standard_normal((50, 2)) * 0.1 + 10, r.standard_normal((50, 2)) * 0.1 - 10])
    codes, history = vq.kmeans(X, 2, iters=5, init=X[[0, 99]])
    means = np.stack([X[:50].mean(0), X[50:].mean(0)])
    yield "kmeans: two far blobs, their means", float(np.abs(codes - means).max())
    yield "kmeans: the inertia never grows", float(max(0.0, max(np.diff(history), default=0.0)))


def c_logits_mask():
    from npfm.models import dalle
    c = dalle.DALLEConfig(text_vocab=10, text_len=4, n_codes=8, image_size=4, patch=2, dim=16,
                          n_layers=1, n_heads=2)
    m = dalle.logits_mask(c)
    yield "logits_mask: (context, vocab) booleans", float(m.shape != (c.context, c.vocab_size) or m.dtype != bool)
    yield "logits_mask: a text position allows the text ids only", float(abs(int(m[0].sum()) - 10) + int(m[0, 10:].sum()))
    yield "logits_mask: an image position allows the codes only", float(abs(int(m[-1].sum()) - 8) + int(m[-1, :c.code_offset].sum()))


def c_block_backward():
    from npfm.gradcheck import check_module
    from npfm.nn.block import TransformerBlock
    x = _rng().standard_normal((2, 3, 8))
    for norm_first in (True, False):
        block = TransformerBlock(8, 2, 12, causal=True, norm_first=norm_first, dtype=np.float64)
        report = check_module(block, x, seed=1)
        yield f"TransformerBlock.backward: norm_first={norm_first}, every Parameter", report.max_error


def c_mha_backward():
    from npfm.gradcheck import check_module
    from npfm.nn.attention import MultiHeadAttention
    x = _rng().standard_normal((2, 3, 6))
    report = check_module(MultiHeadAttention(6, 2, causal=True, dtype=np.float64), x, seed=1)
    yield "MultiHeadAttention.backward: causal, every Parameter", report.max_error


def c_adamw_steps():
    from npfm.core import Parameter
    from npfm.optim import AdamW
    w0, g = np.array([1.0, -2.0, 3.0]), np.array([0.5, -0.1, 2.0])
    p = Parameter(w0.copy())
    p.grad[...] = g
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    expected = w0 * (1 - 0.1 * 0.5) - 0.1 * np.sign(g)      # step 1: m^ / sqrt(v^) = sign(g)
    yield "AdamW.update: the first step moves each weight by lr, after decay", float(
        np.abs(p.data - expected).max() / 1e-1)


def _adds_up(module, inputs, dy):
    """Relative error of a second backward's grads against twice the first's (each
    backward adds into p.grad: a tied weight's two shares, micro-batches)."""
    module.forward(*inputs)
    module.zero_grad()
    module.backward(dy)
    once = [p.grad.copy() for p in module.parameters()]
    module.backward(dy)
    return max(float(np.abs(p.grad - 2 * g).max() / max(np.abs(g).max(), 1e-12))
               for p, g in zip(module.parameters(), once))


def c_gpt_backward():
    from npfm.gradcheck import check_module
    from npfm.models.gpt import GPT, GPTConfig
    config = GPTConfig(vocab_size=11, context=5, dim=8, n_layers=1, n_heads=2, hidden=12)
    ids = _rng().integers(0, 11, size=(2, 4))
    report = check_module(GPT(config, seed=1, dtype=np.float64), ids, seed=1)
    yield "GPT.backward: one layer, tied head, every Parameter", report.max_error
    model = GPT(config, seed=2, dtype=np.float64)
    yield "GPT.backward: adds into the grads (twice gives double)", _adds_up(
        model, [ids], _rng().standard_normal((2, 4, 11)))


def c_gpt_training():
    harness = {}
    exec(SCENARIOS, harness)
    val, losses = harness["gpt_training"]({}, dict(TRAINING, seed=0))
    yield (f"GPT.backward: training run, validation loss {float(val):.3f} after "
           f"{TRAINING['steps']} steps (below {TRAINING['target']})"), max(0.0, float(val) - TRAINING["target"])


def c_mlm_head_backward():
    from npfm.core import Parameter
    from npfm.gradcheck import check_module
    from npfm.models.bert import BertConfig, MLMHead
    r = _rng()
    config = BertConfig(vocab_size=9, dim=6, n_heads=1, eps=1e-5)
    h, select = r.standard_normal((2, 3, 6)), np.array([[True, False, True], [False, True, True]])
    head = MLMHead(config, Parameter(r.standard_normal((9, 6))), rng=r, dtype=np.float64)
    for p in head.parameters():
        p.data += 0.3 * r.standard_normal(p.shape)
    for chosen in (None, select):
        yield f"MLMHead.backward: select {'None' if chosen is None else '(B, T)'}, dh and every Parameter", \
            check_module(head, h, chosen, seed=1).max_error
    yield "MLMHead.backward: adds into the grads (twice gives double)", _adds_up(
        head, [h, select], r.standard_normal((4, 9)))


def c_zero_shot_classify():
    from npfm.models.clip import zero_shot_classify
    texts = np.array([[10.0, 0.0], [0.0, 0.1], [0.0, 1.0]])    # class 0: two prompts of lengths 10, 0.1
    predicted, W = zero_shot_classify(np.array([[3.0, 1.0], [1.0, 3.0]]), texts, np.array([0, 0, 1]))
    yield "zero_shot_classify: class 0's vector is the unit vectors' mean direction", float(
        np.abs(W - [[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 1.0]]).max())
    yield "zero_shot_classify: argmax of the cosine similarities", float(np.abs(predicted - [0, 1]).max())


def c_zero_shot_properties():
    from npfm.models.clip import zero_shot_classify
    r = _rng()
    images, texts, owner = r.standard_normal((8, 4)), r.standard_normal((7, 4)), np.array([0, 1, 2, 0, 1, 2, 2])
    predicted, W = zero_shot_classify(images, texts, owner)
    again, W2 = zero_shot_classify(images * 5, texts * r.uniform(0.1, 10, (7, 1)), owner)
    yield "zero_shot_classify: unit class vectors", float(np.abs(np.linalg.norm(W, axis=1) - 1).max())
    yield "zero_shot_classify: unchanged when the embeddings are rescaled", float(
        np.abs(W2 - W).max() + np.abs(again - predicted).max())
    own, _ = zero_shot_classify(W, texts, owner)
    yield "zero_shot_classify: each class vector is classified as its class", float(np.abs(own - np.arange(3)).max())


CHECKS = {"linear": c_linear, "relu": c_relu, "gelu": c_gelu, "layernorm": c_layernorm,
          "softmax": c_softmax, "log_softmax": c_log_softmax, "cross_entropy": c_cross_entropy, "embedding": c_embedding,
          "attention": c_attention, "l2_normalize": c_l2_normalize, "clip_loss": c_clip_loss,
          "mask_tokens": c_mask_tokens, "squared_distances": c_squared_distances,
          "nearest_code": c_nearest_code, "kmeans": c_kmeans, "logits_mask": c_logits_mask,
          "block_backward": c_block_backward, "mha_backward": c_mha_backward, "adamw_steps": c_adamw_steps,
          "gpt_backward": c_gpt_backward, "gpt_training": c_gpt_training,
          "mlm_head_backward": c_mlm_head_backward, "zero_shot_classify": c_zero_shot_classify,
          "zero_shot_properties": c_zero_shot_properties}


def cases(number):
    """[(name, concept)] of assignment ``number``'s public checks."""
    return [c for c in ASSIGNMENTS[number]]


def run_concept(concept):
    """[(check, error or message)] for one concept; an exception becomes a failed row."""
    rows = []
    try:
        for name, err in CHECKS[concept]():
            rows.append((name, err))
    except Exception as e:   # a stub, or a bug: say which and go on
        rows.append((concept + ": " + type(e).__name__, str(e)))
    return rows


def check(number):
    """Run assignment ``number``'s public checks; print a table; True when all pass."""
    ok = True
    print(f"{'check':<60} {'error':>10}  result")
    for concept in ASSIGNMENTS[number]:
        for name, err in run_concept(concept):
            good = isinstance(err, float) and err < TOLERANCE
            ok &= good
            shown = f"{err:10.2e}" if isinstance(err, float) else "    raised"
            print(f"{name:<60} {shown}  {'PASS' if good else 'FAIL'}")
            if not isinstance(err, float):
                print("    " + err)
    return ok
'''

TEST_PUBLIC = '''"""The public checks of each assignment, under pytest (python -m pytest tests)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import coursework  # noqa: E402

CONCEPTS = [(n, c) for n, concepts in coursework.ASSIGNMENTS.items() for c in concepts]


@pytest.mark.parametrize("number, concept", CONCEPTS)
def test_public(number, concept):
    for name, err in coursework.run_concept(concept):
        assert isinstance(err, float) and err < coursework.TOLERANCE, f"{name}: {err}"
'''

README = '''# npfm coursework: your copy

This is a runnable copy of npfm in which the functions of your assignments
keep their signature and docstring (the math, the shapes) but raise
`NotImplementedError` naming the assignment and the function. Everything else
works, and runs on the textbook floor (`npfm/functional/`) alone: once you
write a pair, the Modules and models of this copy use it.

    pip install -e .              # then: npfm gradcheck, npfm train gpt ... run until a stub
    jupyter notebook notebooks/   # one notebook per assignment
    python -m pytest tests        # the public checks

Your assignments:

LISTING

How to work: write each function in its notebook cell and run the cell
(`coursework.save` writes it into `npfm/functional/<module>.py`), or edit
those files directly. `coursework.check(N)` prints assignment N's public
checks. What is graded is the folder `npfm/` of this copy: hand in a zip of
it (or of this whole folder).

Grading: every test runs your function in a fresh process with a time
limit. A backward is compared with float64 central differences on hidden
shapes and a random upstream gradient; a forward with reference outputs on
hidden inputs. A relative error below 1e-6 earns the test's points, anything
else 0. Keep the dtype you are given, return arrays of the right shape, and
never change an input in place. Your cache is your own: store what you like.
'''
