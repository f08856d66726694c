"""``python -m coldbridge_server``: serve the bundle named by ``COLDBRIDGE_*`` variables.

The bare server entry point: environment variables only. ``coldbridge serve`` (package
``coldbridge_cli``) adds flags and a TOML file over the same settings.
"""

from __future__ import annotations

import sys

from coldbridge_server.app import serve
from coldbridge_server.config import Settings
from coldbridge_server.errors import ColdbridgeError, ConfigError
from coldbridge_server.observability.logs import configure_logging

__all__ = ["main"]


def main() -> int:
    """Serve until SIGTERM/SIGINT; return the exit status (2: a bad setting, 1: other errors)."""
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        serve(
            settings,
            on_ready=lambda address: print(f"coldbridge: serving on {address}", flush=True),
        )
    except ColdbridgeError as exc:
        print(f"coldbridge: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
