"""Every headline figure on every seed: run each model's default job, tabulate.

    python benchmarks/outcomes.py                          # every model, seeds 0, 1, 2
    python benchmarks/outcomes.py --models clip-digits,gpt --seeds 0,1 --out runs/outcomes
    python benchmarks/outcomes.py --models gpt --seeds 2 --keep   # add to the table in OUT

For each model and seed the job's commands run one after another as
``python -m npfm ...`` (in a fresh process, with this environment: set
NPFM_NUM_THREADS and OPENBLAS_NUM_THREADS to share a machine), their output
goes to OUT/MODEL/seedS/output.txt, the final figures are read from the
run's metrics.jsonl, eval.json or printed report, and the wall time of each
run is kept. OUT/outcomes.md gets the table the README shows (every seed's
value, the mean and the range of each figure, whether each seed reaches the
floor) and the machine; OUT/outcomes.json the same as data.

The jobs and their floors are those of issue 16 ("every headline result
holds for every seed"). ``--train-args`` and ``--eval-args`` add arguments to
every training and every evaluation command (e.g. a tiny preset for a smoke
run); a figure then says nothing about the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ----- reading a run's figures ------------------------------------------------------

def last_eval(metrics_path):
    """The last record of a metrics.jsonl that holds an evaluation (a "val_loss")."""
    with open(metrics_path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    evals = [r for r in records if "val_loss" in r]
    if not evals:
        raise ValueError(f"{metrics_path}: no evaluation record (no val_loss)")
    return evals[-1]


_ACC_LINE = re.compile(r"^\s+([a-z_]+)\s+(-?[0-9.]+)%\s*$")


def parse_zeroshot(text):
    """{metric: accuracy in [0, 1]} of the first block ("held-out templates: ...")
    of ``npfm zeroshot``'s output, whose lines read "  shape_acc   99.85%"."""
    out, inside = {}, False
    for line in text.splitlines():
        if line.startswith("held-out templates:"):
            inside = True
            continue
        if inside:
            m = _ACC_LINE.match(line)
            if not m:
                if out:
                    break
                continue
            out[m.group(1)] = float(m.group(2)) / 100.0
    if not out:
        raise ValueError("no 'held-out templates:' accuracies in the zeroshot output")
    return out


def read_dalle_eval(path):
    """{figure: value} of ``npfm dalle-eval``'s eval.json: each split's rate and best-of-N."""
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    out = {}
    for split, m in report["match"].items():
        for key, value in m.items():
            if key == "rate" or key.startswith("clip_best_of_"):
                out[f"{split}_{key}"] = float(value)
    return out


# ----- the jobs ------------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    """One headline figure: its name in the run's figures, its label and its floor per seed."""
    key: str
    label: str
    floor: float
    higher_is_better: bool = True
    mean_floor: float | None = None

    def passes(self, value):
        return value >= self.floor if self.higher_is_better else value <= self.floor

    def floor_text(self):
        text = f"{'>=' if self.higher_is_better else '<='} {_fmt(self.key, self.floor)}"
        if self.mean_floor is not None:
            text += f", mean >= {_fmt(self.key, self.mean_floor)}"
        return text


