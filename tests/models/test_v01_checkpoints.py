"""Checkpoints written by npfm 0.1 (before the two floors and the one decoder stack)
still load and compute what they computed then.

tests/fixtures/v0.1/ holds tiny checkpoints of each model written by npfm 0.1's own
commands (`npfm train gpt/clip/dalle/bert --preset tiny`, a few steps), and
outputs_v0.1.npz the outputs npfm 0.1 computed from them on fixed inputs. The
CLIP checkpoint names its text tower's final LayerNorm `text.ln_final`; today
it is the decoder stack's `text.ln_f`, read through CLIP's table of legacy names.

"The same" is within float32 rounding of the largest output, as the
fast-vs-textbook tests compare the floors (tests/fast/floor_compare.py), with
the masked logits (-inf) in the same places, on both floors. Not bit for bit:
the stored outputs were computed on one machine, and float32 results change
in their last bits from one CPU to another (NumPy and OpenBLAS pick their
SIMD code by the CPU: on an AVX-512 Sapphire Rapids, BERT's hidden states
differ from the stored ones by up to 2.4e-7 and CLIP's image embeddings by
3e-8, with the same code); and GPT, CLIP's text tower and the DALL-E model
run the tanh GELU, whose fast kernel now goes through exp(-2u) instead of
tanh (npfm/fast/activations.py): the same function, rounded differently.
A wrong weight or a wrong layer is off by far more (a constant off by 0.1%
turns every test here red).
"""

import os

import numpy as np
import pytest

import npfm

from npfm.cli import main
from npfm.models.bert import BertModel
from npfm.tasks import bert, clip, dalle, gpt

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "v0.1")
FLOAT32_ROUNDING = 1e-5        # tests/fast/floor_compare.py's float32 tolerance


def assert_same_function(now, then):
    """now equals then within float32 rounding of max |then|; -inf in the same places."""
    now, then = np.asarray(now), np.asarray(then)
    assert now.dtype == then.dtype and now.shape == then.shape
    np.testing.assert_array_equal(np.isneginf(now), np.isneginf(then))
    finite = np.isfinite(then)
    assert np.isfinite(now[finite]).all()
    error = np.abs(now[finite].astype(np.float64) - then[finite]).max(initial=0.0)
    assert error <= FLOAT32_ROUNDING * np.abs(then[finite]).max(), error


def on_both_floors(compute):
    """compute() on the fast floor, then on the textbook floor."""
    yield compute()
    with npfm.reference():
        yield compute()


@pytest.fixture(scope="module")
def then():
    return np.load(os.path.join(DATA, "outputs_v0.1.npz"), allow_pickle=False)


def test_gpt_checkpoint_gives_the_same_logits(then):
    model, _ = gpt.load_model(os.path.join(DATA, "gpt.npz"))
    for logits in on_both_floors(lambda: model.eval().forward(then["gpt_ids"])):
        assert_same_function(logits, then["gpt_logits"])


def test_clip_checkpoint_with_its_old_names_gives_the_same_embeddings(then):
    model, tokenizer, _ = clip.load_model(os.path.join(DATA, "clip.npz"))
    ids = tokenizer.encode_batch(["a small red circle", "a large blue square"], model.config.context)
    for text in on_both_floors(lambda: model.encode_texts(ids)):
        assert_same_function(text, then["clip_text"])
    for image in on_both_floors(lambda: model.encode_images(then["clip_images"])):
        assert_same_function(image, then["clip_image"])


def test_dalle_checkpoint_gives_the_same_logits(then):
    model, _, _, _ = dalle.load_model(os.path.join(DATA, "dalle.npz"))
    for logits in on_both_floors(lambda: model.eval().forward(then["dalle_ids"])):
        assert_same_function(logits, then["dalle_logits"])


def test_bert_checkpoint_gives_the_same_hidden_states(then):
    config, _, state = bert.load_encoder_from_pretraining(os.path.join(DATA, "bert.npz"))
    encoder = BertModel(config)
    encoder.load_state_dict(state)
    for hidden in on_both_floors(lambda: encoder.eval().forward(then["bert_ids"])):
        assert_same_function(hidden, then["bert_hidden"])


def test_the_commands_read_them(capsys, tmp_path):
    assert main(["generate", "--checkpoint", os.path.join(DATA, "gpt.npz"), "--prompt", "def ",
                 "--max-new-tokens", "5", "--seed", "0"]) == 0
    assert main(["zeroshot", "--checkpoint", os.path.join(DATA, "clip.npz"), "--n", "20"]) == 0
    out = str(tmp_path / "grid.png")
    assert main(["draw", "a red circle", "--checkpoint", os.path.join(DATA, "dalle.npz"),
                 "--out", out]) == 0
    assert os.path.getsize(out) > 0
