"""benchmarks/outcomes.py: reading each job's figures from tiny runs, and the table."""

import contextlib
import io
import json
import os
import sys

import pytest

from npfm.cli import main as npfm_main

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import outcomes  # noqa: E402

CLIP_TINY = ["--preset", "tiny", "--batch-size", "8", "--steps", "2"]


def in_process(argv, log):
    """A runner like outcomes.run_npfm, in this process (seconds instead of a fresh interpreter)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = npfm_main(argv)
    log.write(buffer.getvalue())
    return code, buffer.getvalue()


def test_clip_run_gives_the_zeroshot_figures(tmp_path):
    record = outcomes.run_job(outcomes.JOBS["clip"], 0, str(tmp_path), CLIP_TINY, ["--n", "20"],
                              runner=in_process)
    assert record["ok"], record.get("error")
    figures = record["figures"]
    assert set(figures) == {"shape_acc", "colour_acc", "unseen_shape_acc", "unseen_colour_acc"}
    assert all(0.0 <= v <= 1.0 for v in figures.values())
    # the parsed values are the printed ones
    text = open(os.path.join(record["out"], "output.txt")).read()
    assert f"{figures['shape_acc']:.2%}" in text
    assert set(record["seconds"]) == {"train", "eval"}
    assert record["commands"][1].startswith("npfm zeroshot --checkpoint")


def test_digits_run_reads_the_test_template_accuracy(tmp_path):
    pytest.importorskip("sklearn")
    record = outcomes.run_job(outcomes.JOBS["clip-digits"], 1, str(tmp_path), CLIP_TINY, [],
                              runner=in_process)
    assert record["ok"], record.get("error")
    assert list(record["figures"]) == ["digit_acc"]
    assert "--seed 1" in record["commands"][0]
    # zeroshot reads the step chosen on validation, which only the training writes
    assert record["commands"][1].endswith("best.npz")
    again = outcomes.run_job(outcomes.JOBS["clip-digits"], 1, str(tmp_path), CLIP_TINY, [],
                             runner=in_process, eval_only=True)
    assert len(again["commands"]) == 1 and again["commands"][0].startswith("npfm zeroshot")
    assert again["figures"] == record["figures"] and set(again["seconds"]) == {"eval"}


def test_gpt_run_reads_metrics_jsonl(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.py").write_text("".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(200)))
    args = ["--preset", "tiny", "--data", str(data), "--steps", "4", "--eval-every", "2",
            "--sample-tokens", "0"]
    record = outcomes.run_job(outcomes.JOBS["gpt"], 0, str(tmp_path / "o"), args, runner=in_process)
    assert record["ok"], record.get("error")
    metrics = [json.loads(line) for line in open(os.path.join(record["out"], "metrics.jsonl"))]
    assert record["figures"]["val_nats_per_byte"] == metrics[-1]["val_nats_per_byte"]


def test_a_failing_command_is_recorded_not_raised(tmp_path):
    record = outcomes.run_job(outcomes.JOBS["clip"], 0, str(tmp_path), ["--batch-size", "1"],
                              runner=in_process)
    assert not record["ok"] and "exit status 2" in record["error"]
    assert record["figures"] == {}


def test_dalle_eval_json_is_read(tmp_path):
    # the layout of npfm dalle-eval's eval.json (see evaluate_generator in the dalle job)
    report = {"match": {"test": {"rate": 0.9, "images": 8, "shape": 1.0, "clip_best_of_8": 0.975},
                        "unseen": {"rate": 0.5, "images": 8, "clip_best_of_8": 0.75}}}
    (tmp_path / "eval.json").write_text(json.dumps(report))
    assert outcomes.read_dalle_eval(str(tmp_path / "eval.json")) == {
        "test_rate": 0.9, "test_clip_best_of_8": 0.975,
        "unseen_rate": 0.5, "unseen_clip_best_of_8": 0.75}


def _record(model, seed, figures, ok=True):
    return {"model": model, "seed": seed, "figures": figures, "ok": ok,
            "seconds": {"train": 61.0 + seed, "eval": 2.0}, "commands": []}


INFO = {"platform": "Linux-test", "python": "3.11", "cores": 2, "numpy": "2.0",
        "NPFM_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": ""}


def test_table_has_every_seed_mean_range_and_misses(tmp_path):
    records = [_record("clip-digits", 0, {"digit_acc": 0.97}),
               _record("clip-digits", 1, {"digit_acc": 0.90}),
               _record("clip-digits", 2, {"digit_acc": 0.99}),
               _record("gpt", 0, {"val_nats_per_byte": 1.50}),
               _record("gpt", 1, {"val_nats_per_byte": 1.53})]
    text = outcomes.write_outcomes(records, str(tmp_path), INFO)
    digits = next(line for line in text.splitlines() if "zero-shot digit" in line)
    cells = [c.strip() for c in digits.split("|")[1:-1]]
    assert cells[2] == ">= 93.0%, mean >= 95.0%"
    assert cells[3:6] == ["97.0%", "90.0%", "99.0%"]
    assert cells[6] == "95.3%" and cells[7] == "90.0% to 99.0%"
    assert cells[8] == "no: seed 1"
    gpt = next(line for line in text.splitlines() if "nats per byte" in line)
    cells = [c.strip() for c in gpt.split("|")[1:-1]]
    assert cells[3:6] == ["1.500", "1.530", "-"]         # lower is better; seed 2 did not run
    assert cells[8] == "no: seed 1"
    assert text.index("validation nats") < text.index("zero-shot digit")   # the README's order
    assert "| gpt | 1 | 1 min 02 s | 0 min 02 s | ok |" in text
    assert "2 cores, numpy 2.0" in text
    saved = json.load(open(tmp_path / "outcomes.json"))
    assert saved["machine"] == INFO and len(saved["runs"]) == 5
    row = next(r for r in saved["summary"] if r["figure"] == "digit_acc")
    assert row["misses"] == [1] and row["mean_ok"] is True
    assert (tmp_path / "outcomes.md").read_text() == text


def test_a_low_mean_is_named():
    records = [_record("clip-digits", s, {"digit_acc": 0.94}) for s in range(3)]
    text = outcomes.markdown(records, INFO)
    assert "| yes; mean below its floor |" in text


def test_bad_arguments_give_one_line_and_status_2(capsys):
    assert outcomes.main(["--models", "clip,nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --models: unknown nope") and err.count("\n") == 1
    assert outcomes.main(["--seeds", "0,x"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_keep_runs_only_what_is_missing_and_writes_after_every_run(tmp_path, monkeypatch):
    out = tmp_path / "o"
    earlier = [_record("clip", 0, {"shape_acc": 0.99}),                  # another model: kept
               _record("gpt", 0, {"val_nats_per_byte": 1.50}),
               _record("gpt", 1, {}, ok=False)]                          # failed: run again
    outcomes.write_outcomes(earlier, str(out), INFO)
    ran, tables = [], []

    def fake_run_job(job, seed, outcomes_dir, *args, **kwargs):
        ran.append((job.name, seed))
        if os.path.exists(out / "outcomes.json"):
            runs = json.load(open(out / "outcomes.json"))["runs"]
            tables.append(sorted((r["model"], r["seed"], r["ok"]) for r in runs))
        return _record(job.name, seed, {"val_nats_per_byte": 1.40 + seed / 100})

    monkeypatch.setattr(outcomes, "run_job", fake_run_job)
    monkeypatch.setattr(outcomes, "machine", lambda: INFO)
    assert outcomes.main(["--models", "gpt", "--seeds", "0,1,2", "--out", str(out), "--keep"]) == 0
    assert ran == [("gpt", 1), ("gpt", 2)]
    assert tables[1] == [("clip", 0, True), ("gpt", 0, True), ("gpt", 1, True)]   # written after seed 1
    runs = {(r["model"], r["seed"]): r for r in json.load(open(out / "outcomes.json"))["runs"]}
    assert sorted(runs) == [("clip", 0), ("gpt", 0), ("gpt", 1), ("gpt", 2)]
    assert runs[("gpt", 0)]["figures"] == {"val_nats_per_byte": 1.50}    # kept, not re-run
    assert runs[("gpt", 1)]["ok"] and not os.path.exists(out / "outcomes.json.tmp")
    ran.clear()
    assert outcomes.main(["--models", "gpt", "--seeds", "0", "--out", str(out)]) == 0
    assert ran == [("gpt", 0)]             # without --keep every run asked for runs again
