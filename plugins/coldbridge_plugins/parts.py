"""Instantiate server halves from their bundle parts (files, or in-memory ONNX models)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coldbridge_plugins.base import BridgeFn, StrategyParts, TransferStrategy

__all__ = ["build_strategies", "open_model"]


def open_model(model: Any, threads: int = 1) -> Any:
    """An onnxruntime session for a path, serialized bytes or an ``onnx.ModelProto``."""
    from coldbridge_bundle import open_session

    return open_session(model, threads=threads)


def build_strategies(
    specs: Mapping[str, Mapping[str, Any]],
    registry: Mapping[str, type[TransferStrategy]],
    *,
    bridge: BridgeFn | None = None,
    target_item_embeddings: np.ndarray | None = None,
    target_item_bias: np.ndarray | None = None,
    threads: int = 1,
) -> dict[str, TransferStrategy]:
    """Server halves of every strategy in ``specs``; members see each other as ``peers``.

    Parameters
    ----------
    specs
        ``{name: {"config": {...}, "parts": {part: path | bytes | ModelProto | ndarray}}}``
        (``.npy`` paths are loaded as arrays, anything else opened with onnxruntime).
    registry
        ``{name: strategy class}`` from :func:`~coldbridge_plugins.load_strategies`.

    Raises
    ------
    KeyError
        If a strategy of ``specs`` is not registered (the message names it).
    """
    peers: dict[str, TransferStrategy] = {}
    for name, spec in specs.items():
        if name not in registry:
            raise KeyError(f"strategy {name!r} is not registered; registered: {sorted(registry)}")
        models, arrays = {}, {}
        for part, value in spec.get("parts", {}).items():
            if isinstance(value, np.ndarray):
                arrays[part] = value
            elif isinstance(value, Path) and value.suffix == ".npy":
                arrays[part] = np.load(value, allow_pickle=False)
            else:
                models[part] = open_model(value, threads)
        parts = StrategyParts(
            models,
            arrays,
            dict(spec.get("config", {})),
            bridge,
            target_item_embeddings,
            target_item_bias,
            peers,
        )
        peers[name] = registry[name](parts)
    return peers
