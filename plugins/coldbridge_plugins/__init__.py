"""Transfer-strategy plugins for coldbridge.

A strategy is a class derived from :class:`TransferStrategy`, returned by a
``register_transfer_strategies`` hook implementation. Third-party packages
declare their module under the ``coldbridge`` entry-point group; built-ins are
registered through the same hook.
"""

from __future__ import annotations

from coldbridge_plugins.base import API_VERSION, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl, hookspec
from coldbridge_plugins.manager import (
    ENTRY_POINT_GROUP,
    PluginValidationError,
    get_plugin_manager,
    load_strategies,
)

__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "PluginValidationError",
    "TransferStrategy",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_strategies",
]
