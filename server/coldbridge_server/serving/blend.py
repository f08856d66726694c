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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from coldbridge_bundle.history import HistoryModel
from coldbridge_plugins import ColdUsers

from coldbridge_server.bundle import Bundle
from coldbridge_server.core import Blend, UserState
from coldbridge_server.serving.route import StrategyRouter
from coldbridge_server.serving.score import OnnxScorer

__all__ = ["HistoryBlender", "vector_scores"]


def vector_scores(bundle: Bundle, vector: np.ndarray) -> np.ndarray:
    """``V_t @ u + b_t`` for one target vector (float32 ``[N_t]``)."""
    out = np.einsum("ij,j->i", bundle.target_item_embeddings, vector) + bundle.target_item_bias
    return np.asarray(out, dtype=np.float32)


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
    """

    def __init__(
        self, bundle: Bundle, scorer: OnnxScorer, router: StrategyRouter, history: HistoryModel
    ) -> None:
        self.bundle = bundle
        self.scorer = scorer
        self.router = router
        self.history = history

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
        if not warm and self.router.output(name) == "scores":
            users = self._source_users(state, known)
            out = None if users is None else self.router.run(name, users)
            if out is not None:
                return np.asarray(out[0])
        if vector is None:
            return np.asarray(self.bundle.target_item_popularity, dtype=np.float32)
        return vector_scores(self.bundle, vector)

    def _source_users(self, state: UserState, known: Sequence[int]) -> ColdUsers | None:
        """The user's freshest source data: request history, streamed events, stored row."""
        for items in (known, state.source_history):
            if len(items):
                history = np.asarray(items, dtype=np.int64)
                return ColdUsers(self.scorer.encode_source([history]), [history])
        row = self.bundle.source_user_index.get(state.user_id)
        if row is None:
            return None
        embeddings = self.bundle.source_user_embeddings[row : row + 1]
        return ColdUsers(embeddings, [self.bundle.source_history(row)])
