"""Grading: the untouched copy scores 0, the instructor's own functions score
everything, and each mutant or misbehaving function loses exactly the points
of the tests that exercise it, while the other tests are still graded.

Each grade runs a process per test, so the copies are few: one of assignment
1 with every mutant and fault in a function of its own (their test sets are
disjoint, so the failures must be exactly their union, each with its own
message), and one per mutant of assignment 2 (where they overlap).
"""

import json
import os
import shutil

import pytest

from npfm.cli import main
from npfm.course import grade
from npfm.course.assignments import file_path
from npfm.course.build import build

FUNCTIONAL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "npfm", "functional")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    build(str(root / "a1"), [1], seed=11, timeout=20)
    build(str(root / "a2"), [2], seed=12, timeout=20)
    build(str(root / "a4"), [4], seed=14, timeout=20)
    build(str(root / "a5"), [5], seed=13, timeout=20)
    build(str(root / "a6"), [6], seed=15, timeout=20)
    build(str(root / "a3"), [3], seed=16, timeout=20)
    return root


def solved_copy(built, assignment, dest):
    """The student copy with the instructor's own functional files put back."""
    shutil.copytree(built / assignment / "student", dest)
    for name in os.listdir(FUNCTIONAL):
        if name.endswith(".py"):
            shutil.copy(os.path.join(FUNCTIONAL, name), dest / "npfm" / "functional" / name)
    for part in ("data/mlm.py", "tokenizers/vq.py", "models/dalle.py", "nn/block.py", "optim.py",
                 "models/gpt.py", "models/bert.py", "models/clip.py"):
        shutil.copy(os.path.join(FUNCTIONAL, "..", part), dest / "npfm" / part)
    return dest


def mutate(copy, module, old, new):
    path = copy / file_path(module)
    text = path.read_text()
    assert text.count(old) == 1, (module, old)
    path.write_text(text.replace(old, new))


def failed(results):
    return {r["name"] for r in results if not r["passed"]}


def by_name(results):
    return {r["name"]: r for r in results}


def test_untouched_copy_scores_zero_and_writes_gradescope_json(built, tmp_path, capsys):
    out = tmp_path / "results.json"
    status = main(["course", "grade", str(built / "a1" / "student"), "--json", str(out)])
    assert status == 0
    table = capsys.readouterr().out
    assert "total" in table and "0 / 28.5" in table
    results = json.loads(out.read_text())
    assert results["score"] == 0
    assert len(results["tests"]) == 25
    for t in results["tests"]:
        assert set(t) >= {"name", "score", "max_score", "output", "visibility"}
        assert t["score"] == 0 and t["max_score"] > 0
        assert t["name"].split(":")[0].rsplit("_", 1)[-1] in ("forward", "backward", "softmax")
    hidden = [t for t in results["tests"] if t["output"] == "failed"]
    public = [t for t in results["tests"] if t["output"] != "failed"]
    assert hidden and public
    assert all("assignment 1: write npfm.functional." in t["output"] for t in public)


def test_instructor_functions_score_everything(built, tmp_path):
    copy = solved_copy(built, "a1", tmp_path / "a1")
    results = grade.grade(str(copy), str(built / "a1" / "autograder"))
    assert failed(results) == set()
    assert sum(r["score"] for r in results) == sum(r["max_score"] for r in results) == 28.5


# module, old text, new text, the tests that must fail (by name prefix), the message they give
ASSIGNMENT1_FAULTS = [
    ("layernorm", "return dx, (dy * xhat).sum(axis=batch_axes)",
     "return dx, -(dy * xhat).sum(axis=batch_axes)",
     ["layernorm_backward: hidden shapes, dgamma and dbeta"], "dgamma: relative error"),
    ("layernorm", "g - g.mean(-1, keepdims=True)", "g - g.mean(0, keepdims=True)",
     ["layernorm_backward: public shapes, dx", "layernorm_backward: hidden shapes, dx"],
     "dx: relative error"),
    ("softmax", "e = np.exp(x - _row_max(x, -1))", "e = np.exp(x)",
     ["softmax_forward: hidden logits of size 1000"], None),
    # an endless loop that sleeps: it times out as a busy one does, without taking a core
    ("activations", "    positive = cache\n",
     "    positive = cache\n    import time\n    while True:\n        time.sleep(0.05)\n",
     ["relu_backward"], "timed out after"),
    ("activations", "    approximate, x, s = cache\n",
     "    approximate, x, s = cache\n    import sys\n    sys.exit(3)\n",
     ["gelu_backward: hidden shapes, tanh", "gelu_backward: hidden shapes, exact"], "sys.exit(3)"),
    ("embedding", "    ids, shape, dtype = cache\n",
     "    ids, shape, dtype = cache\n    print('x' * 3_000_000)\n", ["embedding_backward"], "printed 3.0 MB"),
    ("cross_entropy", "    V = logits.shape[-1]\n",
     "    V = logits.shape[-1]\n    logits -= logits.max(axis=-1, keepdims=True)\n",
     ["cross_entropy_forward: hidden inputs", "cross_entropy_forward: every target",
      "cross_entropy_backward"], "input 0 (logits) was changed in place"),
    ("linear", "return y.reshape(*x.shape[:-1], W.shape[1]), (x, W, b is not None)",
     "return y.reshape(*x.shape[:-1], W.shape[1]).astype('float32'), (x, W, b is not None)",
     ["linear_forward: public", "linear_forward: hidden"], "wrong dtype float32, expected float64"),
    ("softmax", "return y * (dy - (dy * y).sum(axis=-1, keepdims=True))",
     "return (y * (dy - (dy * y).sum(axis=-1, keepdims=True))).reshape(-1)",
     ["softmax_backward"], "wrong shape"),
]


