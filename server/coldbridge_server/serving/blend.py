"""The history part of serving: blend a user's transferred scores with their own target events.

A user with at least one applied target event is served

    served = (1 - a(n)) * z(transferred) + a(n) * z(history)

(:meth:`coldbridge_bundle.history.HistoryModel.blend`, the same maths the trainer fits
``a`` with), where ``n`` is the user's number of target events, ``history`` the bundle's
item-to-item scores of their distinct target items and ``transferred`` what the user would
get without the history part, *from the strategy that serves them*:

=====================================  ================================================
user                                   transferred scores ``[N_t]``
=====================================  ================================================
bundle target user                     their vector (online-refined or trained)
strategy with ``output="scores"`` and  that strategy over the source data (the request's
any source data                        ``source_item_ids``, else streamed source events,
                                       else the stored source row)
otherwise, with an online vector       the River-refined online vector
nothing at all                         popularity
=====================================  ================================================

Vector scores are ``V_t @ u + b_t``, the same numbers the ONNX top-k model ranks by.

**Fast path for vector users.** When the transferred part is a vector ``u``, the blend is an
affine map of the vector scores plus a sparse bonus on the history's items::

    served_j = scale * (V_t u + b_t)_j + shift + bonus_j

with ``scale = (1 - a) / std(T)`` (> 0), ``shift`` from the two means and ``bonus_j =
a H_j / std(H)`` on the items ``H`` is non-zero for. The mean and standard deviation of ``T``
over the catalogue come from precomputed moments of ``V_t`` and ``b_t`` in ``O(d^2)``.
All of that, and the support's served scores ranked, only changes with the user's events:
it is prepared once per published state (:mod:`coldbridge_server.serving.prepare`, in the
background as states are published, else on the first request). A request then runs the
batched ONNX top-``n`` of ``u`` (as without the history part) and merges it with the
support's top ``n`` (:meth:`~coldbridge_server.serving.prepare.AffineBlend.merge_top`):
exactly the ranking of :meth:`HistoryModel.blend`, with no per-request work that grows with
the catalogue or the support. A history model with negative weights takes the dense path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from coldbridge_bundle.history import HistoryModel
from coldbridge_plugins import ColdUsers

from coldbridge_server.bundle import Bundle
from coldbridge_server.core import Blend, UserState
from coldbridge_server.serving.prepare import AffineBlend, PreparedBlends
from coldbridge_server.serving.route import StrategyRouter
from coldbridge_server.serving.score import OnnxScorer

__all__ = ["AffineBlend", "HistoryBlender", "PreparedBlends", "vector_scores", "vector_scores_at"]

_EPS = 1e-12


def vector_scores(bundle: Bundle, vector: np.ndarray) -> np.ndarray:
    """``V_t @ u + b_t`` for one target vector (float32 ``[N_t]``)."""
    out = np.einsum("ij,j->i", bundle.target_item_embeddings, vector) + bundle.target_item_bias
    return np.asarray(out, dtype=np.float32)


def vector_scores_at(bundle: Bundle, vector: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``(V_t @ u + b_t)[idx]`` (float64)."""
    rows = bundle.target_item_embeddings[idx].astype(np.float64)
    out = np.einsum("ij,j->i", rows, vector.astype(np.float64)) + bundle.target_item_bias[idx]
    return np.asarray(out, dtype=np.float64)


