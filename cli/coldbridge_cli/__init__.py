"""The ``coldbridge`` command line, above the trainer and the server."""

from __future__ import annotations

__all__: list[str] = []
