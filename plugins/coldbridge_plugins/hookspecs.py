"""pluggy markers and hook specifications of the ``coldbridge`` project."""

from __future__ import annotations

import pluggy

from coldbridge_plugins.base import TransferStrategy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "register_transfer_strategies"]

PROJECT_NAME = "coldbridge"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_transfer_strategies() -> list[type[TransferStrategy]]:  # type: ignore[empty-body]
    """Return the strategy classes this plugin provides."""
