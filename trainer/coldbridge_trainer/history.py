"""The bundle's history part, fitted: EASE on every target user, ``a(n)`` on valid users only.

Two fits, two data sources:

* the target item-to-item model (:func:`item_model`): top-``k`` EASE weights
  (:func:`~coldbridge_trainer.strategies.ease.ease_neighbours`) on **all** target-domain
  training interactions;
* the history weight ``a(n)`` per evidence bucket (:func:`fit_blend`) on the **valid** cold
  users only. Each valid user's valid items are a stream (:func:`stream_order`: a seeded
  random order by default, since the protocol splits a user's interactions at random and
  the file's line order carries nothing a served stream can rely on); after each streamed
  item the remaining ones are positives of the bucket of the history's length, each ranked
  against its line's sampled candidates of the selection split (``make_split(...,
  exclude="split")``, whose candidates never include a valid item of the user, so never a
  history item). The served scores are
  :meth:`~coldbridge_bundle.history.HistoryModel.blend` of the user's transferred scores
  (the bundle's default strategy, :func:`transferred_scorer`); the ``a`` of the grid with
  the best sampled line-averaged MRR wins, ties going to the smaller ``a``.

``test.txt`` is never read (``tests/trainer/test_no_leakage.py``).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from coldbridge_bundle.history import HistoryModel, mix, standardise

from coldbridge_trainer.data import DomainData
from coldbridge_trainer.evaluate import EvalSplit, Scorer, make_split, rank_metrics

if TYPE_CHECKING:
    from coldbridge_trainer.train import TrainResult

__all__ = [
    "HISTORY_EVENTS",
    "HISTORY_GRID",
    "HistoryFit",
    "fit_blend",
    "fit_history",
    "item_model",
    "stream_order",
    "transferred_scorer",
]

HISTORY_EVENTS = (1, 2, 3, 5, 10)
"""Lower bounds of the evidence buckets (number of a user's target events)."""
HISTORY_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Candidate history weights ``a`` of every bucket (0: the transferred list alone)."""


@dataclass(frozen=True)
class HistoryFit:
    """A fitted history part: the model (with its ``a`` per bucket) and the fit's record.

    ``config`` is the manifest's ``history.config``: ``lambda``, ``k``, the ``strategy``
    whose scores were blended, the ``grid``, and per bucket (``buckets``) the valid
    ``users`` and ``lines``, the sampled line MRR at ``a = 0`` (``mrr_transferred``), at
    the grid's largest ``a`` (``mrr_history``) and at the chosen one (``mrr``), and the
    chosen ``history_weight``.
    """

    model: HistoryModel
    config: dict[str, Any]

    @property
    def strategy(self) -> str:
        """The default strategy whose transferred scores ``a`` was fitted against."""
        return str(self.config["strategy"])


def item_model(
    target: DomainData, lam: float, k: int, threads: int = 1, *, events: tuple[int, ...] = (1,)
) -> HistoryModel:
    """The target item-to-item model of every training interaction of ``target`` (``a = 0``)."""
    from coldbridge_trainer.strategies.ease import ease_neighbours  # torch; imports train

    idx, w = ease_neighbours(target.users, target.items, target.n_items, lam, k, threads)
    return HistoryModel.from_neighbours(idx, w, events=events, history_weight=(0.0,) * len(events))


def transferred_scorer(result: TrainResult, valid: EvalSplit) -> Scorer:
    """Cold users' scores without target events: the bundle's default strategy.

    The fitted server half of ``result.strategies[result.default_strategy]`` when there is
    one, else the base pipeline (bridged stored source embedding, :meth:`TrainResult.scorer`).
    """
    fitted = result.strategies.get(result.default_strategy)
    if fitted is not None and fitted.server is not None:
        from coldbridge_trainer.strategies import strategy_scorer

        return strategy_scorer(fitted, result, valid)
    return result.scorer()


def fit_history(result: TrainResult, valid: EvalSplit | None = None) -> HistoryFit:
    """Fit the history part of ``result``'s bundle (``config.history_lambda``/``history_k``).

    ``valid`` defaults to the selection split of the valid cold users
    (``make_split(..., exclude="split")``: its candidate lists never depend on test.txt).
    """
    cfg, ds, t0 = result.config, result.dataset, time.perf_counter()
    if valid is None:
        valid = make_split(ds, ds.valid, cfg.eval_negatives, cfg.eval_seed, exclude="split")
    model = item_model(
        ds.target, cfg.history_lambda, cfg.history_k, cfg.threads, events=HISTORY_EVENTS
    )
    scores = transferred_scorer(result, valid)(valid.users)
    weights, buckets = fit_blend(model, valid, scores)
    config = {
        "lambda": cfg.history_lambda,
        "k": cfg.history_k,
        "strategy": result.default_strategy,
        "grid": list(HISTORY_GRID),
        "stream_order": "shuffled",
        "seed": 0,
        "buckets": buckets,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return HistoryFit(replace(model, history_weight=weights), config)


def fit_blend(
    model: HistoryModel,
    valid: EvalSplit,
    transferred: np.ndarray,
    grid: tuple[float, ...] = HISTORY_GRID,
    *,
    order: str = "shuffled",
    seed: int = 0,
    repeats: int = 4,
) -> tuple[tuple[float, ...], list[dict[str, Any]]]:
    """The history weight of each of ``model.events``' buckets, and the fit table.

    Every valid user with ``m`` valid items is streamed ``repeats`` times, each time in its
    own random order (:func:`stream_order` with seeds ``seed, seed + 1, ...``; once with
    ``order="file"``); after each of the first ``m - 1`` items (``p`` streamed, from the
    first bound on: a shorter history is served with ``a = 0``), the remaining items that
    are not in the history are positives of the bucket of ``p`` (the last bound ``<= p``),
    each ranked against its line's candidates. So a bucket sees every
    history length it serves, a user's largest histories (the regime of a user who streamed
    all they have) among them, and the repeated draws keep the few heavy users of the last
    bucket from deciding it by one lucky order.

    Parameters
    ----------
    model
        The item-to-item model (its own ``history_weight`` is ignored).
    valid
        The valid cold users.
    transferred
        ``[len(valid.users), N_t]`` transferred scores (rows = ``valid.users``).
    grid
        Ascending candidate weights in ``[0, 1)``.
    order, seed, repeats
        The stream orders of each user's items (:func:`stream_order`); a table row's
        ``lines`` counts the ranked lines of all draws.

    Returns
    -------
    tuple
        ``a`` per bucket (a bucket without a valid user keeps the previous bucket's, the
        first 0), and one table row per bucket (see :class:`HistoryFit`).
    """
    buckets = [_Bucket(grid) for _ in model.events]
    draws = range(repeats if order != "file" else 1)
    for user in range(len(valid.users)):
        streams = [stream_order(valid, user, order, seed + draw) for draw in draws]
        if len(streams[0]) < 2:
            continue
        zt = standardise(transferred[user])  # once per user: every draw shares it
        raw = np.asarray(transferred[user], dtype=np.float32)
        for lines in streams:
            for p in range(model.events[0], len(lines)):  # shorter histories weigh 0
                history = valid.positives[lines[:p]]
                rest = lines[p:][~np.isin(valid.positives[lines[p:]], history)]
                if len(rest):
                    zh = standardise(model.scores(history.tolist()))
                    bucket = buckets[int(np.searchsorted(model.events, p, side="right")) - 1]
                    bucket.add(user, valid.candidates[rest], raw, zt, zh)
    chosen: list[float] = []
    rows: list[dict[str, Any]] = []
    for bound, bucket in zip(model.events, buckets, strict=True):
        mrr = bucket.mrr()
        best = max(grid, key=lambda a: (mrr[a], -a)) if mrr else (chosen[-1] if chosen else 0.0)
        chosen.append(best)
        rows.append(_row(bound, len(bucket.users), bucket.lines, mrr, best))
    return tuple(chosen), rows


def stream_order(valid: EvalSplit, user: int, order: str = "shuffled", seed: int = 0) -> np.ndarray:
    """Line indices of ``valid``'s row ``user`` in the order the fit streams them.

    ``"file"``: the split's line order. ``"shuffled"`` (default): a random order drawn from
    ``seed`` and the user's id, independent of the file's line order: the held-out protocol
    splits each user's interactions at random, so the order inside ``valid.txt`` says
    nothing a served stream can rely on, and the fit must not learn from it.
    """
    lines = np.flatnonzero(valid.line_user == user)
    if order == "file":
        return lines
    if order != "shuffled":
        raise ValueError(f"order must be 'shuffled' or 'file', got {order!r}")
    lines = lines[np.lexsort((lines, valid.positives[lines]))]  # canonical: by item, then line
    key = zlib.crc32(valid.users[user].encode("utf-8"))
    return lines[np.random.default_rng([seed, key]).permutation(len(lines))]


class _Bucket:
    """Rank counts of one evidence bucket's positives under every candidate weight."""

    def __init__(self, grid: tuple[float, ...]) -> None:
        self.grid = grid
        self.users: set[int] = set()
        self.lines = 0
        self._counts: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {a: [] for a in grid}

    def add(
        self,
        user: int,
        cands: np.ndarray,
        raw: np.ndarray,
        zt: np.ndarray,
        zh: np.ndarray,
    ) -> None:
        """Count the ranks of ``cands``' positives (first column) for every weight."""
        self.users.add(user)
        self.lines += len(cands)
        zt_c, zh_c = zt[cands], zh[cands]
        for a in self.grid:
            scores = raw[cands] if a <= 0.0 else mix(a, zt_c, zh_c)
            pos, neg = scores[:, :1], scores[:, 1:]
            self._counts[a].append(((neg > pos).sum(1), (neg == pos).sum(1)))

    def mrr(self) -> dict[float, float]:
        """Sampled line-averaged MRR per weight (empty when the bucket has no line)."""
        if not self.lines:
            return {}
        out = {}
        for a, parts in self._counts.items():
            greater = np.concatenate([g for g, _ in parts])
            equal = np.concatenate([e for _, e in parts])
            out[a] = float(rank_metrics(greater, equal, ks=(1,))["MRR"].mean())
        return out


def _row(bound: int, users: int, lines: int, mrr: dict[float, float], a: float) -> dict[str, Any]:
    top = max(mrr) if mrr else None
    return {
        "events": bound,
        "users": users,
        "lines": lines,
        "mrr_transferred": mrr.get(0.0),
        "mrr_history": mrr.get(top) if top is not None else None,
        "mrr": mrr.get(a),
        "history_weight": a,
    }
