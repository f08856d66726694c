"""Resolve a user id (plus optional source history) to a target-domain user vector.

Rules (docs/ARCHITECTURE.md, "Resolution"), first match wins:

1. ``user_id`` is a bundle target user -> their trained target embedding
   (:attr:`Provenance.WARM_TARGET`).
2. The request carries source item ids the bundle knows -> ``source_encoder`` over that
   history, then ``bridge`` (:attr:`Provenance.TRANSFERRED`). A supplied history wins over a
   stored source embedding: it is the caller's freshest view of the user.
3. ``user_id`` is a bundle source user -> their stored source embedding through ``bridge``
   (:attr:`Provenance.TRANSFERRED`). These bridged vectors are computed on first use and
   cached for the lifetime of the bundle.
4. Otherwise no vector: the caller ranks by popularity (:attr:`Provenance.FALLBACK`),
   with ``fallback_reason`` ``"unknown_user"`` or, when a history was supplied but none
   of its items is known, ``"no_known_source_items"``.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from coldbridge_plugins import TransferStrategy

from coldbridge_server.bundle import Bundle
from coldbridge_server.scoring import OnnxScorer

__all__ = ["Provenance", "ResolvedUser", "UserResolver", "split_known"]


class Provenance(enum.Enum):
    """Where a user's vector came from (mirrors the proto enum)."""

    WARM_TARGET = "warm_target"
    TRANSFERRED = "transferred"
    FALLBACK = "fallback"


@dataclass(frozen=True, eq=False)
class ResolvedUser:
    """Outcome of :meth:`UserResolver.resolve`.

    ``vector`` is float32 ``[d_t]``, or ``None`` for :attr:`Provenance.FALLBACK`.
    ``unknown_source_ids`` lists the supplied source ids the bundle does not know.
    """

    provenance: Provenance
    vector: np.ndarray | None
    fallback_reason: str = ""
    unknown_source_ids: tuple[str, ...] = ()


class UserResolver:
    """Apply the resolution rules against one bundle and its scorer.

    Parameters
    ----------
    bundle
        The loaded bundle.
    scorer
        Scorer over the same bundle (used for ``source_encoder`` and ``bridge``).
    strategy
        The bundle's transfer strategy (server half): turns source embeddings into
        initial target embeddings, given the bundle's bridge.
    """

    def __init__(self, bundle: Bundle, scorer: OnnxScorer, strategy: TransferStrategy) -> None:
        self.bundle = bundle
        self.scorer = scorer
        self.strategy = strategy
        self._bridged: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def resolve(self, user_id: str, source_item_ids: Sequence[str] = ()) -> ResolvedUser:
        """Resolve ``user_id``; ``source_item_ids`` is an optional source-domain history."""
        known, unknown = split_known(source_item_ids, self.bundle.source_item_index)
        row = self.bundle.target_user_index.get(user_id)
        if row is not None:
            vector = self.bundle.target_user_embeddings[row]
            return ResolvedUser(Provenance.WARM_TARGET, vector, unknown_source_ids=unknown)
        if known:
            vector = self._transfer(self.scorer.encode_source([known]))[0]
            return ResolvedUser(Provenance.TRANSFERRED, vector, unknown_source_ids=unknown)
        row = self.bundle.source_user_index.get(user_id)
        if row is not None:
            return ResolvedUser(Provenance.TRANSFERRED, self._bridge_source_user(row),
                                unknown_source_ids=unknown)
        reason = "no_known_source_items" if source_item_ids else "unknown_user"
        return ResolvedUser(Provenance.FALLBACK, None, reason, unknown)

    def _bridge_source_user(self, row: int) -> np.ndarray:
        cached = self._bridged.get(row)
        if cached is None:
            cached = self._transfer(self.bundle.source_user_embeddings[row : row + 1])[0]
            cached.setflags(write=False)
            with self._lock:
                cached = self._bridged.setdefault(row, cached)
        return cached


    def _transfer(self, source_embeddings: np.ndarray) -> np.ndarray:
        return self.strategy.initial_embeddings(source_embeddings, self.scorer.bridge)


def split_known(
    ids: Sequence[str], index: Mapping[str, int]
) -> tuple[list[int], tuple[str, ...]]:
    """Split ``ids`` into indices of known ids (order and duplicates kept) and unknown ids.

    Unknown ids are returned in first-seen order, each once.
    """
    lookup = index.get
    known: list[int] = []
    unknown: dict[str, None] = {}
    for item_id in ids:
        position = lookup(item_id)
        if position is None:
            unknown.setdefault(item_id, None)
        else:
            known.append(position)
    return known, tuple(unknown)
