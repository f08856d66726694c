"""``python -m coldbridge_server``: serve the bundle named by ``COLDBRIDGE_*`` variables."""

from __future__ import annotations

import sys

from coldbridge_server.app import serve
from coldbridge_server.config import Settings
from coldbridge_server.errors import ColdbridgeError
from coldbridge_server.observability.logs import configure_logging

__all__ = ["main"]


def main() -> int:
    """Serve until SIGTERM/SIGINT; return the process exit status."""
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        serve(settings, on_ready=lambda address: print(
            f"coldbridge: serving on {address}", flush=True))
    except ColdbridgeError as exc:
        print(f"coldbridge: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