@dataclass(frozen=True)
class Job:
    """The commands of one model's default job and where its figures come from."""
    name: str
    title: str
    figures: tuple = field(default_factory=tuple)

    def commands(self, out, seed, outcomes_dir, train_args=(), eval_args=()):
        """[(argv after ``python -m npfm``, kind)] in order; kind is "train" or "eval".
        An argument may be a function, called just before its command runs (a
        checkpoint that the training command before it writes)."""
        s = str(seed)
        if self.name == "gpt":
            return [(["train", "gpt", "--seed", s, "--out", out, *train_args], "train")]
        if self.name == "bert":
            return [(["train", "bert", "--seed", s, "--out", out, *train_args], "train")]
        if self.name in ("clip", "clip-digits"):
            data = ["--data", "digits"] if self.name == "clip-digits" else []
            return [(["train", "clip", *data, "--seed", s, "--out", out, *train_args], "train"),
                    (["zeroshot", "--checkpoint", lambda: clip_checkpoint(out), *eval_args], "eval")]
        if self.name == "dalle":
            clip_out = os.path.join(outcomes_dir, "clip", f"seed{seed}")
            clip = lambda: clip_checkpoint(clip_out)           # noqa: E731
            return [(["train", "dalle", "--seed", s, "--out", out, *train_args], "train"),
                    (["dalle-eval", "--checkpoint", os.path.join(out, "checkpoint.npz"),
                      "--clip", clip, "--out", out, *eval_args], "eval")]
        raise ValueError(f"unknown model {self.name!r}")

    def read(self, out, output_text):
        """{figure key: value} of a finished run in ``out``."""
        if self.name in ("gpt", "bert"):
            return {k: float(v) for k, v in last_eval(os.path.join(out, "metrics.jsonl")).items()
                    if isinstance(v, (int, float))}
        if self.name in ("clip", "clip-digits"):
            return parse_zeroshot(output_text.split("zero-shot classification on", 1)[-1])
        return read_dalle_eval(os.path.join(out, "eval.json"))


def clip_checkpoint(out):
    """The checkpoint ``npfm zeroshot`` reads: the run's chosen best.npz if it wrote one
    (chosen on validation templates, see npfm.data.digits), else its last checkpoint."""
    best = os.path.join(out, "best.npz")
    return best if os.path.exists(best) else os.path.join(out, "checkpoint.npz")


JOBS = {job.name: job for job in (
    Job("gpt", "`npfm train gpt`",
        (Figure("val_nats_per_byte", "validation nats per byte", 1.52, higher_is_better=False),)),
    Job("bert", "`npfm train bert`",
        (Figure("val_mlm_acc", "held-out MLM accuracy", 0.29),)),
    Job("clip", "`npfm train clip`, `npfm zeroshot`",
        (Figure("shape_acc", "zero-shot shape, held-out images", 0.97),
         Figure("colour_acc", "zero-shot colour, held-out images", 0.97),
         Figure("unseen_shape_acc", "zero-shot shape, never-seen pairs", 0.92),
         Figure("unseen_colour_acc", "zero-shot colour, never-seen pairs", 0.92))),
    Job("clip-digits", "`npfm train clip --data digits`, `npfm zeroshot`",
        (Figure("digit_acc", "zero-shot digit, held-out digits, test templates", 0.93,
                mean_floor=0.95),)),
    Job("dalle", "`npfm train dalle`, `npfm dalle-eval --clip`",
        (Figure("test_rate", "requested shape and colour", 0.90),
         Figure("test_clip_best_of_8", "best of 8 by CLIP", 0.97),
         Figure("unseen_clip_best_of_8", "never-seen pairs, best of 8", 0.90))),
)}
ORDER = ("gpt", "bert", "clip", "clip-digits", "dalle")


# ----- running ---------------------------------------------------------------------------

def run_npfm(argv, log):
    """Run ``python -m npfm ARGV`` from the repository root; returns (exit code, output)."""
    proc = subprocess.run([sys.executable, "-m", "npfm", *argv], cwd=ROOT, env=os.environ.copy(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write(f"$ npfm {shlex.join(argv)}\n{proc.stdout}\n")
    log.flush()
    return proc.returncode, proc.stdout


def run_job(job, seed, outcomes_dir, train_args=(), eval_args=(), runner=run_npfm, eval_only=False):
    """Run one job for one seed; returns its record (figures, seconds, commands, status).
    eval_only: skip the training commands (re-evaluate a finished run)."""
    out = os.path.join(outcomes_dir, job.name, f"seed{seed}")
    os.makedirs(out, exist_ok=True)
    record = {"model": job.name, "seed": seed, "out": out, "seconds": {}, "commands": [],
              "figures": {}, "ok": True}
    if job.name == "dalle":                  # best of 8 needs a CLIP of the same seed
        clip_out = os.path.join(outcomes_dir, "clip", f"seed{seed}")
        if not os.path.exists(os.path.join(clip_out, "checkpoint.npz")):
            record["needs"] = run_job(JOBS["clip"], seed, outcomes_dir, train_args, eval_args, runner)
        elif eval_only:
            record["needs"] = run_job(JOBS["clip"], seed, outcomes_dir, train_args, eval_args, runner,
                                      eval_only=True)
    text = ""
    with open(os.path.join(out, "output.txt"), "a" if eval_only else "w", encoding="utf-8") as log:
        for argv, kind in job.commands(out, seed, outcomes_dir, train_args, eval_args):
            if eval_only and kind == "train":
                continue
            argv = [a() if callable(a) else a for a in argv]
            t0 = time.perf_counter()
            code, output = runner(argv, log)
            record["seconds"][kind] = record["seconds"].get(kind, 0.0) + time.perf_counter() - t0
            record["commands"].append("npfm " + shlex.join(argv))
            text += output
            if code != 0:
                record["ok"] = False
                record["error"] = f"exit status {code}: npfm {shlex.join(argv)} (see {log.name})"
                return record
    record["figures"] = job.read(out, text)
    return record


def machine():
    import numpy
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cores": os.cpu_count(), "numpy": numpy.__version__,
            "NPFM_NUM_THREADS": os.environ.get("NPFM_NUM_THREADS", ""),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "")}


