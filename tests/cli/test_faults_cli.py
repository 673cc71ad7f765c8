"""Bad values and operating-system errors at the command line (issue 10, items 4 and 5).

Each gives one line ``npfm: error: ...`` naming the problem and exit status 2,
never a traceback and never a silent fallback to a default.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from npfm.checkpoint import save_checkpoint
from npfm.cli import main
from npfm.models.gpt import GPT, preset
from npfm.tokenizers import ByteTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npfm: error: "), err
    return lines[0]


@pytest.fixture
def gpt_checkpoint(tmp_path):
    """An untrained tiny GPT saved as `npfm train gpt` would (no training needed)."""
    def write(name="gpt.npz", scale=None, extra="default", **config_changes):
        model = GPT(preset("tiny"))
        state = model.state_dict()
        if scale is not None:
            state = {k: v * scale for k, v in state.items()}
        path = tmp_path / name
        save_checkpoint(path, kind="gpt", config={**model.config.to_dict(), **config_changes},
                        model_state=state,
                        extra={"tokenizer": ByteTokenizer().to_dict()} if extra == "default" else extra)
        return str(path)
    return write


@pytest.mark.parametrize("args, option", [
    (["train", "gpt", "--steps", "0"], "--steps"),
    (["train", "gpt", "--steps", "-3"], "--steps"),
    (["train", "gpt", "--context", "0"], "--context"),
    (["train", "gpt", "--eval-every", "0"], "--eval-every"),
    (["train", "gpt", "--eval-every", "-1"], "--eval-every"),
    (["train", "gpt", "--batch-size", "0"], "--batch-size"),
    (["train", "gpt", "--seed", "-1"], "--seed"),
    (["train", "gpt", "--lr", "nan"], "--lr"),
    (["train", "gpt", "--dropout", "1.5"], "--dropout"),
    (["train", "bert", "--steps", "0"], "--steps"),
    (["train", "clip", "--batch-size", "0"], "--batch-size"),
    (["train", "dalle", "--eval-every", "0"], "--eval-every"),
    (["generate", "--checkpoint", "x", "--max-new-tokens", "-1"], "--max-new-tokens"),
    (["generate", "--checkpoint", "x", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["generate", "--checkpoint", "x", "--temperature", "inf"], "--temperature"),
    (["generate", "--checkpoint", "x", "--top-k", "1.5"], "--top-k"),
    (["draw", "a red circle", "--checkpoint", "x", "--temperature", "nan"], "--temperature"),
    (["zeroshot", "--checkpoint", "x", "--n", "0"], "--n"),
    (["image-search", "--checkpoint", "x", "--query", "q", "--n", "0"], "--n"),
    (["image-search", "--checkpoint", "x", "--query", "q", "--k", "50", "--n", "10"], "--k"),
    (["gradcheck", "--seed", "-1"], "--seed"),
])
def test_bad_values_are_refused_naming_the_option(capsys, args, option):
    assert main(args) == 2
    assert option in one_error_line(capsys)


def test_a_search_of_one_image_searches_one_image():
    from npfm.tasks.clip import ShapesData
    images, captions, classes = ShapesData().search_pool(1)
    assert len(images) == len(captions) == len(classes) == 1
    assert len(ShapesData().search_pool(10)[0]) == 10


def test_draw_out_a_folder_or_an_existing_file(tmp_path, capsys):
    assert main(["draw", "a red circle", "--checkpoint", str(tmp_path / "none.npz"),
                 "--out", str(tmp_path)]) == 2
    assert "is a folder" in one_error_line(capsys)
    mine = tmp_path / "thesis.png"
    mine.write_bytes(b"precious")
    assert main(["draw", "a red circle", "--checkpoint", str(tmp_path / "none.npz"),
                 "--out", str(mine)]) == 2
    assert "--overwrite" in one_error_line(capsys)
    assert mine.read_bytes() == b"precious"


def test_generate_piped_into_head_has_no_traceback(gpt_checkpoint):
    path = gpt_checkpoint()
    env = {**os.environ, "NPFM_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": ROOT}
    result = subprocess.run(
        f'"{sys.executable}" -m npfm generate --checkpoint "{path}" --max-new-tokens 2000 '
        f'--seed 0 | head -c 20', shell=True, capture_output=True, env=env, cwd=ROOT,
        timeout=300)
    assert len(result.stdout) == 20
    err = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_broken_pipe_is_one_line(monkeypatch, capsys, gpt_checkpoint):
    import npfm.cli.gpt as gpt_job

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(gpt_job, "_stream", closed)
    monkeypatch.setattr(os, "dup2", lambda *a: None)       # keep pytest's stdout
    assert main(["generate", "--checkpoint", gpt_checkpoint()]) == 2
    assert "broken pipe" in one_error_line(capsys)


@pytest.mark.parametrize("changes, message", [
    ({"n_heads": 0}, "n_heads"),
    ({"n_layers": -2}, "n_layers"),
    ({"dim": 4096, "n_layers": 64}, "disagree"),
])
def test_a_bad_checkpoint_config_is_one_line(gpt_checkpoint, capsys, changes, message):
    assert main(["generate", "--checkpoint", gpt_checkpoint(**changes)]) == 2
    assert message in one_error_line(capsys)


def test_a_checkpoint_without_its_tokenizer_is_one_line(gpt_checkpoint, capsys):
    assert main(["generate", "--checkpoint", gpt_checkpoint(extra=None)]) == 2
    assert "no 'tokenizer'" in one_error_line(capsys)
    assert main(["generate", "--checkpoint", gpt_checkpoint("b.npz", extra={"other": 1})]) == 2
    assert "no 'tokenizer'" in one_error_line(capsys)


@pytest.mark.parametrize("temperature", ["0", "0.8"])
def test_nan_weights_are_named_not_sampled(gpt_checkpoint, capsys, temperature):
    path = gpt_checkpoint(scale=np.float32(np.nan))
    assert main(["generate", "--checkpoint", path, "--temperature", temperature,
                 "--max-new-tokens", "3"]) == 2
    assert "NaN" in (line := one_error_line(capsys)) and "damaged" in line


def test_a_codebook_that_is_not_json_is_named(tmp_path):
    from npfm.tokenizers.vq import VQTokenizer
    path = tmp_path / "some.npz"
    np.savez(path, a=np.arange(300))
    with pytest.raises(ValueError, match="some.npz: not a VQ codebook"):
        VQTokenizer.load(str(path))


def test_any_other_error_of_a_command_is_one_line(monkeypatch, capsys):
    import npfm.cli as cli

    def command(args):
        return {}["tokenizer"]

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["gradcheck"].set_defaults(func=command)
    assert main(["gradcheck"]) == 2
    line = one_error_line(capsys)
    assert "KeyError" in line and "tokenizer" in line and "--debug" in line
