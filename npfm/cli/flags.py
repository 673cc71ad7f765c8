"""Flags that several commands share; apart from ``npfm/cli/__init__.py``,
which imports every command, so that no command imports it back."""


def add_reference_flag(parser):
    """``--reference`` on a training or sampling command: run it on the textbook floor."""
    parser.add_argument("--reference", action="store_true",
                        help="run on the textbook floor alone (npfm.functional, no fast kernels)")
