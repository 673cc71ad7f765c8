"""The float64 gradient check of every layer, loss and model: ``npfm gradcheck``.

Each check builds small random inputs, runs the analytic backward and the
central-difference estimate, and gives one row per checked array:
(name, shape, relative error). A row passes below ``TOLERANCE`` (1e-6).

``npfm gradcheck --only NAME ...`` runs some checks alone: a NAME selects the
checks called so or whose name goes on after it with a space (case does not
matter), so ``layernorm`` is the pair and the Module, ``attention`` the three
attention pairs, ``Block`` the four blocks, ``attention (causal)`` one check.
The inputs are drawn as for the whole table, so a check's row is the same
either way.
"""

from __future__ import annotations

import sys

import numpy as np

from . import functional as F
from . import nn
from .gradcheck import TOLERANCE, check_module, check_pair


def _pair_check(name, forward, backward, inputs, labels, **kwargs):
    """A check of a pure pair: (name, rows), where rows() runs it and gives
    [(array, shape, relative error)]."""
    def rows():
        errors = check_pair(forward, backward, inputs, **kwargs)
        return [(labels[i], np.shape(inputs[i]), err) for i, err in errors.items()]
    return name, rows


def _module_check(name, module, *inputs, **kwargs):
    """A check of a Module: (name, rows), as for a pair."""
    def rows():
        report = check_module(module, *inputs, **kwargs)
        return [(row.name, row.shape, row.error) for row in report.rows]
    return name, rows


def _pairs(rng):
    x = rng.standard_normal((2, 3, 5))
    yield _pair_check("linear", F.linear_forward, F.linear_backward,
                      [x, rng.standard_normal((5, 4)), rng.standard_normal(4)], ["x", "W", "b"])
    ids = np.array([[1, 3, 3], [0, 1, 6]])
    yield _pair_check("embedding", F.embedding_forward,
                      lambda dy, c: (None, F.embedding_backward(dy, c)),
                      [ids, rng.standard_normal((7, 4))], ["ids", "W"])
    yield _pair_check("layernorm", F.layernorm_forward, F.layernorm_backward,
                      [x, rng.standard_normal(5), rng.standard_normal(5)], ["x", "gamma", "beta"])
    yield _pair_check("gelu (tanh)", F.gelu_forward, lambda dy, c: (F.gelu_backward(dy, c),),
                      [x], ["x"])
    yield _pair_check("gelu (exact)", lambda x: F.gelu_forward(x, approximate="none"),
                      lambda dy, c: (F.gelu_backward(dy, c),), [x], ["x"])
    yield _pair_check("relu", F.relu_forward, lambda dy, c: (F.relu_backward(dy, c),), [x], ["x"])
    yield _pair_check("tanh", F.tanh_forward, lambda dy, c: (F.tanh_backward(dy, c),), [x], ["x"])
    yield _pair_check("softmax", F.softmax_forward, lambda dy, c: (F.softmax_backward(dy, c),),
                      [x], ["x"])
    drop_seed = int(rng.integers(1 << 30))
    yield _pair_check("dropout p=0.3",
                      lambda x: F.dropout_forward(x, 0.3, np.random.default_rng(drop_seed)),
                      lambda dy, c: (F.dropout_backward(dy, c),), [x], ["x"])
    q, k, v = (rng.standard_normal((2, 2, 4, 3)) for _ in range(3))
    mask = rng.random((2, 1, 4, 4)) < 0.6
    mask[0, 0, 1] = False                                   # a fully masked row
    yield _pair_check("attention (masked)", F.attention_forward, F.attention_backward,
                      [q, k, v], ["q", "k", "v"], mask=mask)
    yield _pair_check("attention (causal)", F.attention_forward, F.attention_backward,
                      [q, k, v], ["q", "k", "v"], mask=F.causal_mask(4))
    kg, vg = rng.standard_normal((2, 1, 4, 3)), rng.standard_normal((2, 1, 4, 3))
    yield _pair_check("attention (grouped-query)", F.attention_forward, F.attention_backward,
                      [q, kg, vg], ["q", "k", "v"], mask=F.causal_mask(4))
    yield _pair_check("rmsnorm", F.rmsnorm_forward, F.rmsnorm_backward,
                      [x, rng.standard_normal(5)], ["x", "gamma"])
    yield _pair_check("silu", F.silu_forward, lambda dy, c: (F.silu_backward(dy, c),), [x], ["x"])
    rx = rng.standard_normal((2, 4, 6))
    yield _pair_check("rope (offset 3)", lambda x: F.rope_forward(x, offset=3),
                      lambda dy, c: (F.rope_backward(dy, c),), [rx], ["x"])
    yield _pair_check("swiglu", F.swiglu_forward, F.swiglu_backward,
                      [x, rng.standard_normal((5, 7)), rng.standard_normal((5, 7)),
                       rng.standard_normal((7, 5))], ["x", "W1", "W3", "W2"])
    yield _pair_check("lora", lambda x, W, b, A, B: F.lora_forward(x, W, b, A, B, 0.5),
                      F.lora_backward,
                      [x, rng.standard_normal((5, 4)), rng.standard_normal(4),
                       rng.standard_normal((5, 2)), rng.standard_normal((2, 4))],
                      ["x", "W", "b", "A", "B"])
    targets = np.array([[0, 4, -100], [2, 2, 1]])
    yield _pair_check("cross_entropy", lambda z: F.cross_entropy_forward(z, targets),
                      lambda dy, c: (F.cross_entropy_backward(dy, c),),
                      [rng.standard_normal((2, 3, 5))], ["logits"], dy=np.array(1.3))