# ----- the table ------------------------------------------------------------------------

def _fmt(key, value):
    """Accuracies and rates as percentages, other figures (nats per byte) as numbers."""
    if value is None:
        return "-"
    if "acc" in key or "rate" in key or "best_of" in key:
        return f"{value:.1%}"
    return f"{value:.3f}"


def _minutes(seconds):
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"


def summarise(records):
    """[{model, figure, label, floor, values {seed: v}, mean, min, max, misses [seeds]}]."""
    rows = []
    for name in ORDER:
        mine = [r for r in records if r["model"] == name]
        if not mine:
            continue
        for fig in JOBS[name].figures:
            values = {r["seed"]: r["figures"].get(fig.key) for r in mine}
            got = [v for v in values.values() if v is not None]
            mean = sum(got) / len(got) if got else None
            misses = [s for s, v in values.items() if v is None or not fig.passes(v)]
            mean_ok = (mean is not None and mean >= fig.mean_floor) if fig.mean_floor is not None else None
            rows.append({"model": name, "figure": fig.key, "label": fig.label,
                         "floor": fig.floor_text(), "values": values, "mean": mean,
                         "min": min(got) if got else None, "max": max(got) if got else None,
                         "misses": misses, "mean_ok": mean_ok})
    return rows


def markdown(records, info):
    """The outcomes as Markdown: figures per seed with mean and range, then wall times."""
    seeds = sorted({r["seed"] for r in records})
    lines = ["| job | figure | floor per seed | " + " | ".join(f"seed {s}" for s in seeds)
             + " | mean | range | every seed |",
             "|---|---|---|" + "---|" * len(seeds) + "---|---|---|"]
    for row in summarise(records):
        k = row["figure"]
        cells = [_fmt(k, row["values"].get(s)) for s in seeds]
        verdict = "yes" if not row["misses"] else "no: seed " + ", ".join(map(str, row["misses"]))
        if row["mean_ok"] is False:
            verdict += "; mean below its floor"
        lines.append(f"| {JOBS[row['model']].title} | {row['label']} | {row['floor']} | "
                     + " | ".join(cells)
                     + f" | {_fmt(k, row['mean'])} | {_fmt(k, row['min'])} to {_fmt(k, row['max'])}"
                     f" | {verdict} |")
    lines += ["", "| job | seed | training | evaluation | status |", "|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (ORDER.index(r["model"]), r["seed"])):
        sec = r["seconds"]
        lines.append(f"| {r['model']} | {r['seed']} | {_minutes(sec['train']) if 'train' in sec else '-'}"
                     f" | {_minutes(sec['eval']) if 'eval' in sec else '-'}"
                     f" | {'ok' if r['ok'] else r.get('error', 'failed')} |")
    lines += ["", f"Machine: {info['platform']}, Python {info['python']}, {info['cores']} cores, "
              f"numpy {info['numpy']}; NPFM_NUM_THREADS={info['NPFM_NUM_THREADS'] or 'unset'}, "
              f"OPENBLAS_NUM_THREADS={info['OPENBLAS_NUM_THREADS'] or 'unset'}."]
    return "\n".join(lines) + "\n"


def write_outcomes(records, out, info=None):
    """Write OUT/outcomes.md and OUT/outcomes.json; returns the Markdown."""
    info = machine() if info is None else info
    text = markdown(records, info)
    os.makedirs(out, exist_ok=True)
    for name, body in (("outcomes.md", text),
                       ("outcomes.json", json.dumps({"machine": info, "runs": records,
                                                     "summary": summarise(records)}, indent=2))):
        path = os.path.join(out, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:    # atomic: a crash keeps the last table
            f.write(body)
        os.replace(path + ".tmp", path)
    return text


def finished_runs(out):
    """The runs recorded in OUT/outcomes.json that finished ({(model, seed): record}), or {}."""
    path = os.path.join(out, "outcomes.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        runs = json.load(f)["runs"]
    return {(r["model"], r["seed"]): r for r in runs if r.get("ok")}


# ----- command line --------------------------------------------------------------------

def _list(text, what, convert=str):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"--{what} is empty")
    try:
        return [convert(t) for t in items]
    except ValueError:
        raise ValueError(f"--{what} must be a comma-separated list of integers, got {text!r}") from None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(ORDER), help=f"comma-separated, from {', '.join(ORDER)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default=os.path.join("runs", "outcomes"))
    p.add_argument("--train-args", default="", help="added to every training command (smoke runs)")
    p.add_argument("--eval-args", default="", help="added to every evaluation command")
    p.add_argument("--keep", action="store_true",
                   help="keep the finished runs recorded in OUT/outcomes.json (any model and seed): "
                        "they are not run again and stay in the table; the table is written "
                        "after every run, so a sweep stopped half-way loses only the run it was in")
    p.add_argument("--eval-only", action="store_true",
                   help="re-run only the evaluations of the runs in OUT (training times are "
                        "kept from OUT/outcomes.json)")
    args = p.parse_args(argv)
    try:
        models = _list(args.models, "models")
        unknown = [m for m in models if m not in JOBS]
        if unknown:
            raise ValueError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(ORDER)}")
        seeds = _list(args.seeds, "seeds", int)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    records, earlier = [], {}
    kept = finished_runs(out) if args.keep and not args.eval_only else {}
    if kept:
        print(f"kept from {os.path.join(out, 'outcomes.json')}: "
              + ", ".join(f"{m} seed {s}" for m, s in kept), flush=True)
    records.extend(kept.values())
    if args.eval_only and os.path.exists(os.path.join(out, "outcomes.json")):
        with open(os.path.join(out, "outcomes.json"), encoding="utf-8") as f:
            earlier = {(r["model"], r["seed"]): r for r in json.load(f)["runs"]}
    for name in sorted(models, key=ORDER.index):   # a DALL-E run reuses the CLIP of its seed
        for seed in seeds:
            if (name, seed) in kept:
                continue
            print(f"{name}, seed {seed} ...", flush=True)
            record = run_job(JOBS[name], seed, out, shlex.split(args.train_args),
                             shlex.split(args.eval_args), eval_only=args.eval_only)
            new = [record.pop("needs")] if "needs" in record else []
            for r in new + [record]:
                before = earlier.get((r["model"], r["seed"]))
                if before is not None and "train" in before["seconds"]:
                    r["seconds"]["train"] = before["seconds"]["train"]
                    r["commands"] = before["commands"][:1] + r["commands"]
                records = [k for k in records if (k["model"], k["seed"]) != (r["model"], r["seed"])]
                records.append(r)
            write_outcomes(records, out)
            shown = ", ".join(f"{k} {_fmt(k, record['figures'].get(k))}"
                              for k in (f.key for f in JOBS[name].figures))
            print(f"  {shown if record['ok'] else record['error']}; "
                  f"{_minutes(sum(record['seconds'].values()))}", flush=True)
    print(write_outcomes(records, out))
    print(f"wrote {os.path.join(out, 'outcomes.md')} and outcomes.json")
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
