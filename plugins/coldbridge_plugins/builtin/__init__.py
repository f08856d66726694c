"""Strategies shipped with coldbridge, registered through the same hook as plugins.

Each module holds the server half (numpy/onnxruntime only); its ``trainer`` attribute
names the trainer half in :mod:`coldbridge_trainer.strategies`, imported lazily.
"""

from __future__ import annotations

__all__ = ["BUILTIN_MODULES"]

BUILTIN_MODULES = tuple(
    f"coldbridge_plugins.builtin.{name}"
    for name in ("popular", "emcdr", "knn", "itemmap", "kernelmap", "peers", "softmap", "ptupcdr", "cmf", "distill", "fusion")
)
"""Modules registered by :func:`coldbridge_plugins.get_plugin_manager` (in this order)."""
