"""Hostile and damaged checkpoints (issue 10, items 2 and 4): refused before they cost memory.

The loader reads each member's .npy header without inflating its data, checks
the model config against those shapes before any model is built, and refuses a
member the config does not allow before reading it.
"""

import io
import json
import zipfile

import numpy as np
import pytest

import npfm.checkpoint as checkpoint
from npfm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from npfm.models.bert import BertForPreTraining, BertForSequenceClassification
from npfm.models.bert import PRESETS as BERT_PRESETS
from npfm.models.clip import CLIP
from npfm.models.clip import PRESETS as CLIP_PRESETS
from npfm.models.dalle import DALLE
from npfm.models.dalle import PRESETS as DALLE_PRESETS
from npfm.models.gpt import GPT, preset


def write_zip(path, arrays, compress=zipfile.ZIP_DEFLATED):
    """An .npz written by hand, so that meta and arrays may disagree."""
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            z.writestr(f"{name}.npy", buffer.getvalue())


def meta_array(kind, config, **extra):
    meta = {"format": "npfm-checkpoint", "version": 1, "kind": kind, "config": config,
            "step": 0, "rng_state": None, "extra": extra or None, "has_optimizer": False}
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def tiny_gpt_file(path, **config_changes):
    model = GPT(preset("tiny"))
    config = {**model.config.to_dict(), **config_changes}
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["meta"] = meta_array("gpt", config)
    write_zip(path, arrays)
    return path


@pytest.mark.parametrize("kind, model", [
    ("gpt", lambda: GPT(preset("tiny"))),
    ("gpt", lambda: GPT(preset("tiny", positions="sinusoidal"))),
    ("bert", lambda: BertForPreTraining(BERT_PRESETS["tiny"])),
    ("bert-finetune", lambda: BertForSequenceClassification(BERT_PRESETS["tiny"], 3)),
    ("clip", lambda: CLIP(CLIP_PRESETS["tiny"])),
    ("dalle", lambda: DALLE(DALLE_PRESETS["tiny"])),
])
def test_honest_checkpoints_of_every_kind_pass_the_shape_checks(tmp_path, kind, model):
    m = model()
    save_checkpoint(tmp_path / "c.npz", kind=kind, config=m.config.to_dict(),
                    model_state=m.state_dict())
    ckpt = load_checkpoint(tmp_path / "c.npz", kind=kind)
    assert ckpt.config == m.config.to_dict()
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(ckpt.model_state[name], value)


@pytest.mark.parametrize("changes, message", [
    ({"dim": 4096, "n_layers": 64, "hidden": 16384}, "disagree"),     # the 14 GB model
    ({"n_layers": 64}, "n_layers = 64"),
    ({"vocab_size": 1_000_000}, "vocab_size"),
    ({"context": 100_000}, "context"),
    ({"hidden": 4096}, "hidden"),
    ({"n_heads": 0}, "n_heads is 0"),
    ({"n_heads": 3}, "not divisible by n_heads 3"),
    ({"n_layers": -1}, "n_layers is -1"),
    ({"dim": True}, "dim is True"),
    ({"dim": None}, "dim is None"),
])
def test_a_config_that_disagrees_with_the_arrays_is_refused_before_any_model(
        tmp_path, monkeypatch, changes, message):
    path = tiny_gpt_file(tmp_path / "evil.npz", **changes)
    reads = []
    original = checkpoint._read_member
    monkeypatch.setattr(checkpoint, "_read_member",
                        lambda archive, info: (reads.append(info.filename), original(archive, info))[1])
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, kind="gpt")
    assert reads == ["meta.npy"]                   # no array was inflated


def test_an_oversized_member_is_refused_unread(tmp_path, monkeypatch):
    """A deflated member declaring 4096 x 4096 float32 (64 MB of zeros, ~64 KB stored)."""
    model = GPT(preset("tiny"))
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["model/blocks.0.attn.W_qkv"] = np.zeros((4096, 4096), np.float32)
    arrays["meta"] = meta_array("gpt", model.config.to_dict())
    write_zip(tmp_path / "bomb.npz", arrays)
    assert (tmp_path / "bomb.npz").stat().st_size < 1_000_000
    reads = []
    original = checkpoint._read_member
    monkeypatch.setattr(checkpoint, "_read_member",
                        lambda archive, info: (reads.append(info.filename), original(archive, info))[1])
    with pytest.raises(CheckpointError, match="refused before reading it"):
        load_checkpoint(tmp_path / "bomb.npz")
    assert reads == ["meta.npy"]


def test_a_header_that_lies_about_the_member_size_is_corruption(tmp_path):
    model = GPT(preset("tiny"))
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["meta"] = meta_array("gpt", model.config.to_dict())
    write_zip(tmp_path / "c.npz", arrays)
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    raw = members["model/ln_f.gamma.npy"]
    members["model/ln_f.gamma.npy"] = raw.replace(b"(16,)", b"(99,)")
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(CheckpointError, match="says shape"):
        load_checkpoint(tmp_path / "lie.npz")


def test_a_damaged_member_fails_its_crc_check(tmp_path):
    model = GPT(preset("tiny"))
    save_checkpoint(tmp_path / "c.npz", kind="gpt", config=model.config.to_dict(),
                    model_state=model.state_dict())
    blob = bytearray((tmp_path / "c.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        info = z.getinfo("model/tok_emb.W.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    blob[start] ^= 0xFF                                  # one bit pattern inside the data
    (tmp_path / "bad.npz").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path / "bad.npz")


def test_an_object_array_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle ran')",))

    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as z:
        with z.open("model/x.npy", "w") as f:
            np.save(f, np.array([Boom()], dtype=object), allow_pickle=True)
        buffer = io.BytesIO()
        np.save(buffer, meta_array("gpt", {}))
        z.writestr("meta.npy", buffer.getvalue())
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "evil.npz")


def test_a_missing_extra_entry_is_named(tmp_path):
    model = GPT(preset("tiny"))
    save_checkpoint(tmp_path / "c.npz", kind="gpt", config=model.config.to_dict(),
                    model_state=model.state_dict(), extra=None)
    with pytest.raises(CheckpointError, match="no 'tokenizer'"):
        load_checkpoint(tmp_path / "c.npz").need("tokenizer")
