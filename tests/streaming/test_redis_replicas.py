"""Two server processes over one real Redis: concurrent events for the same users, sent to
both replicas, are applied once each and in one order; both replicas (and a third started
afterwards from the snapshots) equal a serial replay of the Redis log."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from conftest import TinyBundle
from eventlib import SOURCE, TARGET, batch, event
from redislib import log_events, redis_server, serial_replay, server_processes, start_server

USERS = ["u0", "u1", "s0", "s1", *(f"n{i}" for i in range(8))]
ITEMS = [f"v{i}" for i in range(50)]
SETTINGS = dict(
    store="redis",
    redis_partitions="4",
    online_negatives="2",  # per-user negative sampling: must not depend on other users
    warm_threshold="5",
    snapshot_every_events="40",  # both replicas write snapshots while ingesting
)


def workload(tag: str, seed: int, n_batches: int) -> list[epb.EventBatch]:
    rng = np.random.default_rng(seed)
    batches = []
    for b in range(n_batches):
        events = []
        for k in range(8):
            user = USERS[int(rng.integers(len(USERS)))]
            if rng.random() < 0.2:
                events.append(event(f"{tag}-{b}-{k}", user, f"g{rng.integers(40)}", SOURCE))
            else:
                events.append(event(f"{tag}-{b}-{k}", user, f"v{rng.integers(50)}", TARGET))
        batches.append(batch(b + 1, *events))
    return batches


def stream(channel: grpc.Channel, batches: list[epb.EventBatch], acks: list[epb.EventAck]) -> None:
    acks.extend(events_pb2_grpc.EventsStub(channel).StreamEvents(iter(batches)))


def served(channel: grpc.Channel) -> tuple[dict[str, tuple[int, int]], dict[str, np.ndarray]]:
    events = events_pb2_grpc.EventsStub(channel)
    rec = recommender_pb2_grpc.RecommenderStub(channel)
    counts, scores = {}, {}
    for user in USERS:
        got = events.GetUserState(epb.GetUserStateRequest(user_id=user))
        counts[user] = (got.source_events, got.target_events)
        reply = rec.Score(pb.ScoreRequest(user_id=user, item_ids=ITEMS))
        scores[user] = np.array([i.score for i in reply.items])
    return counts, scores


def wait_for_counts(channel: grpc.Channel, expected: dict[str, tuple[int, int]]) -> None:
    """Quiescence: the follower has applied the other replica's events (not a timing test:
    the deadline only stops a hang)."""
    deadline = time.monotonic() + 60
    while served(channel)[0] != expected:
        assert time.monotonic() < deadline, f"{served(channel)[0]} != {expected}"
        time.sleep(0.05)


def test_two_replicas_apply_concurrent_overlapping_events_once_in_one_order(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    a_batches = workload("a", 1, 40)
    b_batches = workload("b", 2, 40)
    # B also receives 10 of A's batches: the same event ids, at the same time
    b_batches += [batch(41 + n, *a_batches[n * 4].events) for n in range(10)]
    with (
        redis_server(tmp_path) as redis,
        server_processes(tiny_bundle.path, tmp_path, 2, redis_url=redis.url, **SETTINGS) as (a, b),
    ):
        acks: dict[str, list[epb.EventAck]] = {"a": [], "b": []}
        threads = [
            threading.Thread(target=stream, args=(a.channel, a_batches, acks["a"])),
            threading.Thread(target=stream, args=(b.channel, b_batches, acks["b"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(acks["a"]) == len(a_batches) and len(acks["b"]) == len(b_batches)
        accepted = sum(ack.accepted for side in acks.values() for ack in side)
        duplicates = [r for side in acks.values() for ack in side for r in ack.rejections]
        assert accepted == 80 * 8 and len(duplicates) == 10 * 8  # each event id applied once
        assert {r.reason for r in duplicates} == {epb.REJECTION_REASON_DUPLICATE_EVENT}

        streams = log_events(redis.client(), 4)
        logged = [e for s in streams for e in s if not isinstance(e, str)]
        assert sorted(e.event_id for e in logged) == sorted(
            e.event_id for b in a_batches + b_batches[:40] for e in b.events
        )
        replay = serial_replay(tiny_bundle.path, streams, online_negatives=2, warm_threshold=5)
        expected = {}
        for user in USERS:
            state = replay.get(user)
            expected[user] = (0, 0) if state is None else (state.source_events, state.target_events)
        per_user = Counter(e.user_id for e in logged)
        assert {u: sum(c) for u, c in expected.items()} == {u: per_user[u] for u in USERS}

        results = []
        for replica in (a, b):
            wait_for_counts(replica.channel, expected)
            results.append(served(replica.channel))
        c = start_server(tiny_bundle.path, tmp_path / "state-c", redis_url=redis.url, **SETTINGS)
        try:
            results.append(served(c.channel))  # from the snapshots + stream tails
        finally:
            c.kill()
    for counts, scores in results:
        assert counts == expected
        for user in USERS:
            state = replay.get(user)
            vector = None if state is None else state.vector
            np.testing.assert_allclose(
                scores[user], tiny_bundle.all_scores(vector), rtol=1e-5, atol=1e-5
            )
    for _, scores in results[1:]:  # the replicas agree exactly
        for user in USERS:
            np.testing.assert_array_equal(scores[user], results[0][1][user])
