"""Dynamic top-k batching: merged runs give every caller exactly its own answer."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from coldbridge_server.serving.batch import TopkBatcher


def _reference_topk(items: np.ndarray):  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def topk(users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(users))
        scores = users @ items.T
        idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, idx, 1), idx

    return topk, calls


def test_concurrent_callers_get_their_own_results_and_runs_are_merged() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(500, 16)).astype(np.float32)
    topk, calls = _reference_topk(items)
    gate = threading.Event()

    def slow_topk(users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        gate.wait(5)  # hold the first run so that the others queue up behind it
        return topk(users, k)

    sizes: list[int] = []
    batcher = TopkBatcher(slow_topk, max_batch=16, observe_batch=sizes.append)
    users = rng.normal(size=(40, 16)).astype(np.float32)
    ks = [1 + (i % 7) for i in range(40)]
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def call(i: int) -> None:
        results[i] = batcher.topk(users[i], ks[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    batcher.close()
    for i in range(40):
        expected_scores, expected_idx = topk(users[i : i + 1], ks[i])
        np.testing.assert_array_equal(results[i][1], expected_idx[0])
        np.testing.assert_allclose(results[i][0], expected_scores[0], rtol=1e-6)
    assert sum(sizes) == 40 and max(sizes) <= 16
    assert len(sizes) < 40, "concurrent calls were never merged into one run"


def test_a_failing_run_raises_in_every_caller_and_the_batcher_keeps_working() -> None:
    state = {"fail": True}

    def flaky(users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if state["fail"]:
            raise RuntimeError("model exploded")
        return users[:, :k], np.zeros((len(users), k), dtype=np.int64)

    batcher = TopkBatcher(flaky, max_batch=4)
    with pytest.raises(RuntimeError, match="model exploded"):
        batcher.topk(np.ones(3, dtype=np.float32), 2)
    state["fail"] = False
    scores, _ = batcher.topk(np.ones(3, dtype=np.float32), 2)
    assert scores.tolist() == [1.0, 1.0]
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.topk(np.ones(3, dtype=np.float32), 2)
