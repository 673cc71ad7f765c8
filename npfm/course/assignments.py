"""The assignments: which textbook functions each asks for, and its tests.

An assignment names functions of ``npfm/functional/`` by module and name. The
student copy keeps each one's signature and docstring and replaces its body by
``raise NotImplementedError``; the autograder checks what the student wrote.

A test runs one function of the student's copy on inputs drawn here:

    forward    the pair's ``y`` against the instructor's output on the same inputs
    backward   the gradients the pair returns for a random upstream ``dy``,
               against float64 central differences of the instructor's forward

Inputs come from ``make(rng)`` -> (inputs, kwargs). Hidden tests draw from a
generator seeded at build time (the seed is kept in no file the student gets);
public tests draw from a fixed seed, so their feedback may show everything.

The tolerance policy, once for every test: a float64 result whose relative
error (max |a - b| / max(max |a|, max |b|), npfm.gradcheck.rel_error) is below
TOLERANCE earns the test's points, anything else earns 0. The error is always
reported. A test's name starts with the function it grades.
"""

import os
from dataclasses import dataclass, field

import numpy as np

TOLERANCE = 1e-6


def import_name(module):
    """A module of an assignment as Python imports it: "layernorm" is a file of
    npfm/functional/; a dotted name ("data.mlm"), or one that is not there
    ("optim"), is relative to npfm."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "functional")
    if "." in module or not os.path.exists(os.path.join(here, module + ".py")):
        return "npfm." + module
    return "npfm.functional." + module


def file_path(module):
    """Its file, relative to the folder holding npfm/."""
    return import_name(module).replace(".", "/") + ".py"

# Which input of the forward each gradient of the backward belongs to.
GRADIENT_INPUTS = {
    "linear": (0, 1, 2), "relu": (0,), "gelu": (0,), "layernorm": (0, 1, 2),
    "softmax": (0,), "cross_entropy": (0,), "embedding": (1,), "attention": (0, 1, 2),
    "l2_normalize": (0,), "clip_loss": (0, 1, 2),
}


@dataclass
class Test:
    name: str                # "layernorm_backward: dx, hidden shapes, float64 central differences"
    module: str              # file of npfm/functional/ holding the pair
    concept: str             # the pair is concept_forward / concept_backward
    kind: str                # "forward", "backward", "weights" (attention_weights),
                             # "call" (the outputs numbered in compare against the
                             # instructor's) or "statistics" (judged by ``check``)
    make: object             # rng -> (inputs, kwargs)
    points: float
    hidden: bool = True
    compare: tuple = None    # which returned values count: indices or a slice (default: all)
    check: str = None        # statistics (or a scenario judged by a property): the name of
                             # the grader's check (grade.STATISTICS)
    function: str = None     # statistics: the function called (default concept)
    construct: dict = None   # call: {keyword: class of the module} built from a dict of fields
    timeout: float = None    # seconds, this test's own limit when longer than the grader's


@dataclass
class Assignment:
    number: int
    title: str
    functions: list          # [(module, function name)]
    tests: list = field(default_factory=list)

    @property
    def points(self):
        return sum(t.points for t in self.tests)

    @property
    def concepts(self):
        return sorted({t.concept for t in self.tests})


def _away_from_zero(rng, shape):
    """Normal draws kept off the ReLU kink (a central difference across it is wrong)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 1e-2, 0.5, x)


def _linear(bias=True, shape=(2, 3, 5), out=4):
    def make(rng):
        x = rng.standard_normal(shape)
        W = rng.standard_normal((shape[-1], out))
        b = rng.standard_normal(out) if bias else None
        return [x, W, b], {}
    return make


def _unary(shape, draw=None, scale=1.0, **kwargs):
    def make(rng):
        x = (draw(rng, shape) if draw else rng.standard_normal(shape)) * scale
        return [x], dict(kwargs)
    return make


