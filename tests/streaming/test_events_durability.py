"""Durability: restarts restore every acknowledged event exactly once (snapshot + log replay).

The crash test runs the real server as a subprocess (``python -m coldbridge_server``), kills
it with SIGKILL in the middle of a stream and restarts it on the same state directory.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from conftest import TinyBundle
from eventlib import SOURCE, StartProcess, batch, event, replayed_vectors, server_processes, serving

USERS = ["s0", "s1", "u0", "brand-new-1", "brand-new-2", "brand-new-3"]


def workload(n_batches: int, size: int = 10) -> list[epb.EventBatch]:
    """Deterministic mixed workload: target events for everyone, source events for new users."""
    rng = np.random.default_rng(7)
    batches = []
    for b in range(n_batches):
        events = []
        for i in range(size):
            user = USERS[int(rng.integers(len(USERS)))]
            if user.startswith("brand-new") and rng.random() < 0.3:
                events.append(event(f"{b}-{i}", user, f"g{rng.integers(40)}", SOURCE))
            else:
                events.append(event(f"{b}-{i}", user, f"v{rng.integers(50)}"))
        batches.append(batch(b + 1, *events))
    return batches


def per_user(batches: list[epb.EventBatch]) -> Counter[str]:
    return Counter(e.user_id for b in batches for e in b.events)


def test_restart_restores_state_from_snapshot_and_log_tail(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    batches = workload(30)
    settings = dict(warm_threshold=5, snapshot_every_events=70)  # snapshot + a tail
    with serving(tiny_bundle.path, state, **settings) as c:
        assert all(a.accepted == 10 for a in c.stream(batches))
        before = {u: c.scores(u) for u in USERS}
        stages = {u: c.state(u).stage for u in USERS}
        # no final snapshot on stop: the restart must load the last periodic one + the tail
        c.server.ingestor.close = c.server.ingestor.store.close  # type: ignore
    with serving(tiny_bundle.path, state, **settings) as c:
        for user in USERS:
            np.testing.assert_array_equal(c.scores(user), before[user])
            assert c.state(user).stage == stages[user]
        again = c.stream(batches[:3])
        assert all(a.accepted == 0 for a in again)
        assert {r.reason for a in again for r in a.rejections} == {
            epb.REJECTION_REASON_DUPLICATE_EVENT
        }


def test_new_bundle_replays_the_whole_log(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with serving(tiny_bundle.path, state) as c:
        c.stream(workload(5))
        before = {u: c.scores(u) for u in USERS}
    import sqlite3

    with sqlite3.connect(state / "coldbridge.sqlite3") as db:  # as if written by another bundle
        db.execute("UPDATE meta SET value = 'older-bundle' WHERE key = 'bundle_version'")
        db.execute("DELETE FROM user_state")
    db.close()
    with serving(tiny_bundle.path, state) as c:
        for user in USERS:
            np.testing.assert_array_equal(c.scores(user), before[user])


@pytest.fixture
def start_process(tiny_bundle: TinyBundle) -> Iterator[StartProcess]:
    with server_processes(
        tiny_bundle.path,
        drain_seconds="0",  # the drain is tested in tests/serving/test_lifecycle.py
        access_log="false",
        warm_threshold="5",
        snapshot_every_events="97",
        ingest_queue_size="4",
    ) as start:
        yield start


def test_sigkill_mid_stream_then_restart_keeps_every_acked_event_once(
    start_process, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    batches = workload(300)
    process, channel = start_process(state)
    acked: list[epb.EventBatch] = []
    stub = events_pb2_grpc.EventsStub(channel)
    with pytest.raises(grpc.RpcError):
        for ack in stub.StreamEvents(iter(batches)):
            assert ack.accepted == 10
            acked.append(batches[ack.sequence - 1])
            if len(acked) == 120:
                os.kill(process.pid, signal.SIGKILL)
    channel.close()
    assert process.wait() == -signal.SIGKILL
    assert 120 <= len(acked) < 300

    process, channel = start_process(state)
    events = events_pb2_grpc.EventsStub(channel)
    rec = recommender_pb2_grpc.RecommenderStub(channel)
    must, may = per_user(acked), per_user(batches)
    for user in USERS:
        got = events.GetUserState(epb.GetUserStateRequest(user_id=user))
        assert must[user] <= got.source_events + got.target_events <= may[user]
    acks = list(events.StreamEvents(iter(batches)))  # resend everything
    duplicates = [r for a in acks[: len(acked)] for r in a.rejections]
    assert len(duplicates) == 10 * len(acked)
    assert {r.reason for r in duplicates} == {epb.REJECTION_REASON_DUPLICATE_EVENT}
    items = [f"v{i}" for i in range(50)]
    served = {}
    for user in USERS:
        got = events.GetUserState(epb.GetUserStateRequest(user_id=user))
        assert got.source_events + got.target_events == may[user]  # each applied once
        reply = rec.Score(pb.ScoreRequest(user_id=user, item_ids=items))
        served[user] = np.array([i.score for i in reply.items])
    channel.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0

    replayed = replayed_vectors(tiny_bundle.path, state, tmp_path, warm_threshold=5)
    for user in USERS:
        expected = tiny_bundle.all_scores(replayed[user])
        np.testing.assert_allclose(served[user], expected, rtol=1e-5, atol=1e-5)
