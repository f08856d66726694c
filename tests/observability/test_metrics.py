"""Ranking metrics against hand-computed values, including ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from coldbridge_trainer.data import CrossDomainDataset, DomainData, HeldOut
from coldbridge_trainer.evaluate import make_split, popularity_scorer, rank_metrics, score_split


def test_no_ties() -> None:
    m = rank_metrics(np.array([0, 2, 7]), np.zeros(3, int), ks=(1, 5, 10))
    assert m["HR@1"].tolist() == [1, 0, 0]
    assert m["HR@5"].tolist() == [1, 1, 0]
    assert m["HR@10"].tolist() == [1, 1, 1]
    assert m["MRR"] == pytest.approx([1, 1 / 3, 1 / 8])
    assert m["NDCG@5"] == pytest.approx([1, 1 / math.log2(4), 0])
    assert m["NDCG@10"] == pytest.approx([1, 0.5, 1 / math.log2(9)])


def test_ties_are_uniform_expectation() -> None:
    # 1 strictly better, 2 equal: rank uniform over {2, 3, 4}
    m = rank_metrics(np.array([1]), np.array([2]), ks=(1, 3, 5))
    assert m["HR@1"][0] == 0
    assert m["HR@3"][0] == pytest.approx(2 / 3)
    assert m["HR@5"][0] == 1
    assert m["MRR"][0] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert m["NDCG@3"][0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)


def test_all_tied_is_random() -> None:
    m = rank_metrics(np.array([0]), np.array([999]), ks=(10,))
    assert m["HR@10"][0] == pytest.approx(0.01)
    assert m["MRR"][0] == pytest.approx(sum(1 / r for r in range(1, 1001)) / 1000)


def _toy() -> CrossDomainDataset:
    src = DomainData(
        "s", ["a", "c"], ["x"], np.array([0, 1]), np.array([0, 0]), np.ones(2, np.float32)
    )
    tgt_users = np.array([0, 0, 0, 0, 0, 0])
    tgt_items = np.array([0, 1, 2, 3, 4, 5])
    tgt = DomainData(
        "t", ["a"], [f"i{j}" for j in range(8)], tgt_users, tgt_items, np.ones(6, np.float32)
    )
    valid = HeldOut(["c"], np.array([6]))
    test = HeldOut(["c", "c"], np.array([7, 0]))
    return CrossDomainDataset(src, tgt, valid, test)


def test_full_protocol_excludes_other_held_out() -> None:
    ds = _toy()
    ev = make_split(ds, ds.test, n_negatives=3, seed=0)
    # items 0..7; held-out of c = {0, 6, 7}
    scores = np.array([[5.0, 9, 1, 1, 0, 0, 100, 3]])
    res = score_split(scores, ev, ks=(1, 2))["full"]["line"]
    # line item 7 (3.0): competitors excluding 0 and 6 -> {9} greater -> rank 2
    # line item 0 (5.0): competitors excluding 6 and 7 -> {9} greater -> rank 2
    assert res["HR@1"] == 0 and res["HR@2"] == 1
    assert res["MRR"] == pytest.approx(0.5)


def test_sampled_candidates_valid_and_deterministic() -> None:
    ds = _toy()
    ev = make_split(ds, ds.test, n_negatives=3, seed=1)
    assert ev.candidates.shape == (2, 4)
    assert ev.candidates[:, 0].tolist() == [7, 0]
    for row in ev.candidates:
        negs = set(row[1:].tolist())
        assert len(negs) == 3 and not negs & {0, 6, 7} and negs <= {1, 2, 3, 4, 5}
    again = make_split(ds, ds.test, n_negatives=3, seed=1)
    assert again.digest == ev.digest and len(ev.digest) == 64
    assert make_split(ds, ds.test, n_negatives=3, seed=2).candidates.shape == (2, 4)


def test_user_average_differs_from_line_average() -> None:
    ds = _toy()
    ds2 = CrossDomainDataset(
        ds.source, ds.target, ds.valid, HeldOut(["c", "c", "a2"], np.array([7, 0, 1]))
    )
    ev = make_split(ds2, ds2.test, n_negatives=2, seed=0)
    scores = np.zeros((2, 8))
    scores[0, 7] = scores[0, 0] = 10  # user c: both lines rank 1
    scores[1, 1] = -10  # user a2: last
    res = score_split(scores, ev, ks=(1,))["sampled"]
    assert res["line"]["HR@1"] == pytest.approx(2 / 3)
    assert res["user"]["HR@1"] == pytest.approx(0.5)


def test_popularity_counts() -> None:
    ds = _toy()
    assert popularity_scorer(ds)(["c"])[0].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