def _layernorm(shape=(3, 4, 7)):
    def make(rng):
        C = shape[-1]
        return [rng.standard_normal(shape) * 2 + 1, 1 + 0.5 * rng.standard_normal(C),
                rng.standard_normal(C)], {}
    return make


def _masked_row(shape):
    def make(rng):
        x = rng.standard_normal(shape)
        x[..., 0, :] = -np.inf                   # a fully masked row: softmax gives zeros
        x[..., 1, ::2] = -np.inf
        return [x], {}
    return make


def _cross_entropy(N=(3, 4), V=6, ignored=0.3, all_ignored=False):
    def make(rng):
        logits = rng.standard_normal((*N, V)) * 2
        targets = rng.integers(0, V, size=N)
        drop = rng.random(N) < ignored
        drop.flat[0] = ignored > 0                # at least one ignored row when asked
        targets = np.where(drop | all_ignored, -100, targets)
        return [logits, targets], {"ignore_index": -100}
    return make


def _embedding(V=6, C=3, ids_shape=(3, 5)):
    def make(rng):
        ids = rng.integers(0, V // 2, size=ids_shape)   # half the vocabulary: many repeats
        return [ids, rng.standard_normal((V, C))], {}
    return make


def _attention(B=2, H=2, Tq=5, Tk=5, D=4, mask=None):
    def make(rng):
        q = rng.standard_normal((B, H, Tq, D))
        k = rng.standard_normal((B, H, Tk, D))
        v = rng.standard_normal((B, H, Tk, D))
        if mask is None:
            return [q, k, v, None], {}
        if mask == "causal":
            m = np.tri(Tq, Tk, k=Tk - Tq, dtype=bool)                       # (Tq, Tk)
        else:                                                              # padding
            lengths = rng.integers(1, Tk + 1, size=B)
            lengths[0] = Tk
            keys = np.arange(Tk)[None, :] < lengths[:, None]               # (B, Tk)
            m = np.broadcast_to(keys[:, None, None, :], (B, 1, Tq, Tk)).copy()
            m[-1, :, 0, :] = False                                         # a fully masked row
        return [q, k, v, m], {}
    return make


def _tests_1():
    F, B = "forward", "backward"
    cd = "float64 central differences"
    return [
        Test("linear_forward: public inputs", "linear", "linear", F, _linear(), 1, hidden=False),
        Test("linear_forward: hidden inputs", "linear", "linear", F, _linear(shape=(3, 2, 6), out=5), 1),
        Test(f"linear_backward: public shapes, {cd}", "linear", "linear", B, _linear(), 1, hidden=False),
        Test(f"linear_backward: hidden shapes, {cd}", "linear", "linear", B,
             _linear(shape=(2, 2, 4), out=3), 2),
        Test("linear_backward: no bias gives db None", "linear", "linear", B,
             _linear(bias=False, shape=(3, 4), out=2), 1),
        Test("relu_forward: hidden inputs", "activations", "relu", F, _unary((4, 5)), 0.5),
        Test(f"relu_backward: hidden shapes, {cd}", "activations", "relu", B,
             _unary((3, 5), draw=_away_from_zero), 1),
        Test("gelu_forward: public inputs, tanh form", "activations", "gelu", F,
             _unary((2, 6), scale=2, approximate="tanh"), 0.5, hidden=False),
        Test("gelu_forward: hidden inputs, exact form", "activations", "gelu", F,
             _unary((3, 5), scale=3, approximate="none"), 0.5),
        Test(f"gelu_backward: hidden shapes, tanh form, {cd}", "activations", "gelu", B,
             _unary((2, 3, 4), scale=2, approximate="tanh"), 1),
        Test(f"gelu_backward: hidden shapes, exact form, {cd}", "activations", "gelu", B,
             _unary((3, 4), scale=2, approximate="none"), 1),
        Test("layernorm_forward: hidden inputs", "layernorm", "layernorm", F, _layernorm(), 1),
        Test(f"layernorm_backward: public shapes, dx, {cd}", "layernorm", "layernorm", B,
             _layernorm((2, 5)), 1, hidden=False, compare=(0,)),
        Test(f"layernorm_backward: hidden shapes, dx, {cd}", "layernorm", "layernorm", B,
             _layernorm((2, 3, 6)), 2, compare=(0,)),
        Test(f"layernorm_backward: hidden shapes, dgamma and dbeta, {cd}", "layernorm", "layernorm", B,
             _layernorm((3, 2, 5)), 2, compare=(1, 2)),
        Test("softmax_forward: hidden inputs", "softmax", "softmax", F, _unary((3, 6)), 1),
        Test("softmax_forward: hidden logits of size 1000", "softmax", "softmax", F,
             _unary((2, 3, 5), scale=1000), 1),
        Test("softmax_forward: a fully masked row gives zeros", "softmax", "softmax", F,
             _masked_row((2, 4, 5)), 1),
        Test(f"softmax_backward: hidden shapes, {cd}", "softmax", "softmax", B, _unary((2, 3, 5)), 2),
        Test("log_softmax: hidden logits of size 1000", "softmax", "log_softmax", "call",
             _unary((3, 6), scale=1000), 1, compare=(0,)),
        Test("cross_entropy_forward: hidden inputs with ignore_index", "cross_entropy",
             "cross_entropy", F, _cross_entropy(), 1),
        Test("cross_entropy_forward: every target ignored gives 0", "cross_entropy",
             "cross_entropy", F, _cross_entropy(all_ignored=True), 0.5),
        Test(f"cross_entropy_backward: hidden shapes with ignore_index, {cd}", "cross_entropy",
             "cross_entropy", B, _cross_entropy(N=(2, 5), V=7), 2),
        Test("embedding_forward: hidden ids", "embedding", "embedding", F, _embedding(), 0.5),
        Test(f"embedding_backward: repeated ids, {cd}", "embedding", "embedding", B,
             _embedding(V=8, C=4, ids_shape=(2, 6)), 2),
    ]


def _tests_2():
    F, B = "forward", "backward"
    cd = "float64 central differences"
    return [
        Test("attention_forward: public inputs, no mask", "attention", "attention", F,
             _attention(B=1, H=2, Tq=3, Tk=3, D=2), 1, hidden=False),
        Test("attention_forward: hidden inputs, no mask", "attention", "attention", F,
             _attention(Tq=3, Tk=6), 1),
        Test("attention_forward: hidden inputs, causal mask", "attention", "attention", F,
             _attention(mask="causal"), 1),
        Test("attention_forward: hidden inputs, padding mask with a fully masked row",
             "attention", "attention", F, _attention(mask="padding"), 2),
        Test("attention_weights: hidden inputs, causal mask", "attention", "attention", "weights",
             _attention(Tq=3, Tk=5, mask="causal"), 1),
        Test(f"attention_backward: public shapes, no mask, {cd}", "attention", "attention", B,
             _attention(B=1, H=1, Tq=3, Tk=3, D=2), 1, hidden=False),
        Test(f"attention_backward: hidden shapes, no mask, {cd}", "attention", "attention", B,
             _attention(B=1, H=2, Tq=3, Tk=4, D=3), 2),
        Test(f"attention_backward: hidden shapes, causal mask, {cd}", "attention", "attention", B,
             _attention(B=1, H=2, Tq=4, Tk=4, D=3, mask="causal"), 2),
        Test(f"attention_backward: hidden shapes, padding mask with a fully masked row, {cd}",
             "attention", "attention", B, _attention(B=2, H=1, Tq=3, Tk=4, D=2, mask="padding"), 2),
        Test(f"MultiHeadAttention.backward: hidden shapes, causal, your attention pair inside, {cd}",
             "nn.attention", "mha_backward", "scenario", _mha(), 2),
    ]


def _clip(B=4, E=3):
    def make(rng):
        return [rng.standard_normal((B, E)) * 2, rng.standard_normal((B, E)),
                np.array([rng.uniform(0.5, 2.0)])], {}
    return make


def _zero_shot(N=12, K=4, E=5, most=3):
    """Image and text embeddings of any length (text lengths spread over 0.1 to 10,
    so that averaging raw vectors instead of unit ones gives other class vectors),
    an uneven number of prompts per class, in shuffled order."""
    def make(rng):
        counts = rng.integers(1, most + 1, size=K)
        counts[0] = most
        owner = np.repeat(np.arange(K), counts)[rng.permutation(counts.sum())]     # (P,)
        lengths = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=(len(owner), 1)))
        texts = rng.standard_normal((len(owner), E)) * lengths                     # (P, E)
        images = rng.standard_normal((N, E)) * rng.uniform(0.2, 5.0, size=(N, 1))  # (N, E)
        return [images, texts, owner], {}
    return make


