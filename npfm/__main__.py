"""``python -m npfm`` is the ``npfm`` command."""
import sys

from .cli import main

sys.exit(main())
