"""The commands ``npfm train clip``, ``npfm zeroshot`` and ``npfm image-search``: argument parsing and calls into
npfm.tasks.clip (what the model brings to the shared loop), nothing else.
"""

import os
import numpy as np
from .flags import add_reference_flag
from .. import argtypes
from ..checkpoint import load_checkpoint
from ..runfolder import check_run_folder
from ..models.clip import CLIP, CLIPConfig, PRESETS, class_recall, preset
from ..tokenizers.words import WordTokenizer
from ..train import TrainConfig, train
from ..tasks.clip import (BEST_NAME, CLIPTask, DATASETS, DATA_OVERRIDES, SELECTION_METRIC,
                          load_model, make_data, write_best_checkpoint, write_similarity_figure,
                          zero_shot_report)

DEFAULT_OUT = os.path.join("runs", "clip")


SIMILARITY_NAME = "similarity.png"


def add_commands(sub, train_models, finetune_models=None):
    p = train_models.add_parser("clip", help="train a CLIP (image and text towers, contrastive)")
    p.add_argument("--data", default="shapes", choices=sorted(DATASETS),
                   help="shapes (drawn on the spot, default) or digits (needs scikit-learn)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--steps", type=argtypes.positive_int, default=None)
    p.add_argument("--batch-size", type=argtypes.positive_int, default=None)
    p.add_argument("--lr", type=argtypes.positive_float, default=None)
    p.add_argument("--eval-every", type=argtypes.positive_int, default=None)
    p.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT}-DATA)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (its checkpoint and metrics)")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    add_reference_flag(p)
    p.set_defaults(func=train_command)

    z = sub.add_parser("zeroshot", help="zero-shot classification with a trained CLIP")
    z.add_argument("--checkpoint", required=True)
    z.add_argument("--n", type=argtypes.positive_int, default=2000, help="held-out images per split (shapes)")
    z.set_defaults(func=zeroshot_command)

    s = sub.add_parser("image-search", help="rank held-out images for a text query (trained CLIP)")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--query", required=True, help='e.g. "a red circle"')
    s.add_argument("--k", type=argtypes.positive_int, default=8, help="how many images to show")
    s.add_argument("--n", type=argtypes.positive_int, default=500, help="held-out images to search (shapes)")
    s.add_argument("--out", default=None, help="PNG path (default: search.png next to the checkpoint)")
    s.add_argument("--image", type=argtypes.positive_int, default=None,
                   help="also rank the distinct captions for held-out image number IMAGE")
    s.set_defaults(func=image_search_command)


# defaults of the main job: `npfm train clip` ends within 10 minutes on 2 cores
JOB_DEFAULTS = {
    "shapes": dict(steps=6000, batch_size=128, lr=2e-3, eval_every=500),
    "digits": dict(steps=2000, batch_size=128, lr=2e-3, eval_every=500),
}


