"""What a writer puts in a bundle: :class:`BundleContent`, checked before anything is written.

The trainer builds the ONNX graphs (``coldbridge_trainer.export``) and hands them here with
the arrays, id lists and metadata; :func:`coldbridge_bundle.write` stores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coldbridge_bundle.history import HistoryModel
from coldbridge_bundle.sessions import SupportsSerialize
from coldbridge_bundle.spec import ARRAY_LAYOUT, FEEDBACK_KINDS, MODEL_KEYS, Sides

__all__ = ["BundleContent", "ModelData", "StrategyContent"]

ModelData = bytes | SupportsSerialize
"""A serialized ONNX model, or an ``onnx.ModelProto`` (anything with ``SerializeToString``)."""


@dataclass(frozen=True)
class StrategyContent:
    """One trained strategy plugin: its parts become ``strategies/<name>/<part>.onnx|.npy``."""

    version: str = ""
    output: str = "embedding"
    config: Mapping[str, Any] = field(default_factory=dict)
    parts: Mapping[str, np.ndarray | ModelData] = field(default_factory=dict)


@dataclass(frozen=True)
class BundleContent:
    """Everything a bundle holds; :meth:`checked_arrays` validates it.

    Parameters
    ----------
    domains
        Source and target domain names.
    feedback
        ``"implicit"`` or ``"explicit"``.
    items, users
        Id lists per side, in index (item) or row (user) order.
    models
        The four base graphs, by :data:`~coldbridge_bundle.spec.MODEL_KEYS`.
    arrays
        The six base arrays, by :data:`~coldbridge_bundle.spec.ARRAY_KEYS` (stored float32).
    encoder_max_history
        Longest history the source encoder reads.
    strategy
        The default strategy.
    strategies
        Trained strategy plugins by name.
    source_histories
        Optional source item indices per source user (stored as a CSR).
    history
        Optional target item-to-item model and blend weights (the ``history`` section,
        ``history/{ptr,cols,weights}.npy``); its ``n_items`` must match ``items.target``.
    history_config
        Free-form JSON-serialisable record of how ``history`` was fitted (manifest
        ``history.config``).
    metrics, config
        Free-form JSON-serialisable training metrics and configuration.
    """

    domains: Sides[str]
    feedback: str
    items: Sides[Sequence[str]]
    users: Sides[Sequence[str]]
    models: Mapping[str, ModelData]
    arrays: Mapping[str, Any]
    encoder_max_history: int = 256
    strategy: str = "emcdr"
    strategies: Mapping[str, StrategyContent] = field(default_factory=dict)
    source_histories: Sequence[np.ndarray] | None = None
    history: HistoryModel | None = None
    history_config: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)

    def dims(self) -> Sides[int]:
        """Embedding widths: the source users' and the target items' columns."""
        src = np.shape(self.arrays["source_user_embeddings"])
        tgt = np.shape(self.arrays["target_item_embeddings"])
        return Sides(int(src[-1]), int(tgt[-1]))

    def checked_arrays(self) -> dict[str, np.ndarray]:
        """The base arrays as float32, after checking the whole content.

        Raises
        ------
        ValueError
            When the feedback, ids, shapes, values, models or strategy names are
            inconsistent; the message names the field.
        """
        if self.feedback not in FEEDBACK_KINDS:
            raise ValueError(f"feedback must be 'implicit' or 'explicit', got {self.feedback!r}")
        for section in ("items", "users"):
            for side in ("source", "target"):
                ids = getattr(getattr(self, section), side)
                if len(set(ids)) != len(ids):
                    raise ValueError(f"{section}.{side}: ids are not unique")
        missing = [key for key in MODEL_KEYS if key not in self.models]
        if missing:
            raise ValueError(f"models: missing {missing}")
        arrays = {key: self._array(key, ndim) for key, (_, _, ndim) in ARRAY_LAYOUT.items()}
        self._check_shapes(arrays)
        self._check_extras()
        return arrays

    def _array(self, key: str, ndim: int) -> np.ndarray:
        if key not in self.arrays:
            raise ValueError(f"arrays.{key}: missing")
        out = np.asarray(self.arrays[key], dtype=np.float32)
        if out.ndim != ndim:
            raise ValueError(f"arrays.{key} must have {ndim} dimensions, got shape {out.shape}")
        if not np.all(np.isfinite(out)):
            raise ValueError(f"arrays.{key} contains non-finite values")
        return out

    def _check_shapes(self, arrays: Mapping[str, np.ndarray]) -> None:
        dims = self.dims()
        for key, (ids, side, ndim) in ARRAY_LAYOUT.items():
            rows = len(getattr(getattr(self, ids), side))
            expected = (rows, getattr(dims, side)) if ndim == 2 else (rows,)
            if arrays[key].shape != expected:
                raise ValueError(
                    f"arrays.{key}: shape {arrays[key].shape}, expected {expected} "
                    f"({ids}.{side} has {rows} ids, {side} dim {getattr(dims, side)})"
                )

    def _check_extras(self) -> None:
        for name in self.strategies:
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"illegal strategy name {name!r}")
        if self.encoder_max_history <= 0:
            raise ValueError(
                f"encoder_max_history must be positive, got {self.encoder_max_history}"
            )
        n_users = len(self.users.source)
        if self.source_histories is not None and len(self.source_histories) != n_users:
            raise ValueError(
                f"source_histories: {len(self.source_histories)} histories "
                f"for {n_users} source users"
            )
        n_items = len(self.items.target)
        if self.history is not None and self.history.n_items != n_items:
            raise ValueError(
                f"history: model over {self.history.n_items} items, items.target has {n_items}"
            )