class HistoryBlender:
    """Blend transferred and history scores for users with streamed target events.

    Parameters
    ----------
    bundle
        The loaded bundle.
    scorer
        Its ONNX models (the source encoder, for a score strategy over a source history).
    router
        The bundle's strategies.
    history
        The bundle's item-to-item model and history weights.
    cache_bytes
        Memory for prepared fast-path blends (:class:`PreparedBlends`); beyond it the
        least recently prepared users are rebuilt on their next request.
    """

    def __init__(
        self,
        bundle: Bundle,
        scorer: OnnxScorer,
        router: StrategyRouter,
        history: HistoryModel,
        *,
        cache_bytes: int = 256 * 2**20,
    ) -> None:
        self.bundle = bundle
        self.scorer = scorer
        self.router = router
        self.history = history
        items = np.asarray(bundle.target_item_embeddings, dtype=np.float64)
        bias = np.asarray(bundle.target_item_bias, dtype=np.float64)
        n = len(items)
        self._mean_v, self._mean_b = items.mean(axis=0), float(bias.mean())
        self._gram, self._cross = items.T @ items / n, items.T @ bias / n
        self._mean_b2 = float(bias @ bias / n)
        self.prepared = PreparedBlends(cache_bytes)

    def affine(self, state: UserState, vector: np.ndarray) -> tuple[AffineBlend | None, Blend]:
        """The fast path's served scores of a vector user.

        ``None`` when ``a = 0``, ``T`` is flat or a history score is negative (a model with
        negative weights): the dense :meth:`blend` serves those.

        Built once per published state and vector (:class:`PreparedBlends`): a state is
        immutable and replaced on every event, so a cached blend is never stale.
        """
        entry = self.prepared.get(state.user_id)
        if entry is not None and entry[0] is state and entry[1] is vector:
            return entry[2], entry[3]
        affine, blend = self._affine(state, vector)
        self.prepared.put(state.user_id, (state, vector, affine, blend))
        return affine, blend

    def _affine(self, state: UserState, vector: np.ndarray) -> tuple[AffineBlend | None, Blend]:
        """:meth:`affine` without the cache."""
        n_events = state.target_events
        blend = Blend(self.history.weight(n_events), n_events, len(state.seen))
        u = np.asarray(vector, dtype=np.float64)
        mean_t = float(self._mean_v @ u) + self._mean_b
        var_t = float(u @ self._gram @ u + 2 * self._cross @ u) + self._mean_b2 - mean_t**2
        a, std_t = blend.history_weight, float(np.sqrt(max(var_t, 0.0)))
        if a <= 0.0 or std_t <= 1e-6 * max(1.0, abs(mean_t)):
            return None, blend
        support, h = self.history.sparse_scores(state.seen)
        n_items = self.history.n_items
        mean_h = float(h.sum()) / n_items
        std_h = float(np.sqrt(max(float(h @ h) / n_items - mean_h**2, 0.0)))
        scale, shift = (1.0 - a) / std_t, -(1.0 - a) * mean_t / std_t
        if std_h <= _EPS:  # z(history) is 0: the vector's order alone
            support, h = support[:0], h[:0]
        else:
            shift -= a * mean_h / std_h
        bonus = a * h / std_h if len(h) else h
        if len(bonus) and not bonus.min() > 0.0:  # merge_top needs positive bonuses
            return None, blend
        served = vector_scores_at(self.bundle, u, support) * scale + shift + bonus
        served32 = served.astype(np.float32)
        order = np.lexsort((support, -served32))
        index_type = np.int32 if n_items < 2**31 else np.int64
        support = support.astype(index_type)
        vector32 = np.asarray(vector, dtype=np.float32)
        ranked, ranked_served = support[order], served32[order]
        return (
            AffineBlend(u, vector32, scale, shift, support, served32, ranked, ranked_served),
            blend,
        )

    def blend(
        self,
        state: UserState,
        name: str,
        vector: np.ndarray | None,
        *,
        known: Sequence[int] = (),
        warm: bool = False,
    ) -> tuple[np.ndarray, Blend]:
        """Served scores (float32 ``[N_t]``, read-only) of a user and the blend used.

        Parameters
        ----------
        state
            The user's online state (``target_events > 0``).
        name
            The strategy serving the user.
        vector
            The user's served vector (online or trained), if any.
        known
            Source item indices the request carried.
        warm
            Whether the user is a bundle target user (their vector is the transferred part).
        """
        transferred = self.transferred(state, name, vector, known=known, warm=warm)
        served, weight = self.history.blend(transferred, state.seen, state.target_events)
        served.setflags(write=False)
        return served, Blend(weight, state.target_events, len(state.seen))

    def transferred(
        self,
        state: UserState,
        name: str,
        vector: np.ndarray | None,
        *,
        known: Sequence[int] = (),
        warm: bool = False,
    ) -> np.ndarray:
        """The user's scores without the history part (table of the module docstring)."""
        if not self.uses_vector(state, name, known=known, warm=warm):
            users = self._source_users(state, known)
            out = None if users is None else self.router.run(name, users)
            if out is not None:
                return np.asarray(out[0])
        if vector is None:
            return np.asarray(self.bundle.target_item_popularity, dtype=np.float32)
        return vector_scores(self.bundle, vector)

    def uses_vector(
        self, state: UserState, name: str, *, known: Sequence[int] = (), warm: bool = False
    ) -> bool:
        """Whether the transferred part is the user's vector (not a score strategy's output)."""
        if warm or self.router.output(name) != "scores":
            return True
        has_source = len(known) or state.source_history
        return not (has_source or state.user_id in self.bundle.source_user_index)

    def _source_users(self, state: UserState, known: Sequence[int]) -> ColdUsers | None:
        """The user's freshest source data: request history, streamed events, stored row."""
        for items in (known, state.source_history):
            if len(items):
                return self.scorer.cold_user(items)
        row = self.bundle.source_user_index.get(state.user_id)
        return None if row is None else self.bundle.stored_source_user(row)