def test_assignment1_mutants_and_faults_lose_exactly_their_tests(built, tmp_path):
    copy = solved_copy(built, "a1", tmp_path / "mutants")
    for module, old, new, _, _ in ASSIGNMENT1_FAULTS:
        mutate(copy, module, old, new)
    results = grade.grade(str(copy), str(built / "a1" / "autograder"), timeout=6)
    names = [r["name"] for r in results]
    expected = {}
    for _, _, _, prefixes, message in ASSIGNMENT1_FAULTS:
        for prefix in prefixes:
            hit = [n for n in names if n.startswith(prefix)]
            assert len(hit) == 1, prefix
            expected[hit[0]] = message
    assert failed(results) == set(expected)
    assert 0 < len(expected) < len(names)          # the others are still graded, and pass
    rows = by_name(results)
    for name, message in expected.items():
        assert rows[name]["score"] == 0
        if message:
            assert message in rows[name]["detail"], (name, rows[name]["detail"])
    # hidden tests: name, points and pass/fail only, never the error or the inputs
    assert rows["layernorm_backward: hidden shapes, dgamma and dbeta, float64 central "
                "differences"]["output"] == "failed"
    passed = sum(r["score"] for r in results)
    assert passed == sum(r["max_score"] for r in results if r["name"] not in expected)


ATTENTION_MUTANTS = {
    "missing 1/sqrt(D)": ("scale = 1.0 / math.sqrt(q.shape[-1])", "scale = 1.0",
                          lambda name: name.startswith(("attention_forward", "attention_backward",
                                                        "MultiHeadAttention"))),
    "mask after the softmax": (
        "    if mask is not None:\n        S = np.where(mask, S, -np.inf)\n"
        "    P, softmax_cache = softmax_forward(S)",
        "    P, softmax_cache = softmax_forward(S)\n"
        "    if mask is not None:\n        P = np.where(mask, P, 0.0)",
        lambda name: ("mask" in name and "no mask" not in name and name.startswith("attention_")
                      and not name.startswith("attention_weights"))
        or name.startswith("MultiHeadAttention")),
}


@pytest.mark.parametrize("mutant", sorted(ATTENTION_MUTANTS))
def test_attention_mutants_lose_exactly_their_tests(built, tmp_path, mutant):
    old, new, exercised = ATTENTION_MUTANTS[mutant]
    copy = solved_copy(built, "a2", tmp_path / "m")
    mutate(copy, "attention", old, new)
    results = grade.grade(str(copy), str(built / "a2" / "autograder"))
    expected = {r["name"] for r in results if exercised(r["name"])}
    assert expected and len(expected) < len(results)
    assert failed(results) == expected


def test_clip_temperature_and_zero_shot_mutants(built, tmp_path):
    """A temperature gradient divided by s loses the logit_scale test only; a zero-shot
    classifier averaging the raw text embeddings (not the unit ones) loses the three
    zero-shot tests (the reference outputs, and the rescaling property) only."""
    copy = solved_copy(built, "a5", tmp_path / "clip")
    mutate(copy, "clip_loss", "(dZ * Z).sum(), dtype=Z.dtype)", "(dZ * Z).sum() / s, dtype=Z.dtype)")
    mutate(copy, "models.clip", "unit_texts = l2_normalize_forward(text_emb)[0]",
           "unit_texts = text_emb")
    results = grade.grade(str(copy), str(built / "a5" / "autograder"))
    zero_shot = {r["name"] for r in results if r["name"].startswith("zero_shot_classify")}
    assert len(zero_shot) == 3
    assert failed(results) == {"clip_loss_backward: hidden shapes, logit_scale, float64 central "
                               "differences"} | zero_shot
    assert sum(r["score"] for r in results) == 8
    detail = by_name(results)["zero_shot_classify: hidden, properties (rescaled, reordered, unit W, "
                               "W as images)"]["detail"]
    assert detail.startswith("W changed by ") and "rescaled and the prompts reordered" in detail


