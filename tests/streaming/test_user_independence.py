"""A user's learned state depends only on their own events in their own order, also with
negative sampling: what lets every Redis replica apply the partitions' streams in any
interleaving and still equal the serial replay (docs/scaling.md)."""

from __future__ import annotations

import numpy as np
from coldbridge_server.streaming.online import ColdStartEmbeddings
from river import optim


def test_negative_sampling_of_a_user_ignores_other_users_events() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(30, 4))
    alice = [("alice", int(i), True) for i in rng.integers(30, size=20)]
    others = [(f"bob{n % 3}", int(i), bool(n % 2)) for n, i in enumerate(rng.integers(30, size=40))]
    alone = ColdStartEmbeddings(items, optimizer=optim.SGD(0.1), n_negatives=3, seed=7)
    mixed = ColdStartEmbeddings(items, optimizer=optim.SGD(0.1), n_negatives=3, seed=7)
    for event in alice:
        alone.learn_one(*event)
    for n, event in enumerate(alice):  # other users' events before, between and after hers
        for other in others[2 * n : 2 * n + 2]:
            mixed.learn_one(*other)
        mixed.learn_one(*event)
    np.testing.assert_array_equal(alone.u_deltas["alice"], mixed.u_deltas["alice"])
    assert alone.u_updates["alice"] == mixed.u_updates["alice"] == 20
