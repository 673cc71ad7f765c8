"""The commands ``npfm train dalle``, ``npfm draw`` and ``npfm dalle-eval``: argument parsing and calls into
npfm.tasks.dalle and npfm.evaluation.dalle_judge (what the model brings to the shared loop), nothing else.
"""

import json
import os
import time
import numpy as np
from .flags import add_reference_flag
from .. import argtypes
from ..checkpoint import load_checkpoint
from ..runfolder import check_output_file, check_run_folder
from ..models.dalle import DALLE, DALLEConfig, PRESETS, encode_captions, preset
from ..tokenizers.vq import VQTokenizer
from ..tokenizers.words import WordTokenizer
from ..train import TrainConfig, train
from ..evaluation.dalle_judge import ClipReranker, Judge, evaluate_generator
from ..tasks.dalle import (DATASETS, DATA_OVERRIDES, DALLETask, TEMPERATURE, _words, data_of, draw,
                           load_model, make_data, write_samples)

DEFAULT_OUT = os.path.join("runs", "dalle")


SAMPLES_NAME = "samples.png"


def add_commands(sub, train_models, finetune_models=None):
    p = train_models.add_parser("dalle", help="train a text-to-image transformer (DALL-E style)")
    p.add_argument("--data", default="shapes", choices=sorted(DATASETS),
                   help="shapes (drawn on the spot, default) or digits (needs scikit-learn)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--steps", type=argtypes.positive_int, default=None)
    p.add_argument("--batch-size", type=argtypes.positive_int, default=None)
    p.add_argument("--lr", type=argtypes.positive_float, default=None)
    p.add_argument("--n-train", type=argtypes.positive_int, default=20000, help="training images (shapes)")
    p.add_argument("--codes", type=argtypes.positive_int, default=128, help="codebook size K")
    p.add_argument("--patch", type=argtypes.positive_int, default=2, help="VQ patch size (pixels per side)")
    p.add_argument("--dim", type=argtypes.positive_int, default=None, help="override the preset's width")
    p.add_argument("--layers", type=argtypes.positive_int, default=None, help="override the preset's depth")
    p.add_argument("--dropout", type=argtypes.dropout_rate, default=None)
    p.add_argument("--eval-every", type=argtypes.positive_int, default=None)
    p.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT}-DATA)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (its checkpoint and metrics)")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    add_reference_flag(p)
    p.set_defaults(func=train_command)

    d = sub.add_parser("draw", help="draw images for a caption with a trained text-to-image model")
    d.add_argument("caption", help='e.g. "a large blue square in the bottom right"')
    d.add_argument("--checkpoint", required=True)
    d.add_argument("--samples", type=argtypes.positive_int, default=8, help="images to draw")
    d.add_argument("--out", default="grid.png", help="PNG path of the grid")
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    d.add_argument("--clip", default=None, help="a CLIP checkpoint: keep the best of --candidates")
    d.add_argument("--candidates", type=argtypes.positive_int, default=8, help="samples per image when reranking")
    d.add_argument("--temperature", type=argtypes.nonnegative_float, default=TEMPERATURE)
    d.add_argument("--top-k", type=argtypes.positive_int, default=None)
    d.add_argument("--codebook", default=None, help="a VQ codebook JSON to use instead of the checkpoint's")
    d.add_argument("--seed", type=argtypes.seed, default=None)
    add_reference_flag(d)
    d.set_defaults(func=draw_command)

    e = sub.add_parser("dalle-eval", help="judge a text-to-image checkpoint: attribute match, "
                                          "reranking, unseen pairs, distance to training images")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--clip", default=None, help="a CLIP checkpoint for best-of-N reranking")
    e.add_argument("--captions", type=argtypes.positive_int, default=300, help="held-out captions per split")
    e.add_argument("--samples", type=argtypes.positive_int, default=4, help="images per caption")
    e.add_argument("--candidates", type=argtypes.positive_int, default=8)
    e.add_argument("--temperature", type=argtypes.nonnegative_float, default=TEMPERATURE)
    e.add_argument("--top-k", type=argtypes.positive_int, default=None)
    e.add_argument("--out", default=None,
                   help="folder of eval.json and figures (default: the checkpoint's)")
    e.add_argument("--seed", type=argtypes.seed, default=0)
    add_reference_flag(e)
    e.set_defaults(func=eval_command)