def _modules(rng):
    x = rng.standard_normal((2, 3, 8))
    yield _module_check("Linear", nn.Linear(8, 5), x)
    yield _module_check("LayerNorm", nn.LayerNorm(8), x)
    yield _module_check("PositionalEmbedding", nn.PositionalEmbedding(6, 8), x)
    yield _module_check("FeedForward", nn.FeedForward(8, 12), x)
    yield _module_check("MultiHeadAttention", nn.MultiHeadAttention(8, 2, causal=True), x)
    pad = np.array([[True, True, False], [True, False, False]])
    yield _module_check("MHA (padding mask)", nn.MultiHeadAttention(8, 2), x, mask=pad)
    ctx = rng.standard_normal((2, 5, 8))
    yield _module_check("MHA (cross)", _CrossAttention(nn.MultiHeadAttention(8, 4)), x, ctx)
    for norm_first in (True, False):
        for causal in (True, False):
            name = f"Block ({'pre' if norm_first else 'post'}-LN, {'causal' if causal else 'bidir'})"
            block = nn.TransformerBlock(8, 2, 16, causal=causal, norm_first=norm_first)
            yield _module_check(name, block, x)


class _CrossAttention(nn.Module):
    """forward(x, context) for the check: cross-attention as a two-input Module."""

    def __init__(self, attn):
        self.attn = attn

    def forward(self, x, context):
        return self.attn(x, context=context)

    def backward(self, dy):
        return self.attn.backward(dy)


def _models(rng):
    from .models import gpt
    model = gpt.GPT(gpt.preset("tiny", vocab_size=11, context=6))
    ids = rng.integers(0, 11, size=(2, 5))
    yield _module_check("GPT (tiny)", model, ids, max_entries=12)
    model = gpt.GPT(gpt.preset("tiny-llama", vocab_size=11, context=6), seed=1)
    for p in model.parameters():            # gains away from 1: every path matters
        p.data = p.data + rng.standard_normal(p.shape) * 0.1
    yield _module_check("GPT (tiny-llama)", model, ids, max_entries=12)


def _clip(rng):
    from .models import clip
    x, y = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    yield _pair_check("clip_loss", F.clip_loss_forward, F.clip_loss_backward,
                      [x, y, np.array([1.3])], ["image_emb", "text_emb", "logit_scale"],
                      dy=np.array(1.7))
    model = clip.CLIP(clip.preset("tiny"), seed=1).astype(np.float64)
    for p in model.parameters():            # larger weights than at init: every path matters
        p.data += rng.standard_normal(p.shape) * 0.1
    images = rng.random((3, 8, 8, 3))
    ids = rng.integers(3, 12, size=(3, 6))
    ids[:, 4] = 1                           # [EOT] at position 4, padding after it
    yield _module_check("CLIP image tower (tiny)", model.image, images, max_entries=10)
    yield _module_check("CLIP text tower (tiny)", model.text, ids, max_entries=10)
    # one scalar summing many terms: h = 1e-5 keeps the rounding in the difference small
    yield _module_check("CLIP (tiny): loss", model, images, ids, max_entries=6,
                        dy=np.array(1.0), h=1e-5)