def _zero_shot_properties(**sizes):
    draw = _zero_shot(**sizes)

    def make(rng):
        inputs, _ = draw(rng)
        return inputs, {"seed": int(rng.integers(2**31))}
    return make


def _tests_5():
    F, B = "forward", "backward"
    cd = "float64 central differences"
    return [
        Test("l2_normalize_forward: hidden inputs", "l2_normalize", "l2_normalize", F,
             _unary((3, 2, 5), scale=3), 1),
        Test(f"l2_normalize_backward: hidden shapes, {cd}", "l2_normalize", "l2_normalize", B,
             _unary((4, 6)), 2),
        Test("clip_loss_forward: public inputs", "clip_loss", "clip_loss", F, _clip(B=3, E=2), 1,
             hidden=False),
        Test("clip_loss_forward: hidden inputs", "clip_loss", "clip_loss", F, _clip(B=5, E=4), 1),
        Test(f"clip_loss_backward: hidden shapes, embeddings, {cd}", "clip_loss", "clip_loss", B,
             _clip(B=4, E=3), 3, compare=(0, 1)),
        Test(f"clip_loss_backward: hidden shapes, logit_scale, {cd}", "clip_loss", "clip_loss", B,
             _clip(B=3, E=4), 2, compare=(2,)),
        Test("zero_shot_classify: public embeddings, prompts of lengths 0.1 to 10", "models.clip", "zero_shot_classify", "call",
             _zero_shot(N=4, K=2, E=3, most=2), 1, hidden=False, compare=(0, 1)),
        Test("zero_shot_classify: hidden embeddings, uneven prompts per class", "models.clip", "zero_shot_classify", "call", _zero_shot(N=20, K=5, E=6),
             2, compare=(0, 1)),
        Test("zero_shot_classify: hidden, properties (rescaled, reordered, unit W, W as images)",
             "models.clip", "zero_shot_properties", "scenario", _zero_shot_properties(N=16, K=6, E=4),
             2, check="zero_shot_properties"),
    ]


