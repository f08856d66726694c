"""The recommendation domain API: validation, resolution, top-k and candidate scoring.

:class:`RecommendationEngine` is what the gRPC servicer calls; it knows nothing of protobuf.

Documented behaviours
---------------------
* **Limits.** ``user_id`` must be non-empty; ``1 <= k <= max_k``; every id list holds at
  most ``max_request_ids`` entries; every string (``user_id``, ``strategy``, each listed id)
  is at most ``max_id_bytes`` UTF-8 bytes. Violations raise :class:`InvalidRequestError`
  naming the field (``exclude_item_ids[3]``). A ``k`` larger than the number of
  (non-excluded) target items is *not* an error: all of them are returned.
* **Exclusions.** Known ``exclude_item_ids`` never appear in the answer; the model is
  asked for ``k + len(known exclusions)`` items (capped at the item count), the excluded
  ones are dropped and the first ``k`` kept, so exactly ``min(k, N - excluded)`` items
  come back. ``exclude_seen`` also drops the target items of the user's applied streamed
  events (:mod:`coldbridge_server.core`).
* **Unknown ids.** Exclude, candidate and source ids the bundle does not know are ignored
  and returned in ``unknown_item_ids`` (first-seen order, each once; target ids first,
  then source ids). Unknown candidate ids of :meth:`score` are simply not scored.
* **Fallback.** Users that cannot be resolved (see :mod:`coldbridge_server.serving.resolve`)
  get target items ranked by training interaction count (``target_item_popularity.npy``),
  ties broken by item index; the score *is* that count.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coldbridge_server.bundle import Bundle
from coldbridge_server.core import Blend, Provenance, Stage
from coldbridge_server.errors import ConfigError, InvalidRequestError, NotReadyError
from coldbridge_server.limits import check_id, check_ids
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.serving.batch import TopkBatcher
from coldbridge_server.serving.prepare import AffineBlend
from coldbridge_server.serving.resolve import ResolvedUser, UserResolver, split_known
from coldbridge_server.serving.score import OnnxScorer

__all__ = ["Limits", "RecommendationEngine", "Scored", "top_indices"]


@dataclass(frozen=True)
class Limits:
    """Request limits (from :class:`~coldbridge_server.config.Settings`)."""

    max_k: int = 1000
    max_request_ids: int = 1000
    max_id_bytes: int = 256


@dataclass(frozen=True)
class Scored:
    """Answer of :meth:`RecommendationEngine.recommend` and :meth:`~RecommendationEngine.score`.

    ``items`` are ``(item_id, score)`` pairs: best first for recommend, request order for
    score. ``blend`` says how much the user's own target history counted.
    """

    items: list[tuple[str, float]]
    provenance: Provenance
    fallback_reason: str
    unknown_item_ids: tuple[str, ...]
    stage: Stage = Stage.NEW
    strategy: str = ""
    blend: Blend = Blend()


def top_indices(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` best ``scores``, best first, ties by index (a stable argsort's head).

    Partitions first, so ranking ``N`` items costs ``O(N + n log n)``, not ``O(N log N)``.

    Examples
    --------
    >>> top_indices(np.array([1.0, 3.0, 2.0, 3.0, 0.0]), 3).tolist()
    [1, 3, 2]
    """
    if n >= len(scores):
        return np.argsort(-scores, kind="stable")
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = scores[np.argpartition(-scores, n - 1)[:n]].min()
    above = np.flatnonzero(scores > kth)
    chosen = np.concatenate([above, np.flatnonzero(scores == kth)[: n - len(above)]])
    return chosen[np.lexsort((chosen, -scores[chosen]))]


