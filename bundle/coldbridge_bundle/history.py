"""The history part of a bundle: a target-domain item-to-item model and the blend by evidence.

A user's streamed target events are a *history*; the trainer fits a target-domain
item-to-item model (top-``k`` EASE weights per item, learned on every target training user)
and stores it as a CSR from each item to the items it predicts, so that scoring a history
touches ``len(history) * k`` weights, not ``N_t^2``::

    history_scores[j] = sum over items i of the history of W[i, j]

The served list blends the user's *transferred* scores (what their strategy gives without
target events, refined online) with these history scores, each standardised over the
catalogue, with a history weight ``a(n)`` that grows with the number ``n`` of the user's
target events (:meth:`HistoryModel.weight`; fitted by the trainer on valid users only)::

    served = (1 - a(n)) * z(transferred) + a(n) * z(history)        (a(0) = 0: unchanged)

Both the trainer (to fit ``a``) and the server (to serve) call :meth:`HistoryModel.blend`,
so the two can never disagree on the maths.

Examples
--------
>>> import numpy as np
>>> model = HistoryModel.from_neighbours(
...     np.array([[1], [0], [1]]), np.array([[0.5], [0.5], [2.0]], dtype=np.float32),
...     events=(1, 3), history_weight=(0.5, 0.9))
>>> model.scores([1]).tolist()     # item 1 predicts items 0 and 2
[0.5, 0.0, 2.0]
>>> model.weight(0), model.weight(2), model.weight(7)
(0.0, 0.5, 0.9)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["HISTORY_PARTS", "HistoryModel", "mix", "standardise"]

HISTORY_PARTS = ("ptr", "cols", "weights")
"""Array parts of the history model: ``history/<part>.npy`` in the bundle."""

_EPS = 1e-12


def standardise(scores: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over the last axis (float64); a constant row becomes zeros.

    Examples
    --------
    >>> standardise(np.array([1.0, 2.0, 3.0])).round(3).tolist()
    [-1.225, 0.0, 1.225]
    """
    x = np.asarray(scores, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    std = centred.std(axis=-1, keepdims=True)
    return np.where(std > _EPS, centred / np.maximum(std, _EPS), 0.0)


@dataclass(frozen=True, eq=False)
class HistoryModel:
    """Target item-to-item weights as a CSR, and the history weight per evidence bucket.

    Parameters
    ----------
    ptr
        int64 ``[N_t + 1]``: row pointers; row ``i`` lists the items item ``i`` predicts.
    cols
        int32 ``[nnz]``: predicted item indices.
    weights
        float32 ``[nnz]``: their weights (positive EASE weights).
    events
        Ascending lower bounds of the evidence buckets, the first ``>= 1``: a user with
        ``n`` target events is in the last bucket whose bound is ``<= n``.
    history_weight
        ``a`` of each bucket, in ``[0, 1)``: below 1, so the transferred part always orders
        the items the history says nothing about.
    """

    ptr: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    events: tuple[int, ...]
    history_weight: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.ptr) - 1
        if n < 1 or self.ptr[0] != 0 or np.any(np.diff(self.ptr) < 0):
            raise ValueError("history ptr must start at 0 and never decrease")
        if int(self.ptr[-1]) != len(self.cols) or len(self.cols) != len(self.weights):
            raise ValueError("history cols and weights must both have ptr[-1] entries")
        if len(self.cols) and (int(self.cols.min()) < 0 or int(self.cols.max()) >= n):
            raise ValueError(f"history cols must index the {n} target items")
        if not np.all(np.isfinite(self.weights)):
            raise ValueError("history weights must be finite")
        if len(self.events) != len(self.history_weight) or not self.events:
            raise ValueError("history events and history_weight need one value per bucket")
        if self.events[0] < 1 or any(
            b <= a for a, b in zip(self.events, self.events[1:], strict=False)
        ):
            raise ValueError(f"history events must be ascending and >= 1, got {self.events}")
        if not all(0.0 <= a < 1.0 for a in self.history_weight):
            raise ValueError(f"history_weight must lie in [0, 1), got {self.history_weight}")

    @property
    def n_items(self) -> int:
        """Number of target items ``N_t``."""
        return len(self.ptr) - 1

    @classmethod
    def from_neighbours(
        cls,
        idx: np.ndarray,
        w: np.ndarray,
        *,
        events: Sequence[int] = (1,),
        history_weight: Sequence[float] = (0.0,),
    ) -> HistoryModel:
        """From top-``k`` lists *into* each item (``idx``/``w`` ``[N_t, k]``, as EASE gives).

        ``idx[j, k]`` predicts item ``j`` with weight ``w[j, k]``; non-positive weights and
        self-loops are dropped. The CSR is indexed by the predicting item.
        """
        idx, w = np.asarray(idx, dtype=np.int64), np.asarray(w, dtype=np.float32)
        n = idx.shape[0]
        target = np.repeat(np.arange(n, dtype=np.int64), idx.shape[1])
        source, weight = idx.ravel(), w.ravel()
        keep = (weight > 0) & (source != target)
        source, target, weight = source[keep], target[keep], weight[keep]
        order = np.lexsort((target, source))
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(source, minlength=n), out=ptr[1:])
        return cls(
            ptr,
            target[order].astype(np.int32),
            weight[order].astype(np.float32),
            tuple(int(e) for e in events),
            tuple(float(a) for a in history_weight),
        )

    def sparse_scores(self, items: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero history scores of a bag of target item indices.

        Returns ``(support, scores)``: sorted int64 item indices and their float64 scores;
        every other item scores 0. Touches ``len(items) * k`` weights, never ``N_t``.
        """
        rows = np.unique(np.fromiter(items, dtype=np.int64))
        if not len(rows):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        starts, ends = self.ptr[rows], self.ptr[rows + 1]
        sel = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        support, inverse = np.unique(self.cols[sel], return_inverse=True)
        scores = np.bincount(inverse, weights=self.weights[sel].astype(np.float64))
        keep = scores != 0
        return support[keep].astype(np.int64), scores[keep]

    def scores(self, items: Iterable[int]) -> np.ndarray:
        """History scores ``[N_t]`` (float64) of a bag of target item indices."""
        out = np.zeros(self.n_items, dtype=np.float64)
        support, scores = self.sparse_scores(items)
        out[support] = scores
        return out

    def weight(self, n_events: int) -> float:
        """History weight ``a(n)`` for a user with ``n_events`` target events (0 for none)."""
        if n_events < self.events[0]:
            return 0.0
        bucket = int(np.searchsorted(self.events, n_events, side="right")) - 1
        return self.history_weight[bucket]

    def blend(
        self, transferred: np.ndarray, items: Iterable[int], n_events: int
    ) -> tuple[np.ndarray, float]:
        """Served scores ``[N_t]`` (float32) for a user and the history weight used.

        ``transferred`` are the user's scores without the history part; with no events (or
        a weight of 0) they are returned unchanged, so a user's list only moves once their
        own events say something.
        """
        a = self.weight(n_events)
        if a <= 0.0:
            return np.asarray(transferred, dtype=np.float32), 0.0
        return mix(a, standardise(transferred), standardise(self.scores(items))), a


def mix(a: float, z_transferred: np.ndarray, z_history: np.ndarray) -> np.ndarray:
    """``(1 - a) z(transferred) + a z(history)`` as float32: the served scores.

    The one formula of the blend; the trainer applies it at the candidates of its valid
    lines, the server over the catalogue (:meth:`HistoryModel.blend`).
    """
    return ((1.0 - a) * z_transferred + a * z_history).astype(np.float32)
