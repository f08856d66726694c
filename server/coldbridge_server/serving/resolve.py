"""Resolve a user id (plus optional source history) to a target-domain user vector.

Rules (docs/ARCHITECTURE.md, "Resolution"), first match wins. Online state (streamed events,
:mod:`coldbridge_server.core`) is consulted first:

1. ``user_id`` is a bundle target user -> their trained target embedding, plus its online
   updates if they streamed target events (:attr:`Provenance.WARM_TARGET`, stage WARM).
1a. The user streamed target events -> their online vector (prior + learned residual; stage
   WARMING or WARM). Provenance :attr:`Provenance.TRANSFERRED` if the prior came through the
   bridge, :attr:`Provenance.ONLINE` if nothing was known before the events (zero prior).
2. The request carries source item ids the bundle knows -> ``source_encoder`` over that
   history, then ``bridge`` (:attr:`Provenance.TRANSFERRED`). A supplied history wins over a
   stored source embedding: it is the caller's freshest view of the user.
3. ``user_id`` is a bundle source user -> their stored source embedding through ``bridge``
   (:attr:`Provenance.TRANSFERRED`). These bridged vectors are computed on first use and
   cached for the lifetime of the bundle.
3a. (before 3) The user streamed source events and the bundle does not know them -> the
   bridge over the source encoder of those items (the online fold-in), as in rule 2.
4. Otherwise no vector: the caller ranks by popularity (:attr:`Provenance.FALLBACK`),
   with ``fallback_reason`` ``"unknown_user"`` or, when a history was supplied but none
   of its items is known, ``"no_known_source_items"``.

Then the history part (:mod:`coldbridge_server.serving.blend`): a user with applied target
events, when the resolver has a history model (the bundle's, unless ``history_blend`` is
off), is answered with :attr:`ResolvedUser.scores`: their transferred scores (from the
strategy that serves them) blended with the history scores of their events; stage and
provenance stay those of the rules above, :attr:`ResolvedUser.blend` says how much the
history counted.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from coldbridge_bundle.history import HistoryModel
from coldbridge_plugins import ColdUsers

from coldbridge_server.bundle import Bundle
from coldbridge_server.core import (
    Blend,
    Provenance,
    Stage,
    UserState,
    UserStates,
    UserView,
    stage_of,
)
from coldbridge_server.serving.blend import HistoryBlender
from coldbridge_server.serving.prepare import AffineBlend, BlendPreparer
from coldbridge_server.serving.route import StrategyRouter
from coldbridge_server.serving.score import OnnxScorer

__all__ = ["ResolvedUser", "UserResolver", "split_known"]

_PREPARE_QUEUE = 100_000
"""Most users waiting for :class:`BlendPreparer` (the oldest beyond are left to requests)."""


@dataclass(frozen=True, eq=False)
class ResolvedUser:
    """Outcome of :meth:`UserResolver.resolve`.

    ``vector`` is float32 ``[d_t]``, or ``None`` for :attr:`Provenance.FALLBACK`.
    ``unknown_source_ids`` lists the supplied source ids the bundle does not know.
    ``seen`` holds the target item indices of the user's applied streamed events.
    ``scores`` ``[N_t]`` replaces ``vector`` for item-to-item strategies (``output="scores"``);
    ``strategy`` names the strategy chosen for the user; ``blend`` how much the user's own
    target history counted in ``scores`` (``history_weight`` 0: not at all). ``blended``
    replaces ``scores`` for a user whose transferred part is ``vector`` (the fast path of
    :mod:`coldbridge_server.serving.blend`).
    """

    provenance: Provenance
    vector: np.ndarray | None
    fallback_reason: str = ""
    unknown_source_ids: tuple[str, ...] = ()
    stage: Stage = Stage.NEW
    seen: frozenset[int] = frozenset()
    scores: np.ndarray | None = None
    strategy: str = ""
    blend: Blend = Blend()
    blended: AffineBlend | None = None


class UserResolver:
    """Apply the resolution rules against one bundle and its scorer.

    Parameters
    ----------
    bundle
        The loaded bundle.
    scorer
        Scorer over the same bundle (used for ``source_encoder`` and ``bridge``).
    router
        The bundle's transfer strategies (server halves), selection and isolation
        (:class:`~coldbridge_server.serving.route.StrategyRouter`).
    states
        Published online user states (default: none, as without streamed events).
    warm_threshold
        Target events after which an online user is WARM.
    history
        Item-to-item model whose history scores are blended in for users with target events
        (``None``: the transferred answer alone, as before the history part existed).
    prepare
        Build a vector user's blend in the background as soon as their state is published
        (:mod:`coldbridge_server.serving.prepare`), not on their next request.
    """

    def __init__(
        self,
        bundle: Bundle,
        scorer: OnnxScorer,
        router: StrategyRouter,
        *,
        states: UserStates | None = None,
        warm_threshold: int = 10,
        history: HistoryModel | None = None,
        prepare: bool = False,
    ) -> None:
        self.bundle = bundle
        self.scorer = scorer
        self.router = router
        self.states = states if states is not None else UserStates()
        self.warm_threshold = warm_threshold
        self.blender = None if history is None else HistoryBlender(bundle, scorer, router, history)
        self.preparer: BlendPreparer | None = None
        if self.blender is not None and prepare:
            self.preparer = BlendPreparer(self.prepare, capacity=_PREPARE_QUEUE)
            self.states.subscribe(self.preparer.published)
        self._bridged: dict[tuple[str, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def resolve(
        self, user_id: str, source_item_ids: Sequence[str] = (), strategy: str = ""
    ) -> ResolvedUser:
        """Resolve ``user_id``; ``source_item_ids`` is an optional source-domain history.

        ``strategy`` names the transfer strategy to use ("" = the router's choice: sticky
        A/B arm or default); it is reported in :attr:`ResolvedUser.strategy`.
        """
        known, unknown = split_known(source_item_ids, self.bundle.source_item_index)
        state = self.states.get(user_id)  # one read: a consistent snapshot of the user
        name = self.router.choose(user_id, strategy)
        user = self._transferred(user_id, source_item_ids, known, unknown, state, name)
        if state is None or state.target_events <= 0:
            return user
        if self.blender is None or not state.seen:
            return dataclasses.replace(user, blend=Blend(0.0, state.target_events, len(state.seen)))
        warm = user.provenance is Provenance.WARM_TARGET
        if user.vector is not None and self.blender.uses_vector(
            state, name, known=known, warm=warm
        ):
            affine, blend = self.blender.affine(state, user.vector)
            if affine is not None or blend.history_weight <= 0.0:
                return dataclasses.replace(user, blended=affine, blend=blend)
        scores, blend = self.blender.blend(state, name, user.vector, known=known, warm=warm)
        return dataclasses.replace(user, vector=None, scores=scores, blend=blend)

    def prepare(self, user_id: str) -> None:
        """Build and cache the fast-path blend of ``user_id``'s current state (if it has one).

        What :meth:`resolve` does for a request without source ids or strategy, up to the
        blend; a request that resolves differently misses the cache and builds its own.
        """
        state = self.states.get(user_id)
        if self.blender is None or state is None or state.target_events <= 0 or not state.seen:
            return
        name = self.router.choose(user_id)
        user = self._transferred(user_id, (), [], (), state, name)
        warm = user.provenance is Provenance.WARM_TARGET
        if user.vector is not None and self.blender.uses_vector(state, name, warm=warm):
            self.blender.affine(state, user.vector)

    def _transferred(
        self,
        user_id: str,
        source_item_ids: Sequence[str],
        known: list[int],
        unknown: tuple[str, ...],
        state: UserState | None,
        name: str,
    ) -> ResolvedUser:
        """The resolution rules 1-4 of the module docstring (no history part)."""
        seen = state.seen if state is not None else frozenset()
        online = state if state is not None and state.vector is not None else None
        row = self.bundle.target_user_index.get(user_id)
        if row is not None:
            vector = self.bundle.target_user_embeddings[row] if online is None else online.vector
            return ResolvedUser(
                Provenance.WARM_TARGET,
                vector,
                unknown_source_ids=unknown,
                stage=Stage.WARM,
                seen=seen,
                strategy=name,
            )
        if online is not None:
            return dataclasses.replace(self._online(user_id, online, unknown), strategy=name)
        transferred = ResolvedUser(
            Provenance.TRANSFERRED,
            None,
            unknown_source_ids=unknown,
            stage=Stage.TRANSFERRED,
            seen=seen,
            strategy=name,
        )
        src_row = self.bundle.source_user_index.get(user_id)
        if known:
            return self._served(transferred, name, self.scorer.cold_user(known), None)
        if state is not None and state.prior is not None:
            return dataclasses.replace(transferred, vector=state.prior)
        if src_row is not None:
            return self._served(transferred, name, self.bundle.stored_source_user(src_row), src_row)
        reason = "no_known_source_items" if source_item_ids else "unknown_user"
        return ResolvedUser(Provenance.FALLBACK, None, reason, unknown, seen=seen, strategy=name)

    def describe(self, user_id: str) -> UserView:
        """How :meth:`resolve` answers for ``user_id`` without a request history."""
        user = self.resolve(user_id)
        return UserView(
            user.stage, user.provenance, user.strategy or self.router.default, user.blend
        )

    def topk(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The serving model's top ``k`` of ``vectors [B, d_t]`` (see ``OnnxScorer.topk``)."""
        return self.scorer.topk(vectors, k)

    def bundle_prior(self, user_id: str) -> np.ndarray | None:
        """What the bundle alone says about ``user_id``: target row, bridged source row, or None.

        The online learner's prior: the default strategy's embedding when it outputs
        embeddings (the bundle's top-level bridge otherwise, or if it fails).
        """
        row = self.bundle.target_user_index.get(user_id)
        if row is not None:
            return cast(np.ndarray, self.bundle.target_user_embeddings[row])
        row = self.bundle.source_user_index.get(user_id)
        if row is None:
            return None
        key = ("", row)
        cached = self._bridged.get(key)
        if cached is None:
            cached = self._prior(self.bundle.stored_source_user(row))[0]
            cached.setflags(write=False)
            with self._lock:
                cached = self._bridged.setdefault(key, cached)
        return cached

    def bridge_history(self, source_items: Sequence[int]) -> np.ndarray:
        """Prior of a history (indices): source encoder, then the prior strategy, ``[d_t]``."""
        vector = np.array(self._prior(self.scorer.cold_user(list(source_items)))[0])
        vector.setflags(write=False)
        return vector

    def _online(self, user_id: str, state: UserState, unknown: tuple[str, ...]) -> ResolvedUser:
        bridged = state.prior is not None or user_id in self.bundle.source_user_index
        stage = stage_of(
            state, bundle_target=False, has_source=bridged, warm_threshold=self.warm_threshold
        )
        provenance = Provenance.TRANSFERRED if bridged else Provenance.ONLINE
        return ResolvedUser(
            provenance, state.vector, unknown_source_ids=unknown, stage=stage, seen=state.seen
        )

    def _served(
        self, base: ResolvedUser, name: str, users: ColdUsers, row: int | None
    ) -> ResolvedUser:
        """Run strategy ``name`` (cached per stored user for embeddings); failure -> fallback."""
        embedding = self.router.output(name) == "embedding"
        cached = self._bridged.get((name, row)) if row is not None and embedding else None
        if cached is None:
            out = self.router.run(name, users)
            if out is None:
                return dataclasses.replace(
                    base,
                    provenance=Provenance.FALLBACK,
                    fallback_reason="strategy_error",
                    stage=Stage.NEW,
                )
            cached = out[0]
            if row is not None and embedding:
                with self._lock:
                    cached = self._bridged.setdefault((name, row), cached)
        if embedding:
            return dataclasses.replace(base, vector=cached)
        return dataclasses.replace(base, scores=cached)

    def _prior(self, users: ColdUsers) -> np.ndarray:
        name = self.router.default
        if self.router.output(name) == "embedding":
            out = self.router.run(name, users)
            if out is not None:
                return out
        return np.asarray(self.scorer.bridge(users.source_embeddings), dtype=np.float32)


def split_known(ids: Sequence[str], index: Mapping[str, int]) -> tuple[list[int], tuple[str, ...]]:
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
