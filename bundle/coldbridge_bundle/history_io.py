"""Write and read the optional ``history`` section: ``history/{ptr,cols,weights}.npy``.

The section holds a :class:`~coldbridge_bundle.history.HistoryModel` (the target item-to-item
CSR and the blend weight per evidence bucket). :func:`read_history` trusts nothing: every
part must be a readable 1-D array of the right kind, ``ptr`` must have ``N_t + 1`` entries
starting at 0 and never decreasing, ``cols`` must index the target items and ``weights``
must be finite, one per column; a failure raises
:class:`~coldbridge_bundle.errors.BundleFileError` naming the file. The manifest fields
(``events``, ``history_weight``) are checked by :class:`~coldbridge_bundle.spec.BundleSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from coldbridge_bundle.errors import BundleFileError
from coldbridge_bundle.history import HistoryModel
from coldbridge_bundle.spec import HISTORY_MODEL_FILES, HistoryModelSpec

__all__ = ["read_history", "write_history"]


def write_history(root: Path, model: HistoryModel, config: Mapping[str, Any]) -> HistoryModelSpec:
    """Save ``model``'s parts under ``root/history/``; its manifest section."""
    (root / "history").mkdir()
    for part, rel in HISTORY_MODEL_FILES.items():
        np.save(root / PurePosixPath(rel), getattr(model, part), allow_pickle=False)
    return HistoryModelSpec(model.events, model.history_weight, dict(config))


def read_history(root: Path, spec: HistoryModelSpec, n_items: int) -> HistoryModel:
    """The validated :class:`HistoryModel` of the section ``spec`` for ``n_items`` target items.

    Raises
    ------
    BundleFileError
        Naming the part file that is unreadable or inconsistent.
    """
    ptr = _load(root / PurePosixPath(spec.ptr), "integer")
    cols = _load(root / PurePosixPath(spec.cols), "integer")
    weights = _load(root / PurePosixPath(spec.weights), "floating")
    _check_ptr(root / PurePosixPath(spec.ptr), ptr, n_items)
    if int(ptr[-1]) != len(cols):
        raise BundleFileError(
            root / PurePosixPath(spec.cols),
            f"{len(cols)} entries, but ptr ends at {int(ptr[-1])}",
        )
    if len(cols) and (int(cols.min()) < 0 or int(cols.max()) >= n_items):
        raise BundleFileError(
            root / PurePosixPath(spec.cols), f"indices outside the {n_items} target items"
        )
    if len(weights) != len(cols):
        raise BundleFileError(
            root / PurePosixPath(spec.weights),
            f"{len(weights)} weights for {len(cols)} columns",
        )
    if not np.all(np.isfinite(weights)):
        raise BundleFileError(root / PurePosixPath(spec.weights), "contains NaN or infinite values")
    return HistoryModel(
        _frozen(ptr.astype(np.int64)),
        _frozen(cols.astype(np.int32)),
        _frozen(weights.astype(np.float32)),
        spec.events,
        spec.history_weight,
    )


_KINDS = {"integer": "iu", "floating": "f"}


def _load(path: Path, kind: str) -> np.ndarray:
    try:
        array: np.ndarray = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleFileError(path, f"not a readable .npy array: {exc}") from exc
    if array.ndim != 1 or array.dtype.kind not in _KINDS[kind]:
        raise BundleFileError(path, f"expected a 1-D {kind} array, got {array.dtype} {array.shape}")
    return array


def _check_ptr(path: Path, ptr: np.ndarray, n_items: int) -> None:
    if len(ptr) != n_items + 1:
        raise BundleFileError(path, f"{len(ptr)} entries, expected N_t + 1 = {n_items + 1}")
    if ptr[0] != 0 or np.any(np.diff(ptr) < 0):
        raise BundleFileError(path, "row pointers must start at 0 and never decrease")


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(array)
    out.setflags(write=False)
    return out
