"""Build the plugin manager and the validated ``{name: strategy class}`` registry."""

from __future__ import annotations

import inspect

import pluggy

from coldbridge_plugins import hookspecs
from coldbridge_plugins.base import API_VERSION, TransferStrategy
from coldbridge_plugins.builtin import emcdr

__all__ = ["ENTRY_POINT_GROUP", "PluginValidationError", "get_plugin_manager", "load_strategies"]

ENTRY_POINT_GROUP = "coldbridge"
BUILTIN_MODULES = (emcdr,)


class PluginValidationError(Exception):
    """A strategy plugin breaks the contract; ``plugin`` names it."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"strategy plugin {plugin!r}: {message}")
        self.plugin = plugin


def get_plugin_manager(*, load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the hookspecs, the built-ins and (optionally) entry points."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for module in BUILTIN_MODULES:
        pm.register(module)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


def _validate(cls: object) -> type[TransferStrategy]:
    label = getattr(cls, "name", None) or getattr(cls, "__name__", repr(cls))
    if not (inspect.isclass(cls) and issubclass(cls, TransferStrategy)):
        raise PluginValidationError(str(label), "is not a TransferStrategy subclass")
    for attr in ("name", "version"):
        if not isinstance(getattr(cls, attr, None), str) or not getattr(cls, attr):
            raise PluginValidationError(str(label), f"missing class attribute {attr!r}")
    if cls.api_version != API_VERSION:
        raise PluginValidationError(
            cls.name, f"declares api_version {cls.api_version}, this server speaks {API_VERSION}"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginValidationError(cls.name, f"does not implement {missing}")
    return cls


def load_strategies(pm: pluggy.PluginManager | None = None) -> dict[str, type[TransferStrategy]]:
    """Collect every registered strategy, validated; a duplicate name is an error."""
    pm = pm or get_plugin_manager()
    registry: dict[str, type[TransferStrategy]] = {}
    for batch in pm.hook.register_transfer_strategies():
        for cls in batch:
            strategy = _validate(cls)
            if strategy.name in registry:
                raise PluginValidationError(strategy.name, "duplicate strategy name")
            registry[strategy.name] = strategy
    return registry
