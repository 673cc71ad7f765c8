"""Checkpoints: exact round trips, atomic saves, and clear errors for bad files."""

import json
import os
import zipfile

import numpy as np
import pytest

import npfm.checkpoint as checkpoint_module
from npfm.checkpoint import (FORMAT_VERSION, Checkpoint, CheckpointError, load_checkpoint,
                             save_checkpoint)
from npfm.core import Parameter
from npfm.optim import AdamW


def sample_states(seed=0):
    rng = np.random.default_rng(seed)
    model = {"blocks.0.attn.W_qkv": rng.standard_normal((4, 12)).astype(np.float32),
             "ln_f.gamma": rng.standard_normal(4),                       # float64
             "wte": rng.standard_normal((7, 4)).astype(np.float16),
             "scalar": np.array(2.5, dtype=np.float32)}
    params = [Parameter(rng.standard_normal((3, 2))), Parameter(rng.standard_normal(2))]
    opt = AdamW(params)
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape)
    opt.step()
    return model, opt.state_dict()


def save(path, **overrides):
    model, optim = sample_states()
    kwargs = dict(kind="gpt", config={"n_layer": 2, "dropout": 0.1, "name": "tiny"},
                  model_state=model, optimizer_state=optim, step=17)
    kwargs.update(overrides)
    return save_checkpoint(path, **kwargs)


def test_round_trip_is_exact(tmp_path):
    model, optim = sample_states()
    gen = np.random.default_rng(123)
    gen.standard_normal(10)                            # move the stream along
    extra = {"tokenizer": {"type": "bytes", "vocab_size": 256}, "val_loss": [2.5, 2.1]}
    path = tmp_path / "sub" / "dir" / "ckpt.npz"       # parent folders are created
    save_checkpoint(path, kind="gpt", config={"n_layer": 2, "eps": 1e-5}, model_state=model,
                    optimizer_state=optim, step=1200, rng_state=gen.bit_generator.state,
                    extra=extra)
    ck = load_checkpoint(path, kind="gpt")
    assert isinstance(ck, Checkpoint)
    assert (ck.kind, ck.version, ck.step) == ("gpt", FORMAT_VERSION, 1200)
    assert ck.config == {"n_layer": 2, "eps": 1e-5}
    assert ck.extra == extra
    for original, loaded in ((model, ck.model_state), (optim, ck.optimizer_state)):
        assert list(loaded) == list(original)
        for name in original:
            assert loaded[name].dtype == original[name].dtype, name
            assert loaded[name].shape == original[name].shape, name
            np.testing.assert_array_equal(loaded[name], original[name])
    restored = np.random.default_rng(0)
    restored.bit_generator.state = ck.rng_state
    np.testing.assert_array_equal(restored.standard_normal(5), gen.standard_normal(5))


def test_optimizer_state_none_and_empty_are_distinct(tmp_path):
    save(tmp_path / "a.npz", optimizer_state=None)
    assert load_checkpoint(tmp_path / "a.npz").optimizer_state is None
    save(tmp_path / "b.npz", optimizer_state={})
    assert load_checkpoint(tmp_path / "b.npz").optimizer_state == {}


def test_the_file_is_a_plain_npz_without_pickle(tmp_path):
    path = save(tmp_path / "ckpt.npz")
    with np.load(path, allow_pickle=False) as z:
        assert "meta" in z.files and "model/wte" in z.files and "optim/m.0" in z.files
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
    assert meta["kind"] == "gpt" and meta["version"] == FORMAT_VERSION and meta["step"] == 17


def test_numpy_scalars_in_meta_become_plain_numbers(tmp_path):
    save(tmp_path / "c.npz", config={"lr": np.float32(0.5), "n": np.int64(3)})
    assert load_checkpoint(tmp_path / "c.npz").config == {"lr": 0.5, "n": 3}


def test_bad_arguments_to_save(tmp_path):
    with pytest.raises(TypeError, match="JSON-able"):
        save(tmp_path / "x.npz", extra={"f": object()})
    with pytest.raises(TypeError, match="dtype object"):
        save(tmp_path / "x.npz", model_state={"w": np.array([None, 1], dtype=object)})
    with pytest.raises(TypeError, match="kind"):
        save(tmp_path / "x.npz", kind="")
    with pytest.raises(ValueError, match="step"):
        save(tmp_path / "x.npz", step=-1)
    assert list(tmp_path.iterdir()) == []


# ----- atomicity -----------------------------------------------------------------

def old_file_intact_and_no_temp(tmp_path, path, before):
    assert path.read_bytes() == before
    assert load_checkpoint(path).step == 17
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save(path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before the rename")
    monkeypatch.setattr(checkpoint_module.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        save(path, step=99)
    old_file_intact_and_no_temp(tmp_path, path, before)


def test_crash_in_the_middle_of_writing_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save(path)
    before = path.read_bytes()
    real_savez = np.savez

    def half_write(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(file.tell() // 2)                 # some bytes reached the temp file
        raise KeyboardInterrupt                         # and then the user pressed Ctrl-C
    monkeypatch.setattr(checkpoint_module.np, "savez", half_write)
    with pytest.raises(KeyboardInterrupt):
        save(path, step=99)
    old_file_intact_and_no_temp(tmp_path, path, before)


# ----- bad files ---------------------------------------------------------------------

def test_truncated_file(tmp_path):
    path = save(tmp_path / "ckpt.npz")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path)


def test_flipped_bytes_are_caught_by_the_crc(tmp_path):
    big = {"W": np.random.default_rng(0).standard_normal((64, 64))}
    path = save(tmp_path / "ckpt.npz", model_state=big)
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(CheckpointError, match="truncated or corrupted.*CRC"):
        load_checkpoint(path)


def test_wrong_kind(tmp_path):
    path = save(tmp_path / "ckpt.npz", kind="bert")
    with pytest.raises(CheckpointError, match="is a bert checkpoint, expected gpt"):
        load_checkpoint(path, kind="gpt")
    assert load_checkpoint(path).kind == "bert"          # kind=None accepts any


def rewrite_meta(path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    meta.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_newer_version(tmp_path):
    path = save(tmp_path / "ckpt.npz")
    rewrite_meta(path, version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="written by a newer npfm"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.npz")


def test_not_a_checkpoint(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.zeros(3))
    with pytest.raises(CheckpointError, match="not an npfm checkpoint.*no 'meta'"):
        load_checkpoint(plain)
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(CheckpointError, match="not an npfm checkpoint"):
        load_checkpoint(npy)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not an npfm checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.frombuffer(b'{"format": "something-else"}', dtype=np.uint8))
    with pytest.raises(CheckpointError, match="not an npfm checkpoint"):
        load_checkpoint(other)


def test_pickled_entries_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as z:               # an entry np.load would need pickle for
        with z.open("meta.npy", "w") as f:
            np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    assert os.path.exists(path)
