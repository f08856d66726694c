"""Build the plugin manager and the validated ``{name: strategy class}`` registry."""

from __future__ import annotations

import importlib.metadata
import inspect

import pluggy

from coldbridge_plugins import builtin, hookspecs
from coldbridge_plugins.base import API_VERSION, OUTPUTS, TransferStrategy

__all__ = ["ENTRY_POINT_GROUP", "PluginValidationError", "get_plugin_manager", "load_strategies"]

ENTRY_POINT_GROUP = "coldbridge.strategies"
"""Entry-point group under which packages declare their strategy plugin modules."""


class PluginValidationError(Exception):
    """A strategy plugin breaks the contract; ``plugin`` names it."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"strategy plugin {plugin!r}: {message}")
        self.plugin = plugin


def get_plugin_manager(*, load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the hookspecs, the built-ins and (optionally) entry points."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name="builtin")
    if load_entrypoints:
        _load_entrypoints(pm)
    pm.check_pending()
    return pm


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    """Register every ``coldbridge.strategies`` entry point; a failing import names it."""
    for dist in list(importlib.metadata.distributions()):
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's
                raise PluginValidationError(ep.name, f"cannot be imported: {exc!r}") from exc
            pm.register(plugin, name=ep.name)


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
    if cls.output not in OUTPUTS:
        raise PluginValidationError(
            cls.name, f"output must be one of {OUTPUTS}, got {cls.output!r}"
        )
    if isinstance(getattr(cls, "trainer", None), str):
        raise PluginValidationError(
            cls.name, "names its trainer half by a 'trainer' string; override trainer_class()"
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
        if not isinstance(batch, list | tuple):
            raise PluginValidationError(
                repr(batch), "register_transfer_strategies must return a list"
            )
        for cls in batch:
            strategy = _validate(cls)
            if strategy.name in registry:
                raise PluginValidationError(strategy.name, "duplicate strategy name")
            registry[strategy.name] = strategy
    return registry
