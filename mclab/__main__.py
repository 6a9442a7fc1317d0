"""``python -m mclab ...``: the same commands as the ``mclab`` script (used where a fresh process is needed)."""
import sys

from .cli import main

sys.exit(main())