def _bert(rng):
    from .models import bert
    config = bert.preset("tiny", vocab_size=11, max_len=6)
    ids = rng.integers(5, 11, size=(2, 5))
    ids[:, 0] = 2                                            # [CLS]
    pad = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])       # padding present
    seg = np.array([[0, 0, 1, 1, 1], [0, 0, 1, 0, 0]])
    masked = np.zeros((2, 5), bool)
    masked[0, [1, 3]] = masked[1, 2] = True
    kw = dict(segments=seg, attention_mask=pad, max_entries=6)
    yield _module_check("BERT encoder (tiny)", bert.BertModel(config), ids, **kw)
    yield _module_check("BERT MLM + NSP (tiny)", bert.JoinedPreTrainingOutputs(
        bert.BertForPreTraining(config), masked), ids, **kw)
    yield _module_check("BERT sequence cls (tiny)",
                        bert.BertForSequenceClassification(config, 3), ids, **kw)
    yield _module_check("BERT token cls (tiny)",
                        bert.BertForTokenClassification(config, 4), ids, **kw)


def _text_to_image(rng):
    from .models import dalle
    model = dalle.DALLE(dalle.preset("tiny"), seed=1).astype(np.float64)
    for p in model.parameters():            # weights of order 1: gradients large enough to check
        p.data += rng.standard_normal(p.shape) * 0.3
    c = model.config
    text = rng.integers(3, c.text_vocab, (2, c.text_len))
    text[:, -1] = 0                                          # [PAD] targets are ignored
    stream = dalle.make_stream(text, rng.integers(0, c.n_codes, (2, c.n_image_tokens)), c)
    yield _module_check("DALL-E (tiny, 1/8 + 7/8 loss)", dalle.TextImageLoss(model), stream,
                        max_entries=12)


SUITES = [_pairs, _modules, _models, _bert, _clip, _text_to_image]


def checks(seed=0):
    """Yield (name, rows) for every check in table order; rows() runs the check.

    The suites draw their inputs as they go, and each check waits for rows(),
    so listing the checks costs no gradient check at all.
    """
    for suite in SUITES:
        yield from suite(np.random.default_rng(seed))


def _selects(wanted, name):
    wanted, name = wanted.lower(), name.lower()
    return name == wanted or name.startswith(wanted + " ")


def _check_names(only, names):
    """Raise ValueError, in one line, for a NAME of ``only`` that selects no check."""
    unknown = [w for w in only if not any(_selects(w, n) for n in names)]
    if unknown:
        families = {}                        # first words, once each whatever their case
        for name in names:
            first = name.split(" ")[0]
            families.setdefault(first.lower(), first)
        raise ValueError(f"--only: no check named {unknown[0]!r}; the names are "
                         f"{', '.join(families.values())} (or a whole name from the table)")


def run_all(seed=0, only=None):
    """Yield (group, array, shape, error) for every check, or for those ``only`` names."""
    for group, rows in checks(seed):
        if only is None or any(_selects(w, group) for w in only):
            for name, shape, err in rows():
                yield group, name, shape, err


def main(stream=None, seed=0, only=None):
    """Print the table; return 0 when everything passes, 1 otherwise.

    only: names of checks to run alone (see the module docstring); a name that
    selects nothing raises ValueError before anything runs.
    """
    out = stream or sys.stdout
    if only is not None:
        _check_names(only, [name for name, _ in checks(seed)])
    print(f"{'check':<28} {'array':<28} {'shape':<16} {'rel. error':>10}  result", file=out)
    failures = 0
    for group, name, shape, err in run_all(seed, only):
        ok = err < TOLERANCE
        failures += not ok
        print(f"{group:<28} {name:<28} {str(tuple(shape)):<16} {err:10.2e}  "
              f"{'ok' if ok else 'FAIL'}", file=out, flush=True)
    print(f"\n{'all passed' if not failures else f'{failures} FAILED'} "
          f"(float64 central differences, tolerance {TOLERANCE:g})", file=out)
    return 1 if failures else 0