def train_command(args):
    defaults = JOB_DEFAULTS[args.data]
    out = args.out or f"{DEFAULT_OUT}-{args.data}"
    steps = args.steps or defaults["steps"]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr or defaults["lr"]
    eval_every = args.eval_every or min(defaults["eval_every"], steps)
    check_run_folder(out, args.resume, args.overwrite)
    ckpt = None
    if args.resume:                      # a mismatch is named before any data is made
        ckpt = load_checkpoint(os.path.join(out, "checkpoint.npz"), kind="clip")
        if ckpt.need("data")["name"] != args.data:
            raise ValueError(f"--resume: the checkpoint in {out} was trained on "
                             f"{ckpt.need('data')['name']}, not {args.data}")
    data = make_data(args.data, seed=args.seed)
    if ckpt is not None:
        tokenizer = WordTokenizer.from_dict(ckpt.need("tokenizer"))
        config = CLIPConfig.from_dict(ckpt.config)
    else:
        tokenizer = WordTokenizer.train(data.vocabulary_captions())
        config = preset(args.preset, vocab_size=tokenizer.vocab_size, eot_id=tokenizer.eot_id,
                        **DATA_OVERRIDES[args.data])
    model = CLIP(config, seed=args.seed)
    print(f"data: {args.data}; vocabulary {tokenizer.vocab_size} words")
    print(f"model: CLIP, width {config.dim}, {config.image_layers} image + {config.text_layers} "
          f"text layers, {config.n_patches} patches of {config.patch}x{config.patch}, joint space "
          f"{config.embed_dim}; {model.num_parameters():,} parameters")
    task = CLIPTask(model, tokenizer, data, batch_size=batch_size)
    task.step = ckpt.step if ckpt is not None else 0
    cfg = TrainConfig(steps=steps, lr=lr, min_lr=lr / 10, warmup=min(100, steps // 10),
                      weight_decay=0.1, eval_every=eval_every, checkpoint_every=eval_every,
                      log_every=min(10, steps), seed=args.seed)
    if not args.resume and os.path.exists(os.path.join(out, BEST_NAME)):
        os.remove(os.path.join(out, BEST_NAME))      # an earlier run's choice is not this run's
    result = train(task, cfg, out, resume=args.resume, overwrite=args.overwrite)
    ev = result.last_eval
    print("\nheld-out: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items()))
    path = write_similarity_figure(model, tokenizer, data, os.path.join(out, SIMILARITY_NAME))
    print(f"checkpoint, metrics.jsonl, loss.png and {os.path.basename(path)} in {out}")
    if task.best is not None:
        best = write_best_checkpoint(task, os.path.join(out, BEST_NAME), keep_better=args.resume)
        print(f"{BEST_NAME}: the weights of step {best['step']}, the best {SELECTION_METRIC} "
              f"{best['value']:.4f} (validation templates and images; the test templates choose "
              f"nothing): npfm zeroshot --checkpoint {os.path.join(out, BEST_NAME)}")
    return 0


def zeroshot_command(args):
    model, tokenizer, data = load_model(args.checkpoint)
    print(f"zero-shot classification on {data.name}: prompts from templates never used in "
          f"training, ensembled per class")
    rows = [("held-out templates", None)]
    if data.name == "shapes":
        rows.append(("class-name templates", data.shapes.ZERO_SHOT_TEMPLATES))
    for label, templates in rows:
        report = zero_shot_report(model, tokenizer, data, n=args.n, templates=templates)
        print(f"\n{label}: " + "; ".join(
            templates or (data.shapes.HELDOUT_TEMPLATES if data.name == "shapes"
                          else data.digits.HELDOUT_TEMPLATES)))
        for name, acc in report.items():
            print(f"  {name:<20} {acc:7.2%}")
    return 0


def image_search_command(args):
    if args.k > args.n:
        raise ValueError(f"--k {args.k} is more than --n {args.n}, the images searched: "
                         f"give --k <= --n")
    model, tokenizer, data = load_model(args.checkpoint)
    images, captions, classes = data.search_pool(args.n)
    if args.k > len(images):
        raise ValueError(f"--k {args.k} is more than the {len(images)} images searched "
                         f"(--n {args.n}): give --k <= --n")
    image_emb = model.encode_images(images)                                         # (N, E)
    query = model.encode_texts(tokenizer.encode_batch([args.query], model.config.context))[0]
    scores = image_emb @ query                                                      # (N,)
    unknown = [w for w in tokenizer.encode(args.query) if w == tokenizer.unk_id]
    if unknown:
        print(f"note: {len(unknown)} word(s) of the query are not in the vocabulary ([UNK])")
    order = np.argsort(-scores, kind="stable")[:args.k]
    print(f'query "{args.query}": the {args.k} best of {len(images)} held-out images')
    for rank, i in enumerate(order, 1):
        print(f"  #{rank}  {scores[i]:.3f}  {captions[i]}")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "search.png")
    from ..plot import search_figure
    search_figure(args.query, images[order], scores[order], out)
    print(f"wrote {out}")
    text_emb = model.encode_texts(tokenizer.encode_batch(captions, model.config.context))
    if args.image is not None:
        if not 0 <= args.image < len(images):
            raise ValueError(f"--image must be in [0, {len(images)}), got {args.image}")
        distinct = sorted(set(captions))
        first = [captions.index(c) for c in distinct]
        caption_scores = text_emb[first] @ image_emb[args.image]                  # (distinct,)
        print(f'image {args.image} (its caption: "{captions[args.image]}"): the best captions')
        for rank, j in enumerate(np.argsort(-caption_scores, kind="stable")[:5], 1):
            print(f"  #{rank}  {caption_scores[j]:.3f}  {distinct[j]}")
    recall = class_recall(image_emb @ text_emb.T, classes, classes)
    print("class-level recall on these images and their captions: "
          f"text->image R@1 {recall['t2i@1']:.2%}, R@5 {recall['t2i@5']:.2%}; "
          f"image->text R@1 {recall['i2t@1']:.2%}, R@5 {recall['i2t@5']:.2%}")
    return 0