def test_mlm_masking_graded_statistically(built, tmp_path):
    """Everything masked (no 80/10/10) keeps the selection test and loses the replacement
    test; an MLM head whose decoder share overwrites E's grad (instead of adding to the
    embedding's) loses the tied-decoder test only."""
    results = grade.grade(str(built / "a4" / "student"), str(built / "a4" / "autograder"))
    assert sum(r["score"] for r in results) == 0
    copy = solved_copy(built, "a4", tmp_path / "mlm")
    assert failed(grade.grade(str(copy), str(built / "a4" / "autograder"))) == set()
    mutate(copy, "data.mlm", "to_mask = chosen & (action < 0.8)", "to_mask = chosen")
    mutate(copy, "models.bert", "self.W_emb.grad += dWT.T", "self.W_emb.grad = dWT.T")
    results = grade.grade(str(copy), str(built / "a4" / "autograder"))
    assert failed(results) == {r["name"] for r in results
                               if "80%" in r["name"] or "tied decoder" in r["name"]}
    detail = next(r["detail"] for r in results if "80%" in r["name"])
    assert detail.startswith("[MASK]: 0.9") and "(expected 0.800 +- " in detail
    detail = next(r["detail"] for r in results if "tied decoder" in r["name"])
    assert "W_emb: relative error" in detail and "too large" in detail.splitlines()[0]
    assert "ok" in detail.splitlines()[1]                     # b_vocab is right


def test_mlm_head_without_the_gelu_backward(built, tmp_path):
    """The GELU's backward skipped: dh and the dense layer wrong, the tied decoder right."""
    copy = solved_copy(built, "a4", tmp_path / "head")
    mutate(copy, "models.bert", "self.dense.backward(self.act.backward(self.ln.backward(dt)))",
           "self.dense.backward(self.ln.backward(dt))")
    results = grade.grade(str(copy), str(built / "a4" / "autograder"))
    assert failed(results) == {r["name"] for r in results
                               if r["name"].startswith("MLMHead") and "tied decoder" not in r["name"]}
    assert sum(r["score"] for r in results) == 12 - 3


def test_codebook_and_logits_mask(built, tmp_path):
    """Assignment 6: the stubs score 0; a logits mask one position off loses its two tests only."""
    results = grade.grade(str(built / "a6" / "student"), str(built / "a6" / "autograder"))
    assert sum(r["score"] for r in results) == 0 and len(results) == 6
    copy = solved_copy(built, "a6", tmp_path / "a6")
    mutate(copy, "models.dalle", "is_text = position < c.n_text_positions",
           "is_text = position <= c.n_text_positions")
    results = grade.grade(str(copy), str(built / "a6" / "autograder"))
    assert failed(results) == {r["name"] for r in results if r["name"].startswith("logits_mask")}
    assert sum(r["score"] for r in results) == 7


def test_block_adamw_and_gpt_mutants(built, tmp_path):
    """Assignment 3: a post-LN backward without its residual loses the post-LN test only;
    AdamW without the first moment's bias correction loses the AdamW tests only (the
    training run still passes: its 200 steps outlast the correction); a GPT.backward
    whose head share overwrites tok_emb.W.grad loses the tied-embedding test only (the
    public test and the training start from zero grads)."""
    copy = solved_copy(built, "a3", tmp_path / "a3")
    mutate(copy, "nn.block", "dh = ds + self.ffn.backward(self.drop2.backward(ds))",
           "dh = self.ffn.backward(self.drop2.backward(ds))")
    mutate(copy, "optim", "delta *= lr / bias1", "delta *= lr")
    mutate(copy, "models.gpt", "self.tok_emb.W.grad += dWT.T", "self.tok_emb.W.grad = dWT.T")
    results = grade.grade(str(copy), str(built / "a3" / "autograder"))
    assert failed(results) == {r["name"] for r in results
                               if "post-LN" in r["name"] or r["name"].startswith("AdamW")
                               or "tok_emb.W" in r["name"]}
    assert sum(r["score"] for r in results) == 10
    training = next(r for r in results if "train the tiny GPT" in r["name"])
    assert training["passed"] and training["detail"].startswith("validation loss 2.")


def test_gpt_training_run(built, tmp_path):
    """The stubs score 0 (the training run says which function to write); a GPT.backward
    without the head's share of the tied weight loses the tests of tok_emb.W and the
    training run (the loss stays above the target), and keeps the others."""
    results = grade.grade(str(built / "a3" / "student"), str(built / "a3" / "autograder"))
    assert sum(r["score"] for r in results) == 0
    training = next(r for r in results if "train the tiny GPT" in r["name"])
    assert "assignment 3: write npfm." in training["detail"]
    copy = solved_copy(built, "a3", tmp_path / "head")
    mutate(copy, "models.gpt", "            self.tok_emb.W.grad += dWT.T",
           "            pass")
    results = grade.grade(str(copy), str(built / "a3" / "autograder"))
    assert failed(results) == {r["name"] for r in results
                               if r["name"].startswith("GPT.backward") and "positions and blocks"
                               not in r["name"]}
    assert sum(r["score"] for r in results) == 13
    training = by_name(results)[next(r["name"] for r in results if "train the tiny GPT" in r["name"])]
    assert training["detail"].startswith("validation loss 3.") and "needed below 2.9" in training["detail"]


def test_grade_errors_are_one_line(built, tmp_path, capsys):
    assert main(["course", "grade", str(tmp_path / "nowhere")]) == 2
    assert main(["course", "grade", str(built / "a1" / "student"), "--autograder", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("npfm: error: ") for line in err)
