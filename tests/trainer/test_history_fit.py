"""The valid fit of the history weight a(n): evidence wins when it predicts, never otherwise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from coldbridge_bundle import HistoryModel
from coldbridge_trainer.evaluate import EvalSplit, rank_metrics
from coldbridge_trainer.history import HISTORY_GRID, fit_blend, stream_order

N_ITEMS = 60
EVENTS = (1, 2, 5)


def _chain_model() -> HistoryModel:
    """Item ``j`` is predicted by item ``j - 1`` alone: a history names its successors."""
    idx = (np.arange(N_ITEMS) - 1)[:, None] % N_ITEMS
    return HistoryModel.from_neighbours(
        idx, np.ones((N_ITEMS, 1), np.float32), events=EVENTS, history_weight=(0.0,) * 3
    )


def _split(streams: list[list[int]], n_neg: int = 20, seed: int = 0) -> EvalSplit:
    """One line per streamed item (stream order); negatives avoid the user's items.

    A line's negatives depend on its user and item only, not on its position.
    """
    line_user = np.repeat(np.arange(len(streams)), [len(s) for s in streams])
    positives = np.concatenate([np.asarray(s, np.int64) for s in streams])
    candidates = np.empty((len(positives), n_neg + 1), np.int64)
    for line, (user, pos) in enumerate(zip(line_user, positives, strict=True)):
        allowed = np.setdiff1d(np.arange(N_ITEMS), streams[user])
        rng = np.random.default_rng([seed, int(user), int(pos)])
        candidates[line] = np.r_[pos, rng.choice(allowed, n_neg, replace=False)]
    held = [np.unique(s) for s in streams]
    users = [f"u{i}" for i in range(len(streams))]
    return EvalSplit(users, line_user, positives, candidates, held, "")


STREAMS = [[4 * u, 4 * u + 1, 4 * u + 2, 4 * u + 3, 4 * u + 4, 4 * u + 5] for u in range(10)]


def _noise(n_users: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_users, N_ITEMS)).astype(np.float32)


def test_predictive_history_gets_weight() -> None:
    model, valid = _chain_model(), _split(STREAMS)
    weights, rows = fit_blend(model, valid, _noise(len(STREAMS)))
    assert all(a > 0 for a in weights), weights
    assert all(a in HISTORY_GRID for a in weights)
    for row in rows:
        assert row["mrr"] > row["mrr_transferred"], row
        assert row["mrr"] == max(row["mrr"], row["mrr_history"])
    # users with 6 items, every prefix p = 1..5 scores the 6 - p items after it:
    # bucket 1 holds p = 1 (5 lines), bucket 2 p = 2, 3, 4 (4 + 3 + 2), bucket 5 p = 5 (1),
    # in each of the 4 random stream orders
    assert [(r["users"], r["lines"]) for r in rows] == [(10, 200), (10, 360), (10, 40)]


def test_perfect_transferred_part_keeps_weight_zero() -> None:
    model, valid = _chain_model(), _split(STREAMS)
    perfect = np.zeros((len(STREAMS), N_ITEMS), np.float32)
    for user, stream in enumerate(STREAMS):
        perfect[user, stream] = 10.0
    weights, rows = fit_blend(replace(model, weights=-model.weights), valid, perfect)
    assert weights == (0.0, 0.0, 0.0)
    assert all(r["mrr_transferred"] == 1.0 == r["mrr"] for r in rows)


def test_same_data_same_weights() -> None:
    model, valid = _chain_model(), _split(STREAMS, seed=5)
    scores = _noise(len(STREAMS), seed=7)
    assert fit_blend(model, valid, scores) == fit_blend(model, valid, scores.copy())


def test_table_mrr_is_the_served_blend() -> None:
    """The fit's MRR equals ranking HistoryModel.blend's served scores (the server's maths)."""
    model, valid = _chain_model(), _split(STREAMS)
    scores = _noise(len(STREAMS))
    weights, rows = fit_blend(model, valid, scores, order="file")
    fitted = replace(model, history_weight=weights)
    g, e = [], []
    for line in range(len(valid.positives)):
        user = int(valid.line_user[line])
        stream = STREAMS[user]
        position = stream.index(int(valid.positives[line]))
        for p in (2, 3, 4):  # bucket 2: histories of 2 to 4 streamed items
            if position < p:
                continue
            served, a = fitted.blend(scores[user], stream[:p], p)
            assert a == weights[1]
            cand = served[valid.candidates[line]]
            g.append(int((cand[1:] > cand[0]).sum()))
            e.append(int((cand[1:] == cand[0]).sum()))
    mrr = float(rank_metrics(np.array(g), np.array(e), ks=(1,))["MRR"].mean())
    assert len(g) == rows[1]["lines"]
    assert mrr == pytest.approx(rows[1]["mrr"], rel=1e-12)  # same ranks, other sum order


def test_the_fit_does_not_learn_the_file_order() -> None:
    """Shuffled streams: the same items in another line order give the same fit."""
    model, scores = _chain_model(), _noise(len(STREAMS))
    reversed_streams = [list(reversed(s)) for s in STREAMS]
    shuffled = fit_blend(model, _split(STREAMS), scores)
    assert fit_blend(model, _split(reversed_streams), scores) == shuffled
    # the chain rewards the file order (each item names its successor) and not its reverse
    forward = fit_blend(model, _split(STREAMS), scores, order="file")
    backward = fit_blend(model, _split(reversed_streams), scores, order="file")
    assert forward[1][1]["mrr"] > backward[1][1]["mrr"]
    order = stream_order(_split(STREAMS), 0)
    assert sorted(order.tolist()) == list(range(6)) and order.tolist() != list(range(6))


def test_history_items_are_never_positives_and_empty_buckets_inherit() -> None:
    streams = [[7, 7, 8], [20, 21]]
    weights, rows = fit_blend(_chain_model(), _split(streams), _noise(2), order="file")
    # bucket 1: user 0 keeps only item 8 (its second 7 is history), user 1 keeps 21;
    # bucket 2: user 0's history 7, 7 leaves item 8
    assert (rows[0]["users"], rows[0]["lines"]) == (2, 2)
    assert (rows[1]["users"], rows[1]["lines"]) == (1, 1)
    assert rows[2] == {
        "events": 5,
        "users": 0,
        "lines": 0,
        "mrr_transferred": None,
        "mrr_history": None,
        "mrr": None,
        "history_weight": weights[1],
    }
    assert weights[2] == weights[1]


def test_histories_below_the_first_bound_are_not_fitted() -> None:
    """With buckets from 2 events on, a one-item history belongs to no bucket (``a = 0``)."""
    model, valid, scores = _chain_model(), _split(STREAMS), _noise(len(STREAMS))
    _, rows = fit_blend(model, valid, scores)
    later = replace(model, events=EVENTS[1:], history_weight=(0.0,) * (len(EVENTS) - 1))
    assert fit_blend(later, valid, scores)[1] == rows[1:]
