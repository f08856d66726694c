"""``python -m coldbridge_server``: serve the bundle named by ``COLDBRIDGE_*`` variables."""

from __future__ import annotations

import logging
import sys

from coldbridge_server.app import serve
from coldbridge_server.config import Settings
from coldbridge_server.errors import ColdbridgeError

__all__ = ["main"]


def main() -> int:
    """Serve until SIGTERM/SIGINT; return the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        serve(Settings.from_env(), on_ready=lambda address: print(
            f"coldbridge: serving on {address}", flush=True))
    except ColdbridgeError as exc:
        print(f"coldbridge: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
