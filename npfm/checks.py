"""The float64 gradient check of every layer, loss and model: ``npfm gradcheck``.

Each entry builds small random inputs, runs the analytic backward and the
central-difference estimate, and yields one row per checked array:
(name, shape, relative error). A row passes below ``TOLERANCE`` (1e-6).
"""

from __future__ import annotations

import sys

import numpy as np

from . import functional as F
from . import nn
from .gradcheck import TOLERANCE, check_module, check_pair


def _pair_rows(name, forward, backward, inputs, labels, **kwargs):
    errors = check_pair(forward, backward, inputs, **kwargs)
    for i, err in errors.items():
        yield f"{name}", labels[i], np.shape(inputs[i]), err


def _module_rows(name, module, *inputs, **kwargs):
    report = check_module(module, *inputs, **kwargs)
    for row in report.rows:
        yield name, row.name, row.shape, row.error


def _pairs(rng):
    x = rng.standard_normal((2, 3, 5))
    yield from _pair_rows("linear", F.linear_forward, F.linear_backward,
                          [x, rng.standard_normal((5, 4)), rng.standard_normal(4)], ["x", "W", "b"])
    ids = np.array([[1, 3, 3], [0, 1, 6]])
    yield from _pair_rows("embedding", F.embedding_forward,
                          lambda dy, c: (None, F.embedding_backward(dy, c)),
                          [ids, rng.standard_normal((7, 4))], ["ids", "W"])
    yield from _pair_rows("layernorm", F.layernorm_forward, F.layernorm_backward,
                          [x, rng.standard_normal(5), rng.standard_normal(5)], ["x", "gamma", "beta"])
    yield from _pair_rows("gelu (tanh)", F.gelu_forward, lambda dy, c: (F.gelu_backward(dy, c),),
                          [x], ["x"])
    yield from _pair_rows("gelu (exact)", lambda x: F.gelu_forward(x, approximate="none"),
                          lambda dy, c: (F.gelu_backward(dy, c),), [x], ["x"])
    yield from _pair_rows("relu", F.relu_forward, lambda dy, c: (F.relu_backward(dy, c),), [x], ["x"])
    yield from _pair_rows("tanh", F.tanh_forward, lambda dy, c: (F.tanh_backward(dy, c),), [x], ["x"])
    yield from _pair_rows("softmax", F.softmax_forward, lambda dy, c: (F.softmax_backward(dy, c),),
                          [x], ["x"])
    drop_seed = int(rng.integers(1 << 30))
    yield from _pair_rows("dropout p=0.3",
                          lambda x: F.dropout_forward(x, 0.3, np.random.default_rng(drop_seed)),
                          lambda dy, c: (F.dropout_backward(dy, c),), [x], ["x"])
    q, k, v = (rng.standard_normal((2, 2, 4, 3)) for _ in range(3))
    mask = rng.random((2, 1, 4, 4)) < 0.6
    mask[0, 0, 1] = False                                   # a fully masked row
    yield from _pair_rows("attention (masked)", F.attention_forward, F.attention_backward,
                          [q, k, v], ["q", "k", "v"], mask=mask)
    yield from _pair_rows("attention (causal)", F.attention_forward, F.attention_backward,
                          [q, k, v], ["q", "k", "v"], mask=F.causal_mask(4))
    kg, vg = rng.standard_normal((2, 1, 4, 3)), rng.standard_normal((2, 1, 4, 3))
    yield from _pair_rows("attention (grouped-query)", F.attention_forward, F.attention_backward,
                          [q, kg, vg], ["q", "k", "v"], mask=F.causal_mask(4))
    yield from _pair_rows("rmsnorm", F.rmsnorm_forward, F.rmsnorm_backward,
                          [x, rng.standard_normal(5)], ["x", "gamma"])
    yield from _pair_rows("silu", F.silu_forward, lambda dy, c: (F.silu_backward(dy, c),), [x], ["x"])
    rx = rng.standard_normal((2, 4, 6))
    yield from _pair_rows("rope (offset 3)", lambda x: F.rope_forward(x, offset=3),
                          lambda dy, c: (F.rope_backward(dy, c),), [rx], ["x"])
    yield from _pair_rows("swiglu", F.swiglu_forward, F.swiglu_backward,
                          [x, rng.standard_normal((5, 7)), rng.standard_normal((5, 7)),
                           rng.standard_normal((7, 5))], ["x", "W1", "W3", "W2"])
    yield from _pair_rows("lora", lambda x, W, b, A, B: F.lora_forward(x, W, b, A, B, 0.5),
                          F.lora_backward,
                          [x, rng.standard_normal((5, 4)), rng.standard_normal(4),
                           rng.standard_normal((5, 2)), rng.standard_normal((2, 4))],
                          ["x", "W", "b", "A", "B"])
    targets = np.array([[0, 4, -100], [2, 2, 1]])
    yield from _pair_rows("cross_entropy", lambda z: F.cross_entropy_forward(z, targets),
                          lambda dy, c: (F.cross_entropy_backward(dy, c),),
                          [rng.standard_normal((2, 3, 5))], ["logits"], dy=np.array(1.3))