class RecommendationEngine:
    """Serve one bundle with collaborators built by the caller (``app.create_server``).

    Parameters
    ----------
    bundle
        The validated bundle.
    limits
        Request limits.
    scorer
        The bundle's ONNX models (:class:`~coldbridge_server.serving.score.OnnxScorer`).
    resolver
        User resolution over the same bundle, scorer and strategy router
        (:class:`~coldbridge_server.serving.resolve.UserResolver`).
    batcher
        Merges concurrent top-k runs (:class:`~coldbridge_server.serving.batch.TopkBatcher`);
        ``None`` runs each Recommend's top-k on its own.
    metrics
        Where to count answers by provenance and fallbacks by reason (optional).

    Raises
    ------
    ConfigError
        If an item id of the bundle is longer than ``limits.max_id_bytes`` (requests naming
        it would be refused).
    """

    def __init__(
        self,
        bundle: Bundle,
        limits: Limits,
        *,
        scorer: OnnxScorer,
        resolver: UserResolver,
        batcher: TopkBatcher | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        _check_bundle_ids(bundle, limits.max_id_bytes)
        self.bundle = bundle
        self.limits = limits
        self.scorer = scorer
        self.resolver = resolver
        self.router = resolver.router
        self.metrics = metrics
        self._batcher = batcher
        self._popular = np.argsort(-bundle.target_item_popularity, kind="stable")
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        """Whether :meth:`warmup` has completed."""
        return self._ready.is_set()

    def warmup(self) -> None:
        """Run every model once; afterwards requests are accepted."""
        self.scorer.warmup()
        self._ready.set()

    def close(self) -> None:
        """Stop the top-k batcher (after a hot reload replaced this engine)."""
        if self._batcher is not None:
            self._batcher.close()

    def recommend(
        self,
        user_id: str,
        k: int,
        exclude_item_ids: Sequence[str] = (),
        source_item_ids: Sequence[str] = (),
        exclude_seen: bool = False,
        strategy: str = "",
    ) -> Scored:
        """Top-``k`` target items for ``user_id``, best first (see module docs).

        ``strategy`` names the transfer strategy for a cold user ("" = A/B arm or default).
        """
        self._check_request(
            user_id, strategy, exclude_item_ids=exclude_item_ids, source_item_ids=source_item_ids
        )
        if k <= 0:
            raise InvalidRequestError("k", f"must be >= 1, got {k}")
        if k > self.limits.max_k:
            raise InvalidRequestError("k", f"{k} exceeds max_k={self.limits.max_k}")
        excluded, unknown = split_known(exclude_item_ids, self.bundle.target_item_index)
        drop = set(excluded)
        user = self.resolver.resolve(user_id, source_item_ids, strategy)
        if exclude_seen:
            drop |= user.seen
        indices, scores = self._top(user, min(k + len(drop), len(self._popular)))
        ids = self.bundle.target_item_ids
        ranked = zip(indices.tolist(), scores.tolist(), strict=True)
        items = [(ids[i], s) for i, s in ranked if i not in drop][:k]
        return self._answer(items, user, unknown)

    def score(
        self,
        user_id: str,
        item_ids: Sequence[str],
        source_item_ids: Sequence[str] = (),
        strategy: str = "",
    ) -> Scored:
        """Scores of the known ``item_ids`` for ``user_id``, in request order."""
        self._check_request(user_id, strategy, item_ids=item_ids, source_item_ids=source_item_ids)
        known, unknown = split_known(item_ids, self.bundle.target_item_index)
        user = self.resolver.resolve(user_id, source_item_ids, strategy)
        idx = np.asarray(known, dtype=np.int64)
        if user.blended is not None:
            vector = user.blended.vector[None, :]
            scores = user.blended.served_at(idx, self.scorer.score(vector, idx[None, :])[0])
        elif user.scores is not None:
            scores = user.scores[idx]
        elif user.vector is None:
            scores = self.bundle.target_item_popularity[idx]
        else:
            scores = self.scorer.score(user.vector[None, :], idx[None, :])[0]
        ids = self.bundle.target_item_ids
        items = [(ids[i], s) for i, s in zip(known, scores.tolist(), strict=True)]
        return self._answer(items, user, unknown)

    def _top(self, user: ResolvedUser, n: int) -> tuple[np.ndarray, np.ndarray]:
        if user.blended is not None:
            return self._top_blended(user.blended, n)
        if user.scores is not None:  # score strategy or history blend (ties by index)
            order = top_indices(user.scores, n)
            return order, user.scores[order]
        if user.vector is None:
            order = self._popular[:n]
            return order, self.bundle.target_item_popularity[order]
        return self._top_vector(user.vector, n)

    def _top_vector(self, vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self._batcher is not None:
            scores, indices = self._batcher.topk(vector, n)
            return indices, scores
        scores, indices = self.scorer.topk(vector[None, :], n)
        return indices[0], scores[0]

    def _top_blended(self, blended: AffineBlend, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` of the blend: the model's top ``n`` merged with the support's
        (:meth:`AffineBlend.merge_top`)."""
        indices, scores = self._top_vector(blended.vector32, n)
        return blended.merge_top(indices, scores, n)

    def _check_request(self, user_id: str, strategy: str, **id_lists: Sequence[str]) -> None:
        if not self._ready.is_set():
            raise NotReadyError("the model is still loading or warming up")
        if not user_id:
            raise InvalidRequestError("user_id", "must be non-empty")
        max_bytes = self.limits.max_id_bytes
        check_id("user_id", user_id, max_bytes)
        check_id("strategy", strategy, max_bytes)
        for field, ids in id_lists.items():
            if len(ids) > self.limits.max_request_ids:
                raise InvalidRequestError(
                    field, f"{len(ids)} ids exceed max_request_ids={self.limits.max_request_ids}"
                )
            check_ids(field, ids, max_bytes)

    def _answer(
        self, items: list[tuple[str, float]], user: ResolvedUser, unknown_targets: tuple[str, ...]
    ) -> Scored:
        if self.metrics is not None:
            self.metrics.count_answer(
                user.provenance,
                user.strategy or self.router.default,
                user.fallback_reason,
                user.stage,
            )
        unknown = tuple(dict.fromkeys((*unknown_targets, *user.unknown_source_ids)))
        return Scored(
            items,
            user.provenance,
            user.fallback_reason,
            unknown,
            user.stage,
            user.strategy or self.router.default,
            user.blend,
        )


def _check_bundle_ids(bundle: Bundle, max_bytes: int) -> None:
    """Raise :class:`ConfigError` if an item id of ``bundle`` exceeds ``max_bytes``."""
    for ids in (bundle.source_item_ids, bundle.target_item_ids):
        try:
            check_ids("item", ids, max_bytes)
        except InvalidRequestError as exc:
            raise ConfigError(
                "max_id_bytes", f"bundle {bundle.version} has a longer item id ({exc})"
            ) from None
