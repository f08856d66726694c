"""The bundle's history part, fitted: EASE on every target user, ``a(n)`` on valid users only.

Two fits, two data sources:

* the target item-to-item model (:func:`item_model`): top-``k`` EASE weights
  (:func:`~coldbridge_trainer.strategies.ease.ease_neighbours`) on **all** target-domain
  training interactions;
* the history weight ``a(n)`` per evidence bucket (:func:`fit_blend`) on the **valid** cold
  users only. A valid user's valid items are a stream in ``valid.txt`` order: for a bucket
  bound ``p`` smaller than the user's ``m`` valid items, the first ``p`` items are the
  streamed history and the remaining ones are positives, each ranked against its line's
  sampled candidates of the selection split (``make_split(..., exclude="split")``, whose
  candidates never include a valid item of the user, so never a history item). The served
  scores are :meth:`~coldbridge_bundle.history.HistoryModel.blend` of the user's transferred
  scores (the bundle's default strategy, :func:`transferred_scorer`); the ``a`` of the grid
  with the best sampled line-averaged MRR wins, ties going to the smaller ``a``.

``test.txt`` is never read (``tests/trainer/test_no_leakage.py``).
"""

from __future__ import annotations

import time
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
        "buckets": buckets,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return HistoryFit(replace(model, history_weight=weights), config)


def fit_blend(
    model: HistoryModel,
    valid: EvalSplit,
    transferred: np.ndarray,
    grid: tuple[float, ...] = HISTORY_GRID,
) -> tuple[tuple[float, ...], list[dict[str, Any]]]:
    """The history weight of each of ``model.events``' buckets, and the fit table.

    Parameters
    ----------
    model
        The item-to-item model (its own ``history_weight`` is ignored).
    valid
        The valid cold users; lines of a user are in stream order.
    transferred
        ``[len(valid.users), N_t]`` transferred scores (rows = ``valid.users``).
    grid
        Ascending candidate weights in ``[0, 1)``.

    Returns
    -------
    tuple
        ``a`` per bucket (a bucket without a valid user keeps the previous bucket's, the
        first 0), and one table row per bucket (see :class:`HistoryFit`).
    """
    position = _stream_positions(valid.line_user, len(valid.users))
    chosen: list[float] = []
    rows: list[dict[str, Any]] = []
    zt_cache: dict[int, np.ndarray] = {}
    for bound in model.events:
        parts = _bucket(model, valid, transferred, position, bound, zt_cache)
        previous = chosen[-1] if chosen else 0.0
        if parts is None:
            chosen.append(previous)
            rows.append(_row(bound, 0, 0, {}, previous))
            continue
        n_users, raw, zt, zh = parts
        mrr = {a: _mrr(raw if a <= 0.0 else mix(a, zt, zh)) for a in grid}
        best = max(grid, key=lambda a: (mrr[a], -a))
        chosen.append(best)
        rows.append(_row(bound, n_users, len(raw), mrr, best))
    return tuple(chosen), rows


def _stream_positions(line_user: np.ndarray, n_users: int) -> np.ndarray:
    """Position of each line among its user's lines (0 for the user's first)."""
    seen = np.zeros(n_users, dtype=np.int64)
    out = np.empty(len(line_user), dtype=np.int64)
    for line, user in enumerate(line_user.tolist()):
        out[line], seen[user] = seen[user], seen[user] + 1
    return out


def _bucket(
    model: HistoryModel,
    valid: EvalSplit,
    transferred: np.ndarray,
    position: np.ndarray,
    bound: int,
    zt_cache: dict[int, np.ndarray],
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray] | None:
    """Candidate scores ``(users, raw float32, z(transferred), z(history))`` of one bucket.

    Each array is ``[lines, candidates]`` (positive first): the lines of users with more than
    ``bound`` valid items, past the first ``bound`` (their history), whose positive is not a
    history item.
    """
    raw, zt, zh, users = [], [], [], 0
    for user in np.unique(valid.line_user[position >= bound]).tolist():
        mine = valid.line_user == user
        history = valid.positives[mine & (position < bound)]
        lines = np.flatnonzero(mine & (position >= bound))
        lines = lines[~np.isin(valid.positives[lines], history)]
        if not len(lines):
            continue
        if user not in zt_cache:
            zt_cache[user] = standardise(transferred[user])
        cands = valid.candidates[lines]
        raw.append(np.asarray(transferred[user], dtype=np.float32)[cands])
        zt.append(zt_cache[user][cands])
        zh.append(standardise(model.scores(history.tolist()))[cands])
        users += 1
    if not users:
        return None
    return users, np.concatenate(raw), np.concatenate(zt), np.concatenate(zh)


def _mrr(cand: np.ndarray) -> float:
    pos, neg = cand[:, :1], cand[:, 1:]
    return float(rank_metrics((neg > pos).sum(1), (neg == pos).sum(1), ks=(1,))["MRR"].mean())


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
