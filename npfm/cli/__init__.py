"""The ``npfm`` command: one entry, a subcommand per job. This package only
parses arguments and calls the library (``npfm.tasks``, ``npfm.models``,
``npfm.evaluation``); each file adds one model's subcommands.

    npfm gradcheck                 float64 gradient check of every layer and model
    npfm gradcheck --only NAME     ... of some of them (layernorm, attention, GPT, ...)
    npfm train gpt [...]           pre-train / fine-tune a GPT (the main job)
    npfm generate --checkpoint C   sample from a trained GPT, streamed
    npfm train bert / finetune bert / embed / search        the encoder (BERT, MiniLM)
    npfm train clip / zeroshot / image-search              the dual encoder (CLIP)
    npfm train dalle / draw                                text-to-image
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys

from .. import argtypes


def _gradcheck(args):
    from ..checks import main
    return main(seed=args.seed, only=args.only)


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported on one line: ``npfm: error: ...`` (status 2)."""

    def error(self, message):
        message = re.sub(r"^argument ([^:]+): ", r"\1 ", message)
        self.exit(2, f"npfm: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(
        prog="npfm", description="Transformer foundation models from scratch in NumPy.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("gradcheck", help="float64 gradient check of every layer, loss and model")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these checks: a name from the table, or its first word "
                        "(layernorm: the pair and the Module; attention; Block; GPT)")
    p.set_defaults(func=_gradcheck)

    train = sub.add_parser("train", help="train a model: gpt, bert, clip or dalle")
    models = train.add_subparsers(dest="model", metavar="MODEL")
    models.required = True
    finetune = sub.add_parser("finetune", help="fine-tune a pre-trained model on a task")
    finetune_models = finetune.add_subparsers(dest="model", metavar="MODEL")
    finetune_models.required = True

    from . import bert, clip, dalle, gpt
    gpt.add_commands(sub, models)
    for job in (bert, clip, dalle):
        job.add_commands(sub, models, finetune_models)
    from . import course, export
    export.add_commands(sub)
    course.add_commands(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:                  # --help (0) or a bad argument (2)
        return stop.code
    from ..fast import reference
    floor = reference() if getattr(args, "reference", False) else contextlib.nullcontext()
    try:
        with floor:                      # the switch is restored when the command ends
            return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``npfm generate ... | head``): stop quietly, and point
        # stdout at nothing so that Python's final flush does not fail again
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        print("npfm: error: the output was closed before npfm finished (broken pipe)",
              file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, ImportError) as err:
        if getattr(args, "debug", False):
            raise
        print(f"npfm: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:                      # a folder where a file goes, a read-only disk
        if getattr(args, "debug", False):
            raise
        where = f": {err.filename}" if err.filename else ""
        print(f"npfm: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except Exception as err:                    # e.g. a damaged checkpoint's KeyError
        if getattr(args, "debug", False):
            raise
        print(f"npfm: error: {type(err).__name__}: {err} (add --debug for the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
