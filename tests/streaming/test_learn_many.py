"""ColdStartEmbeddings.learn_many: the sequential learn_one result, bit for bit, in any grouping."""

from __future__ import annotations

import numpy as np
import pytest
from coldbridge_server.streaming.online import ColdStartEmbeddings
from river import optim

DIM, ITEMS = 16, 300


def _learner(items: np.ndarray, bias: np.ndarray, **overrides: object) -> ColdStartEmbeddings:
    params: dict[str, object] = dict(
        optimizer=optim.SGD(0.1), l2=0.05, n_negatives=0, release_after=6, seed=3
    )
    params.update(overrides)
    return ColdStartEmbeddings(items, bias, **params)  # type: ignore[arg-type]


def _stream(rng: np.random.Generator, n: int) -> tuple[list[str], list[int], list[object]]:
    users = [f"u{u}" for u in rng.integers(0, 25, n)]
    items = [int(i) for i in rng.integers(0, ITEMS, n)]
    ys: list[object] = [
        bool(rng.random() < 0.9) if rng.random() < 0.8 else float(rng.integers(1, 6))
        for _ in range(n)
    ]
    return users, items, ys


@pytest.mark.parametrize(
    "overrides",
    [{}, {"n_negatives": 3}, {"release_after": None}],
    ids=["vectorised", "negatives-fallback", "never-released"],
)
def test_any_grouping_equals_learn_one(overrides: dict[str, object]) -> None:
    rng = np.random.default_rng(7)
    items, bias = rng.normal(size=(ITEMS, DIM)), rng.normal(size=ITEMS) * 0.1
    users, rows, ys = _stream(rng, 600)
    priors = {u: rng.normal(size=DIM).astype(np.float32) for u in set(users) if int(u[1:]) % 2}
    sequential, whole, chunked = (_learner(items, bias, **overrides) for _ in range(3))
    for model in (sequential, whole, chunked):
        model.u_priors.update(priors)
    capture = set(range(0, 600, 7))
    expected = {}
    for j, (user, row, y) in enumerate(zip(users, rows, ys, strict=True)):
        if j in capture:
            expected[j] = sequential.user_vector(user)
        sequential.learn_one(user, row, y)
    got = whole.learn_many(users, rows, ys, capture=capture)
    start = 0
    for size in rng.integers(1, 90, 100):
        chunked.learn_many(
            users[start : start + size], rows[start : start + size], ys[start : start + size]
        )
        start += int(size)
        if start >= len(users):
            break
    assert whole.can_learn_many is (overrides.get("n_negatives", 0) == 0)
    for user in set(users):
        np.testing.assert_array_equal(whole.u_deltas[user], sequential.u_deltas[user])
        np.testing.assert_array_equal(chunked.u_deltas[user], sequential.u_deltas[user])
        assert whole.u_updates[user] == chunked.u_updates[user] == sequential.u_updates[user]
    assert sorted(got) == sorted(capture)
    for j, vector in expected.items():
        np.testing.assert_array_equal(got[j], vector)


def test_a_scheduled_learning_rate_falls_back_to_learn_one() -> None:
    items = np.eye(4)
    model = ColdStartEmbeddings(
        items, optimizer=optim.SGD(optim.schedulers.InverseScaling(0.5)), n_negatives=0
    )
    assert not model.can_learn_many
    reference = ColdStartEmbeddings(
        items, optimizer=optim.SGD(optim.schedulers.InverseScaling(0.5)), n_negatives=0
    )
    events = [("a", 0, True), ("a", 1, True), ("b", 2, 3.0), ("a", 3, False)]
    for event in events:
        reference.learn_one(*event)
    model.learn_many(*zip(*events, strict=True))
    for user in ("a", "b"):
        np.testing.assert_array_equal(model.u_deltas[user], reference.u_deltas[user])