# defaults of the main job: `npfm train dalle` ends within 15 minutes on 2 cores
JOB_DEFAULTS = {
    "shapes": dict(steps=5000, batch_size=32, lr=3e-3, eval_every=1000),
    # 1,437 images only: without dropout a longer run memorises them (59% of the
    # drawings were exact code copies after 3000 steps; 0% with these settings)
    "digits": dict(steps=1500, batch_size=32, lr=3e-3, eval_every=500, dropout=0.2),
}


FIGURE_CAPTIONS = {
    "shapes": ["a large blue square in the bottom right", "a small red circle in the top left",
               "a yellow triangle", "a large white cross in the center", "a green diamond on the left",
               "a small purple ring at the bottom", "a large green circle", "a cyan diamond"],
    "digits": [f"a handwritten {d}" for d in range(10)],
}


def train_command(args):
    defaults = JOB_DEFAULTS[args.data]
    out = args.out or f"{DEFAULT_OUT}-{args.data}"
    check_run_folder(out, args.resume, args.overwrite)
    steps = args.steps or defaults["steps"]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr or defaults["lr"]
    eval_every = args.eval_every or min(defaults["eval_every"], steps)
    t0 = time.perf_counter()
    data = make_data(args.data, n_train=args.n_train, seed=args.seed)
    if args.resume:
        ckpt = load_checkpoint(os.path.join(out, "checkpoint.npz"), kind="dalle")
        if ckpt.need("data") != data.describe():
            raise ValueError(f"--resume: the checkpoint in {out} was trained on {ckpt.need('data')}, "
                             f"this run asks for {data.describe()}")
        words = WordTokenizer.from_dict(ckpt.need("words"))
        vq = VQTokenizer.from_dict(ckpt.need("vq"))
        config = DALLEConfig.from_dict(ckpt.config)
    else:
        words = WordTokenizer.train(data.vocabulary_captions())
        print(f"fitting the image codebook: k-means, {args.codes} codes of "
              f"{args.patch}x{args.patch} patches ...", flush=True)
        vq = VQTokenizer.fit(data.train["images"], n_codes=args.codes, patch=args.patch, seed=args.seed)
        longest = max(len(_words(c)) for c in data.vocabulary_captions())
        overrides = dict(text_vocab=words.vocab_size, text_len=longest + 1, n_codes=args.codes,
                         patch=args.patch, **DATA_OVERRIDES[args.data])
        dropout = args.dropout if args.dropout is not None else defaults.get("dropout")
        for name, value in (("dim", args.dim), ("n_layers", args.layers), ("dropout", dropout)):
            if value is not None:
                overrides[name] = value
        config = preset(args.preset, **overrides)
    error = vq.reconstruction_error(data.train["images"][:2000])
    print(f"data: {args.data}, {len(data.train['images'])} training images; vocabulary "
          f"{words.vocab_size} words")
    print(f"codebook: {vq}; reconstruction MSE {error['mse']:.4f} (PSNR {error['psnr']:.1f} dB)")
    model = DALLE(config, seed=args.seed)
    print(f"model: {config.n_layers} layers, width {config.dim}, {config.n_heads} heads; stream "
          f"[BOS] + {config.text_len} text + [SEP] + {config.n_image_tokens} codes; joint vocabulary "
          f"{config.vocab_size}; {model.num_parameters():,} parameters")
    judge = Judge(data, vq, seed=args.seed)
    task = DALLETask(model, words, vq, data, batch_size=batch_size, judge=judge, seed=args.seed)
    cfg = TrainConfig(steps=steps, lr=lr, min_lr=lr / 10, warmup=min(100, steps // 10),
                      weight_decay=0.1, eval_every=eval_every, checkpoint_every=eval_every,
                      log_every=min(10, steps), seed=args.seed)
    result = train(task, cfg, out, resume=args.resume, overwrite=args.overwrite)
    ev = result.last_eval
    print("\nheld-out: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items()))
    path = write_samples(model, words, vq, FIGURE_CAPTIONS[args.data], os.path.join(out, SAMPLES_NAME),
                         seed=args.seed)
    print(f"checkpoint, metrics.jsonl, loss.png and {os.path.basename(path)} in {out} "
          f"({time.perf_counter() - t0:.0f} s in all)")
    return 0


def draw_command(args):
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    if args.candidates < 1:
        raise ValueError(f"--candidates must be at least 1, got {args.candidates}")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0 (0 = the most likely code), got {args.temperature}")
    check_output_file(args.out, args.overwrite)
    model, words, vq, _ = load_model(args.checkpoint, codebook=args.codebook)
    text_ids = encode_captions(words, args.caption, model.config)[0]
    unknown = [w for w in _words(args.caption) if w not in words.ids]
    if unknown:
        print(f"note: not in the vocabulary, read as [UNK]: {', '.join(unknown)}")
    if len(_words(args.caption)) > model.config.text_len - 1:
        print(f"note: the caption has more than {model.config.text_len - 1} words; "
              f"the model reads \"{words.decode(text_ids)}\"")
    clip = ClipReranker(args.clip, model.config) if args.clip else None
    rng = np.random.default_rng(args.seed)
    images, scores = draw(model, words, vq, [args.caption], args.samples, rng, args.temperature,
                          args.top_k, clip, args.candidates)
    labels = None
    if scores is not None:
        order = np.argsort(-scores, kind="stable")
        images, scores = images[order], scores[order]
        labels = [f"clip {s:.2f}" for s in scores]
    from ..plot import image_grid
    image_grid(images, args.out, nrow=min(args.samples, 8), labels=labels, scale=6)
    how = f", each the best of {args.candidates} by CLIP" if clip else ""
    print(f'wrote {args.out}: {args.samples} images for "{args.caption}"{how}')
    return 0


def eval_command(args):
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    if args.captions < 1:
        raise ValueError(f"--captions must be at least 1, got {args.captions}")
    model, words, vq, ckpt = load_model(args.checkpoint)
    data = data_of(ckpt)
    out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
    os.makedirs(out, exist_ok=True)
    clip = ClipReranker(args.clip, model.config) if args.clip else None
    print(f"judge: a small network on pixel features, fitted on {data.name} training images "
          f"and their VQ reconstructions ...", flush=True)
    judge = Judge(data, vq, seed=args.seed)
    print(f"generating {args.samples} images for each of {args.captions} held-out captions per split "
          f"(temperature {args.temperature}{', top-k ' + str(args.top_k) if args.top_k else ''}):")
    report, generated = evaluate_generator(model, words, vq, data, judge, args.captions, args.samples,
                                           clip, args.candidates, args.temperature, args.top_k,
                                           args.seed)
    print("\nthe judge on real held-out images (and on their VQ reconstructions):")
    for split, acc in report["judge"].items():
        print(f"  {split:<7} " + ", ".join(f"{a} {acc['real'][a]:.1%} ({acc['reconstructed'][a]:.1%})"
                                           for a in acc["real"]))
    print("\ngenerated images showing the requested " + " and ".join(judge.attributes) + ":")
    for split, m in report["match"].items():
        extra = "".join(f", {k.replace('_', ' ')} {v:.1%}" for k, v in m.items() if k.startswith("clip"))
        what = "pairs never seen in training" if split == "unseen" else "held-out captions"
        print(f"  {split:<7} {m['rate']:.1%}{extra}   ({m['images']} images, {what})")
    c = report["copies"]
    median = {k.split("_to_")[0] if "_to_" in k else k: v["median"]
              for k, v in c.items() if isinstance(v, dict)}
    print("\nnot copies (RMS pixel distance, all images through the codebook), medians:")
    print(f"  generated image -> nearest training image      {median['generated']:.3f}"
          f" (10th percentile {c['generated_to_nearest_train']['p10']:.3f})")
    print(f"  real held-out image -> nearest training image  {median['real_held_out']:.3f}")
    print(f"  two training images of one class              {median['same_class_train_pairs']:.3f}"
          f" ({c['class']})")
    print(f"  generated code grids identical to a training image's: {c['exact_code_copies']:.1%}")
    report["settings"] = {k: getattr(args, k) for k in ("checkpoint", "clip", "captions", "samples",
                                                        "candidates", "temperature", "top_k", "seed")}
    with open(os.path.join(out, "eval.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    from ..plot import image_grid
    for split, (images, captions, _) in generated.items():
        k = min(8, len(captions))
        pick = np.arange(k * args.samples)
        labels = [captions[i // args.samples] if i % args.samples == 0 else "" for i in pick]
        image_grid(images[pick], os.path.join(out, f"eval_{split}.png"), nrow=args.samples,
                   labels=labels, scale=6)
    print(f"\nwrote eval.json and eval_*.png in {out}")
    return 0
