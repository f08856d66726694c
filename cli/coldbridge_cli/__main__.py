"""``python -m coldbridge_cli``: the ``coldbridge`` console script."""

from __future__ import annotations

import sys

from coldbridge_cli.app import main

if __name__ == "__main__":
    sys.exit(main())
