"""Strategies shipped with coldbridge, registered through the same hook as plugins.

Each built-in is one folder, ``builtin/<name>/``: ``__init__.py`` holds the server half
(numpy/onnxruntime only) and ``train.py`` the trainer half (torch, onnx), which the server
half's :meth:`~coldbridge_plugins.TransferStrategy.trainer_class` imports lazily. The folder
is named after the strategy. Adding a built-in is one folder plus one entry in
:data:`BUILTINS`; this module is the one pluggy plugin (``"builtin"``) that registers them.
"""

from __future__ import annotations

import importlib

from coldbridge_plugins.base import TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["BUILTINS", "builtin_strategies", "register_transfer_strategies"]

BUILTINS = (
    "popular",
    "emcdr",
    "knn",
    "itemmap",
    "kernelmap",
    "peers",
    "softmap",
    "ptupcdr",
    "cmf",
    "distill",
    "fusion",
)
"""Folder names of the built-ins, in registration order (each also the strategy's name)."""


def builtin_strategies() -> list[type[TransferStrategy]]:
    """The server halves of :data:`BUILTINS`: in each folder, the class named like it.

    Raises
    ------
    LookupError
        If a folder does not define exactly one strategy class of its own name.
    """
    return [_strategy_of(name) for name in BUILTINS]


def _strategy_of(name: str) -> type[TransferStrategy]:
    module = importlib.import_module(f"{__name__}.{name}")
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, TransferStrategy)
        and obj.__module__ == module.__name__
        and getattr(obj, "name", None) == name
    ]
    if len(found) != 1:
        raise LookupError(f"builtin/{name}/ must define one strategy named {name!r}: {found}")
    return found[0]


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    """Every built-in strategy (one hook implementation for all of them)."""
    return builtin_strategies()
