"""Transfer-strategy plugins for coldbridge.

A strategy is a class derived from :class:`TransferStrategy` (server half) whose
:meth:`~TransferStrategy.trainer_class` imports its trainer half (a :class:`StrategyTrainer`)
lazily, returned by a ``register_transfer_strategies`` hook implementation. Third-party
packages declare their module under the ``coldbridge.strategies`` entry-point group;
built-ins (``builtin/<name>/``) are registered through the same hook.

Importing this package never imports torch, onnx or the trainer: graph helpers for trainer
halves are in :mod:`coldbridge_plugins.graph`, the contract checks in
:mod:`coldbridge_plugins.testing`.
"""

from __future__ import annotations

from coldbridge_plugins.base import (
    API_VERSION,
    OUTPUTS,
    ColdUsers,
    OnnxTransferStrategy,
    StrategyParts,
    StrategyTrainer,
    TransferStrategy,
    pad_histories,
)
from coldbridge_plugins.hookspecs import hookimpl, hookspec
from coldbridge_plugins.manager import (
    ENTRY_POINT_GROUP,
    PluginValidationError,
    get_plugin_manager,
    load_strategies,
)
from coldbridge_plugins.parts import build_strategies, open_model

__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "OUTPUTS",
    "ColdUsers",
    "OnnxTransferStrategy",
    "PluginValidationError",
    "StrategyParts",
    "StrategyTrainer",
    "TransferStrategy",
    "build_strategies",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_strategies",
    "open_model",
    "pad_histories",
]
