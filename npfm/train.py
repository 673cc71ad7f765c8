"""The one training loop every npfm model uses.

A model brings a *task*: its architecture, its batches and its metrics. The
loop brings everything else:

    for step in range(start, steps):
        lr = warmup_cosine(step, ...)                 schedule
        batch = task.train_batch(rng)                 data
        model.zero_grad()
        loss, n_items = task.loss_and_backward(batch)  forward, loss, backward
        clip_grad_norm(params, grad_clip)             clipping
        optimizer.step(); task.after_step()           AdamW (+ e.g. CLIP's clamp)
        progress, evaluation, metrics.jsonl, checkpoints (atomic), resume

A task is any object with these members (see ``npfm.models.gpt.GPTTask``):

    kind                  "gpt", "bert", "clip", ...   (checked on --resume/--init)
    model                 the Module being trained
    unit                  what n_items counts: "tok", "img", "seq"
    config_dict()         JSON-able description to rebuild the model
    extra()               JSON-able extras for the checkpoint (tokenizer, ...)
    train_batch(rng)      a batch drawn with ``rng`` (a np.random.Generator)
    loss_and_backward(b)  -> (loss, n_items); leaves gradients in the Parameters
    loss_sum_and_backward(b)  optional, for gradient accumulation: -> (loss_sum,
                          n_targets, n_items), the loss summed (not averaged) over
                          the batch's n_targets counted targets, and its gradient
    evaluate()            -> {"val_loss": ..., ...}, deterministic, in eval mode
    after_step()          optional, called after each optimizer step

Resuming restores the model, the optimizer, the step and both random
generators (batches and dropout), so a resumed run reproduces exactly the
losses of an uninterrupted one.

Gradient accumulation (``grad_accum = K``) draws K micro-batches per step
and makes the update of one batch K times larger. The large batch's loss is
the mean over *all* its counted targets, L = (sum_k S_k) / (sum_k n_k), with
S_k the summed loss and n_k the counted targets of micro-batch k; the mean of
the K micro-batch means would weight a target of a sparse micro-batch more.
So each micro-batch leaves the gradient of its sum S_k, and the loop divides
the accumulated gradients by N = sum_k n_k once, before clipping. A task
without ``loss_sum_and_backward`` gives each micro-batch's mean the weight
1 / K: the same thing when every micro-batch counts as many targets, but not
a larger batch for a loss that is not a sum over targets (CLIP's contrastive
loss draws its negatives from one micro-batch).

What no fault may do is lose a good checkpoint or a line of metrics:

* the run folder is locked (``npfm.runfolder``): a second run into it is
  refused, naming the process that holds it; a fresh run into a folder
  holding another run's checkpoint is refused unless told ``resume`` or
  ``overwrite``; leftovers of killed saves are removed and a torn last
  metrics line is dropped;
* the loss and the gradient norm are checked at every step, before the
  optimizer touches the weights, and the weights before every save: a
  non-finite value stops the run (``TrainingDivergedError``, naming the
  step and the quantity) and the last good checkpoint is never replaced by
  a non-finite one;
* a loss that climbs far above where it started gets a warning.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .nn.dropout import Dropout
from .runfolder import (RunFolderError, RunLock, make_run_folder, read_jsonl,
                        remove_stale_temporaries)
from .optim import AdamW, clip_grad_norm, param_groups, warmup_cosine
from .progress import Progress

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.jsonl"
CURVE_NAME = "loss.png"
DIVERGENCE_FACTOR = 2.0     # warn when the logged loss is this many times its first value


class TrainingDivergedError(FloatingPointError, ValueError):
    """The loss, the gradient norm or the weights became NaN or infinite."""


@dataclass
class TrainConfig:
    """Optimisation settings shared by every model (defaults suit the tiny models)."""
    steps: int = 1000
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 200
    log_every: int = 10
    checkpoint_every: int = 200
    seed: int = 0
    grad_accum: int = 1

    def __post_init__(self):
        k = self.grad_accum
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"grad_accum (--grad-accum) must be an integer >= 1, got {k!r}")

    def to_dict(self):
        return asdict(self)


@dataclass
class TrainResult:
    """What a run did: the last step, the last evaluation and where files are."""
    step: int
    history: list = field(default_factory=list)
    last_eval: dict = field(default_factory=dict)
    out_dir: str = ""
    seconds: float = 0.0


def share_dropout_rng(model, rng):
    """Point every Dropout in ``model`` at one generator, whose state a checkpoint saves."""
    for _, module in model.named_modules():
        if isinstance(module, Dropout):
            module.rng = rng


def _rng_state(rng):
    return rng.bit_generator.state


def _set_rng_state(rng, state):
    rng.bit_generator.state = state


def _append_jsonl(path, record):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path, last_step, note=None):
    """Keep only the metric lines up to ``last_step`` (what the checkpoint holds).

    A torn last line (a kill during the append) is dropped with a note. The
    file is rewritten through a temporary file and a rename, so a kill here
    loses nothing either.
    """
    if not os.path.exists(path):
        return
    records, _ = read_jsonl(path, note=note)
    keep = [r for r in records if isinstance(r.get("step"), int) and r["step"] <= last_step]
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in keep)
    os.replace(tmp, path)


def read_metrics(path):
    """The records of a metrics.jsonl file, in order (a torn last line is left out)."""
    return read_jsonl(path)[0]


def _non_finite_count(params):
    """How many values of the Parameters are NaN or infinite."""
    return sum(int(p.data.size - np.count_nonzero(np.isfinite(p.data))) for p in params)


def _diverged(what, step, value, config, ckpt_path, last_saved, detail=""):
    where = (f"the last checkpoint with finite weights, {ckpt_path} (step {last_saved}), is "
             f"kept as it was" if last_saved else "no checkpoint was written")
    return TrainingDivergedError(
        f"training stopped: the {what} became {value} at step {step}{detail}; {where}. "
        f"Try a lower --lr (this run: {config.lr:g}; start afresh with --overwrite if the "
        f"saved weights are already far off) or check the data")


def save_task_checkpoint(path, task, optimizer, step, batch_rng, dropout_rng, train_config):
    save_checkpoint(
        path, kind=task.kind, config=task.config_dict(),
        model_state=task.model.state_dict(),
        optimizer_state=optimizer.state_dict() if optimizer is not None else None,
        step=step,
        rng_state={"batches": _rng_state(batch_rng), "dropout": _rng_state(dropout_rng)},
        extra={**task.extra(), "train_config": train_config.to_dict()},
    )


def train(task, config: TrainConfig, out_dir, resume=False, init=None, stream=None,
          plot=True, save=True, overwrite=False):
    """Train ``task.model`` for ``config.steps`` steps; returns a TrainResult.

    out_dir: where checkpoint.npz, metrics.jsonl and loss.png are written.
    resume: continue from out_dir/checkpoint.npz (same losses as a straight run).
    init: a checkpoint path whose model weights start the run (fine-tuning).
    overwrite: start afresh even if out_dir holds another run's checkpoint
    (without it, or resume, such a folder is refused).
    The folder is locked while the run lasts (see ``npfm.runfolder``).
    """
    if not save:
        os.makedirs(out_dir, exist_ok=True)
        return _train(task, config, out_dir, resume, init, stream, plot, save, overwrite)
    out_dir = os.fspath(out_dir)
    make_run_folder(out_dir)

    def note(text):
        print(text, file=sys.stdout if stream is None else stream, flush=True)

    with RunLock(out_dir, note=note):
        remove_stale_temporaries(out_dir, note=note)
        return _train(task, config, out_dir, resume, init, stream, plot, save, overwrite)


def _train(task, config, out_dir, resume, init, stream, plot, save, overwrite):
    """The loop itself (``train`` has checked and locked the folder)."""
    model = task.model
    ckpt_path = os.path.join(out_dir, CHECKPOINT_NAME)
    metrics_path = os.path.join(out_dir, METRICS_NAME)

    def note(text):
        print(text, file=sys.stdout if stream is None else stream, flush=True)

    batch_rng = np.random.default_rng(config.seed)
    dropout_rng = np.random.default_rng(config.seed + 1)
    share_dropout_rng(model, dropout_rng)
    optimizer = AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                      betas=(config.beta1, config.beta2))
    start = 0
    if resume:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = load_checkpoint(ckpt_path, kind=task.kind)
        # a key missing from an older checkpoint takes its default (this run's value)
        if {**task.config_dict(), **ckpt.config} != task.config_dict():
            raise ValueError(f"--resume: the checkpoint's model config {ckpt.config} differs "
                             f"from this run's {task.config_dict()}")
        model.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optimizer_state)
        _set_rng_state(batch_rng, ckpt.rng_state["batches"])
        _set_rng_state(dropout_rng, ckpt.rng_state["dropout"])
        start = ckpt.step
        if start >= config.steps:
            raise ValueError(f"--resume: the checkpoint is at step {start}, "
                             f"nothing left to do for --steps {config.steps}")
        saved_steps = ((ckpt.extra or {}).get("train_config") or {}).get("steps")
        if isinstance(saved_steps, int) and saved_steps != config.steps:
            note(f"note: resuming a run of {saved_steps} steps with --steps {config.steps}: the "
                 f"learning-rate schedule is now stretched to {config.steps} steps, so the losses "
                 f"from step {start + 1} on differ from an uninterrupted {saved_steps}-step run")
        _truncate_metrics(metrics_path, start, note=note if save else None)
    else:
        if save and os.path.exists(ckpt_path) and not overwrite:
            raise RunFolderError(
                f"{out_dir!r} already holds a run's checkpoint ({ckpt_path}): add --resume to "
                f"continue it, --overwrite to replace it, or choose another --out")
        if init is not None:
            ckpt = load_checkpoint(init, kind=task.kind)
            model.load_state_dict(ckpt.model_state)
        if save:
            for name in (CHECKPOINT_NAME, METRICS_NAME, CURVE_NAME):
                if os.path.exists(os.path.join(out_dir, name)):
                    os.remove(os.path.join(out_dir, name))
        elif os.path.exists(metrics_path):
            os.remove(metrics_path)

    params = model.parameters()
    progress = Progress(config.steps, every=config.log_every, start_step=start, unit=task.unit,
                        stream=stream)
    history = read_metrics(metrics_path) if resume and os.path.exists(metrics_path) else []
    last_eval, window, t0 = {}, [], time.perf_counter()
    last_saved = start if resume else None
    first_loss, warned = None, False
    model.train()
    step = start
    try:
        for step in range(start, config.steps):
            lr = warmup_cosine(step, config.lr, config.warmup, config.steps, config.min_lr)
            optimizer.set_lr(lr)
            model.zero_grad()
            if config.grad_accum == 1:
                batch = task.train_batch(batch_rng)
                loss, n_items = task.loss_and_backward(batch)
            else:
                loss, n_items = accumulate_gradients(task, batch_rng, config.grad_accum, params)
            loss = float(loss)
            if not math.isfinite(loss):
                raise _diverged("training loss", step + 1, loss, config, ckpt_path, last_saved)
            grad_norm = clip_grad_norm(params, config.grad_clip)
            if not math.isfinite(grad_norm):      # checked before the weights are touched
                raise _diverged("gradient norm", step + 1, grad_norm, config, ckpt_path,
                                last_saved, detail=f" (the loss was {loss:.4g})")
            optimizer.step()
            if hasattr(task, "after_step"):
                task.after_step()
            window.append(loss)
            done = step + 1
            record = None
            if done % config.eval_every == 0 or done == config.steps:
                model.eval()
                last_eval = task.evaluate()
                model.train()
                record = {}
            if done % config.log_every == 0 or done == config.steps or record is not None:
                record = {"step": done, "train_loss": float(np.mean(window)), "lr": lr,
                          "grad_norm": float(grad_norm),
                          f"{task.unit}_per_s": progress.rate,
                          **({} if record is None else last_eval)}
                window = []
                history.append(record)
                if first_loss is None:
                    first_loss = record["train_loss"]
                elif (not warned and record["train_loss"] > DIVERGENCE_FACTOR * first_loss
                      and record["train_loss"] > first_loss + 1.0):
                    warned = True
                    progress.message(
                        f"warning: the training loss rose from {first_loss:.4g} to "
                        f"{record['train_loss']:.4g} at step {done}: the run is diverging; "
                        f"try a lower --lr (this run: {config.lr:g})")
                if save:
                    _append_jsonl(metrics_path, record)
            progress.update(done, loss, items=n_items,
                            **{k: v for k, v in (record or {}).items() if k.startswith("val")})
            if save and (done % config.checkpoint_every == 0 or done == config.steps):
                bad = _non_finite_count(params)
                if bad:                             # never replace a good checkpoint with this
                    raise _diverged("weights", done, f"non-finite ({bad:,} values)", config,
                                    ckpt_path, last_saved)
                save_task_checkpoint(ckpt_path, task, optimizer, done, batch_rng, dropout_rng, config)
                last_saved = done
    except KeyboardInterrupt:
        where = (f"the checkpoint of step {last_saved} in {ckpt_path} is intact; "
                 f"add --resume to continue") if last_saved else "no checkpoint was written yet"
        progress.message(f"\ninterrupted at step {step}: {where}")
        raise
    if plot and save and history:
        write_loss_curve(history, os.path.join(out_dir, CURVE_NAME), title=f"{task.kind} training")
    return TrainResult(step=config.steps, history=history, last_eval=last_eval, out_dir=out_dir,
                       seconds=time.perf_counter() - t0)


def accumulate_gradients(task, rng, k, params):
    """Backward through ``k`` micro-batches drawn with ``rng``, leaving in ``params``
    the gradient of the mean loss over all their counted targets.

    Returns (that mean loss, the items processed). The grads must be zero on entry.
    """
    sums = hasattr(task, "loss_sum_and_backward")
    total, count, items = 0.0, 0, 0
    for _ in range(k):
        batch = task.train_batch(rng)
        if sums:
            loss_sum, n_targets, n_items = task.loss_sum_and_backward(batch)
        else:
            (loss_sum, n_items), n_targets = task.loss_and_backward(batch), 1
        total += float(loss_sum)
        count += int(n_targets)
        items += int(n_items)
    if count == 0:               # every target ignored: nothing to learn, grads stay 0
        return 0.0, items
    for p in params:
        p.grad *= 1.0 / count    # a Python float keeps float32 grads float32
    return total / count, items


def write_loss_curve(history, path, title=""):
    """A PNG of the training and validation losses in ``history`` (metric records)."""
    from .plot import line_plot
    series = {"train": ([r["step"] for r in history], [r["train_loss"] for r in history])}
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    if val:
        series["validation"] = ([s for s, _ in val], [v for _, v in val])
    line_plot(series, path, title=title, xlabel="step", ylabel="loss")
    return path