def _modules(rng):
    x = rng.standard_normal((2, 3, 8))
    yield from _module_rows("Linear", nn.Linear(8, 5), x)
    yield from _module_rows("LayerNorm", nn.LayerNorm(8), x)
    yield from _module_rows("PositionalEmbedding", nn.PositionalEmbedding(6, 8), x)
    yield from _module_rows("FeedForward", nn.FeedForward(8, 12), x)
    yield from _module_rows("MultiHeadAttention", nn.MultiHeadAttention(8, 2, causal=True), x)
    pad = np.array([[True, True, False], [True, False, False]])
    yield from _module_rows("MHA (padding mask)", nn.MultiHeadAttention(8, 2), x, mask=pad)
    ctx = rng.standard_normal((2, 5, 8))
    yield from _module_rows("MHA (cross)", _CrossAttention(nn.MultiHeadAttention(8, 4)), x, ctx)
    for norm_first in (True, False):
        for causal in (True, False):
            name = f"Block ({'pre' if norm_first else 'post'}-LN, {'causal' if causal else 'bidir'})"
            block = nn.TransformerBlock(8, 2, 16, causal=causal, norm_first=norm_first)
            yield from _module_rows(name, block, x)


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
    yield from _module_rows("GPT (tiny)", model, ids, max_entries=12)
    model = gpt.GPT(gpt.preset("tiny-llama", vocab_size=11, context=6), seed=1)
    for p in model.parameters():            # gains away from 1: every path matters
        p.data = p.data + rng.standard_normal(p.shape) * 0.1
    yield from _module_rows("GPT (tiny-llama)", model, ids, max_entries=12)


def _clip(rng):
    from .models import clip
    x, y = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    yield from _pair_rows("clip_loss", F.clip_loss_forward, F.clip_loss_backward,
                          [x, y, np.array([1.3])], ["image_emb", "text_emb", "logit_scale"],
                          dy=np.array(1.7))
    model = clip.CLIP(clip.preset("tiny"), seed=1).astype(np.float64)
    for p in model.parameters():            # larger weights than at init: every path matters
        p.data += rng.standard_normal(p.shape) * 0.1
    images = rng.random((3, 8, 8, 3))
    ids = rng.integers(3, 12, size=(3, 6))
    ids[:, 4] = 1                           # [EOT] at position 4, padding after it
    yield from _module_rows("CLIP image tower (tiny)", model.image, images, max_entries=10)
    yield from _module_rows("CLIP text tower (tiny)", model.text, ids, max_entries=10)
    # one scalar summing many terms: h = 1e-5 keeps the rounding in the difference small
    yield from _module_rows("CLIP (tiny): loss", model, images, ids, max_entries=6,
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
    yield from _module_rows("BERT encoder (tiny)", bert.BertModel(config), ids, **kw)
    yield from _module_rows("BERT MLM + NSP (tiny)", bert.JoinedPreTrainingOutputs(
        bert.BertForPreTraining(config), masked), ids, **kw)
    yield from _module_rows("BERT sequence cls (tiny)",
                            bert.BertForSequenceClassification(config, 3), ids, **kw)
    yield from _module_rows("BERT token cls (tiny)",
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
    yield from _module_rows("DALL-E (tiny, 1/8 + 7/8 loss)", dalle.TextImageLoss(model), stream,
                            max_entries=12)


SUITES = [_pairs, _modules, _models, _bert, _clip, _text_to_image]


def run_all(seed=0):
    """Yield (group, array, shape, error) for every check."""
    for suite in SUITES:
        yield from suite(np.random.default_rng(seed))


def main(stream=None, seed=0):
    """Print the table; return 0 when everything passes, 1 otherwise."""
    out = stream or sys.stdout
    print(f"{'check':<28} {'array':<28} {'shape':<16} {'rel. error':>10}  result", file=out)
    failures = 0
    for group, name, shape, err in run_all(seed):
        ok = err < TOLERANCE
        failures += not ok
        print(f"{group:<28} {name:<28} {str(tuple(shape)):<16} {err:10.2e}  "
              f"{'ok' if ok else 'FAIL'}", file=out, flush=True)
    print(f"\n{'all passed' if not failures else f'{failures} FAILED'} "
          f"(float64 central differences, tolerance {TOLERANCE:g})", file=out)
    return 1 if failures else 0
