"""``python -m sluiced.ctl``: sluicectl."""

import sys

from . import main

__all__: list[str] = []

sys.exit(main())
