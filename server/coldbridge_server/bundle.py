"""Loading a model bundle (the trainer -> server contract, docs/ARCHITECTURE.md).

The :mod:`coldbridge_bundle` package owns the contract: :func:`load_bundle` reads through
:func:`coldbridge_bundle.read`, which trusts nothing (format and version, the type of every
manifest field, every listed file present with its sha256, arrays that agree with the id
lists and embedding dims), and turns the result into the server's :class:`Bundle`. Its
errors are mapped here, at one boundary, to :class:`~coldbridge_server.errors.BundleError`
(a ``ModelLoadError``) with the same path and message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coldbridge_bundle
import numpy as np
from coldbridge_bundle import ARRAY_KEYS, MODEL_KEYS, SUPPORTED_FORMAT_VERSIONS, HistoryModel
from coldbridge_bundle import FORMAT as BUNDLE_FORMAT
from coldbridge_plugins import ColdUsers

from coldbridge_server.errors import BundleError

__all__ = [
    "ARRAY_KEYS",
    "BUNDLE_FORMAT",
    "MODEL_KEYS",
    "SUPPORTED_FORMAT_VERSIONS",
    "Bundle",
    "load_bundle",
    "resolve_bundle_dir",
]


@dataclass(frozen=True, eq=False)
class Bundle:
    """A validated bundle: manifest metadata, id lists, arrays and model file paths.

    Id lists are tuples in index order; ``*_index`` map an id to its row/index.
    """

    path: Path
    version: str
    created_at: str
    strategy: str
    feedback: str
    source_domain: str
    target_domain: str
    source_dim: int
    target_dim: int
    encoder_max_history: int
    source_item_ids: tuple[str, ...]
    target_item_ids: tuple[str, ...]
    source_user_ids: tuple[str, ...]
    target_user_ids: tuple[str, ...]
    source_item_index: Mapping[str, int]
    target_item_index: Mapping[str, int]
    source_user_index: Mapping[str, int]
    target_user_index: Mapping[str, int]
    model_paths: Mapping[str, Path]
    source_user_embeddings: np.ndarray
    target_user_embeddings: np.ndarray
    target_item_popularity: np.ndarray
    source_item_embeddings: np.ndarray
    target_item_embeddings: np.ndarray
    target_item_bias: np.ndarray
    metrics: Mapping[str, Any]
    config: Mapping[str, Any]
    strategies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Trained strategy plugins: ``{name: {"version", "output", "config", "parts": {part: Path}}}``.
    """
    source_history_items: np.ndarray | None = None
    source_history_ptr: np.ndarray | None = None
    history: HistoryModel | None = None
    """The target item-to-item model and blend weights (``None``: the bundle has none)."""

    def source_history(self, row: int) -> np.ndarray:
        """Source item indices of bundle source user ``row`` (empty if the bundle has none)."""
        if self.source_history_items is None or self.source_history_ptr is None:
            return np.zeros(0, dtype=np.int64)
        ptr = self.source_history_ptr
        return self.source_history_items[ptr[row] : ptr[row + 1]]

    def stored_source_user(self, row: int) -> ColdUsers:
        """Bundle source user ``row`` as a one-user :class:`ColdUsers` (embedding + history)."""
        return ColdUsers(self.source_user_embeddings[row : row + 1], [self.source_history(row)])


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Re-raise the bundle package's errors as the server's :class:`BundleError`."""
    try:
        yield
    except coldbridge_bundle.BundleError as exc:
        raise BundleError(exc.path, exc.message) from exc


def resolve_bundle_dir(path: Path | str) -> Path:
    """Return the bundle directory ``path`` designates (:func:`coldbridge_bundle.resolve`).

    ``path`` is either a bundle (it holds ``manifest.json``) or a directory of bundle
    versions, of which the newest (greatest name) is returned.

    Raises
    ------
    BundleError
        If ``path`` is neither a bundle nor a directory containing one.
    """
    with _mapped_errors():
        return coldbridge_bundle.resolve(path)


def load_bundle(path: Path | str) -> Bundle:
    """Load and validate the bundle in directory ``path``.

    Raises
    ------
    BundleError
        If the manifest is missing, unreadable, of an unsupported format, or inconsistent
        with the files next to it. The message names the file and manifest field.
    """
    with _mapped_errors():
        loaded = coldbridge_bundle.read(path)
    spec, arrays = loaded.spec, loaded.arrays
    return Bundle(
        path=loaded.path,
        version=spec.bundle_version,
        created_at=spec.created_at,
        strategy=spec.strategy,
        feedback=spec.feedback,
        source_domain=spec.domains.source,
        target_domain=spec.domains.target,
        source_dim=spec.embedding_dim.source,
        target_dim=spec.embedding_dim.target,
        encoder_max_history=spec.encoder_max_history,
        source_item_ids=spec.items.source,
        target_item_ids=spec.items.target,
        source_user_ids=spec.users.source,
        target_user_ids=spec.users.target,
        source_item_index=_index(spec.items.source),
        target_item_index=_index(spec.items.target),
        source_user_index=_index(spec.users.source),
        target_user_index=_index(spec.users.target),
        model_paths=loaded.model_paths(),
        source_user_embeddings=arrays["source_user_embeddings"],
        target_user_embeddings=arrays["target_user_embeddings"],
        target_item_popularity=arrays["target_item_popularity"],
        source_item_embeddings=arrays["source_item_embeddings"],
        target_item_embeddings=arrays["target_item_embeddings"],
        target_item_bias=arrays["target_item_bias"],
        metrics=dict(spec.metrics),
        config=dict(spec.config),
        strategies={
            name: {**s.to_dict(), "parts": loaded.strategy_parts(name)}
            for name, s in spec.strategies.items()
        },
        source_history_items=loaded.source_history_items,
        source_history_ptr=loaded.source_history_ptr,
        history=loaded.history,
    )


def _index(ids: tuple[str, ...]) -> dict[str, int]:
    return {id_: i for i, id_ in enumerate(ids)}