def _mlm(B=256, T=64, V=500, specials=(0, 1, 2, 3), mask_id=4, mask_prob=0.15):
    def make(rng):
        ids = rng.integers(len(specials) + 1, V, size=(B, T))
        lengths = rng.integers(T // 4, T + 1, size=B)
        ids[:, 0] = specials[1]                                            # [CLS]
        ids[np.arange(B), lengths - 1] = specials[2]                       # [SEP]
        ids[np.arange(T)[None, :] >= lengths[:, None]] = specials[0]       # [PAD]
        special = np.isin(ids, specials)
        return [ids, special], {"tokenizer_vocab_size": V, "mask_id": mask_id,
                                "rng_seed": int(rng.integers(2**31)), "mask_prob": mask_prob,
                                "special_ids": list(specials)}
    return make


def _mlm_head(shape=(2, 5), V=9, dim=6, select=True, accumulate=True):
    """h (B, T, C) and, with ``select``, a boolean (B, T) of the positions scored."""
    def make(rng):
        inputs = [rng.standard_normal((*shape, dim))]
        if select:
            chosen = rng.random(shape) < 0.4
            chosen.flat[0] = True
            inputs.append(chosen)
        return inputs, {"module": "MLMHead", "vocab_size": V, "dim": dim,
                        "seed": int(rng.integers(2**31)), "perturb": 0.3, "accumulate": accumulate}
    return make


# MLMHead.backward's outputs: dh, then dense.W, dense.b, ln.gamma, ln.beta, W_emb, b_vocab
MLM_HEAD_OWN, MLM_HEAD_DECODER = (0, 1, 2, 3, 4), (5, 6)


def _tests_4():
    S = "statistics"
    cd = "float64 central differences"
    return [
        Test("mask_tokens: public sample, which positions are chosen", "data.mlm", "mask_tokens", S,
             _mlm(B=8, T=16), 1, hidden=False, check="mlm_selection"),
        Test("mask_tokens: hidden sample, round(15%) of each row's candidates, never a special token",
             "data.mlm", "mask_tokens", S, _mlm(), 3, check="mlm_selection"),
        Test("mask_tokens: hidden sample of 30,000 tokens, 80% [MASK] / 10% random / 10% kept",
             "data.mlm", "mask_tokens", S, _mlm(B=512), 3, check="mlm_replacement"),
        Test(f"MLMHead.backward: public, select None, dh and every Parameter, {cd}", "models.bert", "mlm_head_backward", "scenario",
             _mlm_head(shape=(1, 3), V=5, dim=4, select=False, accumulate=False), 1, hidden=False),
        Test(f"MLMHead.backward: hidden shapes, selected positions, dh, dense and LN, {cd}", "models.bert", "mlm_head_backward", "scenario", _mlm_head(), 2,
             compare=MLM_HEAD_OWN),
        Test(f"MLMHead.backward: hidden shapes, the tied decoder W_emb and b_vocab, {cd}", "models.bert", "mlm_head_backward", "scenario",
             _mlm_head(shape=(3, 4), V=11, dim=5), 2, compare=MLM_HEAD_DECODER),
    ]


def _points_codes(N=40, K=5, D=3):
    def make(rng):
        return [rng.standard_normal((N, D)), rng.standard_normal((K, D))], {}
    return make


def _nearest(N=40, K=6, D=3, chunk=7):
    def make(rng):
        return [rng.standard_normal((N, D)), rng.standard_normal((K, D))], {"chunk": chunk}
    return make


def _blobs(K=4, per=30, D=2, iters=10):
    def make(rng):
        centres = rng.uniform(-20, 20, size=(K, D))
        X = (centres[:, None, :] + rng.standard_normal((K, per, D))).reshape(-1, D)   # (N, D)
        X = X[rng.permutation(len(X))]
        init = np.array([X[np.argmin(((X - c) ** 2).sum(1))] for c in centres])   # a point of each blob
        return [X], {"k": K, "iters": iters, "init": init.tolist()}
    return make


def _dalle_mask(offset=0, T=None, **fields):
    def make(rng):
        kwargs = {"config": {"text_vocab": 10, "text_len": 4, "n_codes": 8, "image_size": 4,
                             "patch": 2, "dim": 16, "n_layers": 1, "n_heads": 2, **fields},
                  "offset": offset}
        if T is not None:
            kwargs["T"] = T
        return [], kwargs
    return make


def _block(B=2, T=3, dim=8, n_heads=2, hidden=12, causal=True, norm_first=True):
    def make(rng):
        return [rng.standard_normal((B, T, dim))], {
            "dim": dim, "n_heads": n_heads, "hidden": hidden, "causal": causal,
            "norm_first": norm_first, "seed": int(rng.integers(2**31)), "perturb": 0.3,
            "module": "TransformerBlock"}
    return make


def _mha(B=2, T=4, dim=6, n_heads=2, causal=True):
    def make(rng):
        return [rng.standard_normal((B, T, dim))], {
            "dim": dim, "n_heads": n_heads, "causal": causal, "seed": int(rng.integers(2**31)),
            "perturb": 0.3, "module": "MultiHeadAttention"}
    return make


def _adamw(shape=(3, 4), steps=3, weight_decay=0.1):
    def make(rng):
        return [rng.standard_normal(shape), rng.standard_normal((steps, *shape)) * 0.1], {
            "lr": 0.01, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": weight_decay}
    return make


def _gpt(B=2, T=4, V=11, dim=8, n_layers=2, n_heads=2, hidden=12, accumulate=True):
    """A float64 GPT small enough for central differences over every Parameter;
    with ``accumulate`` each grad starts at a random value (backward adds to it)."""
    def make(rng):
        return [rng.integers(0, V, size=(B, T))], {
            "module": "GPT", "vocab_size": V, "context": T + 1, "dim": dim, "n_layers": n_layers,
            "n_heads": n_heads, "hidden": hidden, "seed": int(rng.integers(2**31)),
            "perturb": 0.3, "accumulate": accumulate}
    return make


# The training run: the tiny preset on the standard library's first 200 KB, byte
# tokens. The instructor's code reaches 2.57-2.67 nats (16 seeds) after these 200
# steps, in 1.3-1.9 s of CPU on the textbook floor; a model that learns only byte
# frequencies sits at 3.10. The target leaves a margin of 0.2 over the worst seed.
TRAINING = {"preset": "tiny", "max_bytes": 200_000, "steps": 200, "batch_size": 32,
            "eval_batches": 8, "lr": 0.01, "betas": [0.9, 0.95], "target": 2.9}


def _training(**fields):
    def make(rng):
        return [], dict(TRAINING, seed=int(rng.integers(2**31)), **fields)
    return make


def _tests_3():
    S = "scenario"
    cd = "float64 central differences"
    t = TRAINING
    return [
        Test(f"TransformerBlock.backward: public, pre-LN causal, {cd}", "nn.block", "block_backward", S,
             _block(B=1, T=2, dim=4, hidden=8), 1, hidden=False),
        Test(f"TransformerBlock.backward: hidden shapes, pre-LN causal, {cd}", "nn.block",
             "block_backward", S, _block(), 3),
        Test(f"TransformerBlock.backward: hidden shapes, post-LN bidirectional, {cd}", "nn.block",
             "block_backward", S, _block(causal=False, norm_first=False), 3),
        Test(f"GPT.backward: public, a one-layer GPT, every Parameter, {cd}", "models.gpt",
             "gpt_backward", S, _gpt(B=1, T=3, V=7, dim=4, n_layers=1, n_heads=1, hidden=8,
                                     accumulate=False), 1, hidden=False),
        Test(f"GPT.backward: hidden shapes, tok_emb.W (the head's share + the embedding's), {cd}",
             "models.gpt",
             "gpt_backward", S, _gpt(n_layers=1), 2, compare=(0,)),
        Test(f"GPT.backward: hidden shapes, positions and blocks, {cd}",
             "models.gpt", "gpt_backward", S, _gpt(), 2, compare=slice(1, None)),
        Test(f"GPT.backward: train the tiny GPT with your code, validation loss below "
             f"{t['target']} within {t['steps']} steps", "models.gpt", "gpt_training", S, _training(), 3,
             hidden=False, check="gpt_training", timeout=120),      # public: its loss is feedback
        Test("AdamW.update: public, one step", "optim", "adamw_steps", S, _adamw(steps=1), 1,
             hidden=False),
        Test("AdamW.update: hidden, three steps with weight decay (bias corrections)", "optim",
             "adamw_steps", S, _adamw(shape=(5, 3)), 2),
        Test("AdamW.update: hidden, five steps without weight decay", "optim", "adamw_steps", S,
             _adamw(shape=(4,), steps=5, weight_decay=0.0), 1),
    ]


def _tests_6():
    C = "call"
    return [
        Test("squared_distances: hidden points and codes", "tokenizers.vq", "squared_distances", C,
             _points_codes(), 1, compare=(0,)),
        Test("nearest_code: hidden points, rows in chunks of 7", "tokenizers.vq", "nearest_code", C,
             _nearest(), 2, compare=(0, 1)),
        Test("kmeans: public blobs, given starting codes", "tokenizers.vq", "kmeans", C,
             _blobs(K=3, per=10), 1, hidden=False, compare=(0,)),
        Test("kmeans: hidden blobs, given starting codes, 10 rounds", "tokenizers.vq", "kmeans", C,
             _blobs(), 3, compare=(0,)),
        Test("logits_mask: the whole context", "models.dalle", "logits_mask", C, _dalle_mask(), 1,
             hidden=False, compare=(0,), construct={"config": "DALLEConfig"}),
        Test("logits_mask: hidden config, offset 3, T = 5 (decoding with a KV cache)", "models.dalle",
             "logits_mask", C, _dalle_mask(offset=3, T=5, text_len=3, n_codes=6), 2, compare=(0,),
             construct={"config": "DALLEConfig"}),
    ]


ASSIGNMENTS = {
    1: Assignment(1, "Layers: linear, ReLU, GELU, LayerNorm, softmax, cross-entropy, embedding", [
        ("linear", "linear_forward"), ("linear", "linear_backward"),
        ("activations", "relu_forward"), ("activations", "relu_backward"),
        ("activations", "gelu_forward"), ("activations", "gelu_backward"),
        ("layernorm", "layernorm_forward"), ("layernorm", "layernorm_backward"),
        ("softmax", "softmax_forward"), ("softmax", "softmax_backward"), ("softmax", "log_softmax"),
        ("cross_entropy", "cross_entropy_forward"), ("cross_entropy", "cross_entropy_backward"),
        ("embedding", "embedding_forward"), ("embedding", "embedding_backward"),
    ], _tests_1()),
    2: Assignment(2, "Attention: scaled dot-product attention with causal and padding masks", [
        ("attention", "attention_forward"), ("attention", "attention_backward"),
        ("attention", "attention_weights"),
    ], _tests_2()),
    3: Assignment(3, "GPT: the transformer block's backward, the GPT backward with its tied head, "
                  "one AdamW step, and a training run", [
        ("nn.block", "TransformerBlock.backward"), ("models.gpt", "GPT.backward"),
        ("optim", "AdamW.update"),
    ], _tests_3()),
    4: Assignment(4, "BERT: masked-language-model masking (15%, then 80/10/10) and the MLM head's "
                  "backward", [
        ("data.mlm", "mask_tokens"), ("models.bert", "MLMHead.backward"),
    ], _tests_4()),
    5: Assignment(5, "CLIP: the symmetric contrastive loss with L2 normalisation and temperature; "
                  "zero-shot classification with template ensembling", [
        ("l2_normalize", "l2_normalize_forward"), ("l2_normalize", "l2_normalize_backward"),
        ("clip_loss", "clip_loss_forward"), ("clip_loss", "clip_loss_backward"),
        ("models.clip", "zero_shot_classify"),
    ], _tests_5()),
    6: Assignment(6, "Text-to-image: the k-means codebook and the text/image logits mask", [
        ("tokenizers.vq", "squared_distances"), ("tokenizers.vq", "nearest_code"),
        ("tokenizers.vq", "kmeans"), ("models.dalle", "logits_mask"),
    ], _tests_6()),
}


def select(numbers=None):
    """The assignments numbered in ``numbers`` (all of them for None), in order."""
    if numbers is None:
        return list(ASSIGNMENTS.values())
    missing = [n for n in numbers if n not in ASSIGNMENTS]
    if missing:
        raise ValueError(f"no assignment {missing[0]} (there are {', '.join(map(str, ASSIGNMENTS))})")
    return [ASSIGNMENTS[n] for n in sorted(set(numbers))]
