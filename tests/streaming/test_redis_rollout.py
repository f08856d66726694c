"""A bundle roll-out over Redis: three real server processes on one real redis-server, events
streaming to all of them, a new bundle version hot-reloaded replica by replica.

Checked: each replica reports the new version (GetBundleStatus, GetModelInfo), the mixed-version
window is visible in every replica's metrics (``coldbridge_fleet_bundle_versions`` 2, then 1),
no acknowledged event is lost, all replicas agree with a serial replay of the log on the new
bundle, and a restart after the roll-out starts from the snapshot of its own version.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from coldbridge.v1 import admin_pb2, admin_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_bundle import write
from coldbridge_server.streaming.redis_fleet import FleetBeacon
from conftest import TinyBundle, make_tiny_arrays, tiny_content
from eventlib import SOURCE, TARGET, batch, event
from prometheus_client.parser import text_string_to_metric_families
from redislib import (
    RedisServer,
    ServerProcess,
    free_port,
    log_events,
    redis_server,
    serial_replay,
    start_server,
)

USERS = [f"n{i}" for i in range(10)]
ITEMS = [f"v{i}" for i in range(50)]
PARTITIONS = 4
SETTINGS = dict(
    store="redis",
    redis_partitions=str(PARTITIONS),
    warm_threshold="5",
    snapshot_every_events="60",
    replica_heartbeat_seconds="0.2",
)


def version(root: Path, name: str, seed: int) -> TinyBundle:
    """A tiny bundle of random weights ``seed`` written as ``root/name`` (the real writer)."""
    arrays = make_tiny_arrays(seed)
    return TinyBundle(write(root, tiny_content(arrays), version=name), arrays)


class Replica:
    """A server process with its metrics port."""

    def __init__(self, bundle: Path, state: Path, redis: RedisServer, **extra: str) -> None:
        self.metrics_port = free_port()
        self.process: ServerProcess = start_server(
            bundle,
            state,
            redis_url=redis.url,
            metrics_port=str(self.metrics_port),
            **{**SETTINGS, **extra},
        )
        self.admin = admin_pb2_grpc.AdminStub(self.process.channel)
        self.rec = recommender_pb2_grpc.RecommenderStub(self.process.channel)

    def metric(self, name: str, **labels: str) -> float | None:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def versions(self) -> tuple[str, str]:
        status = self.admin.GetBundleStatus(admin_pb2.GetBundleStatusRequest())
        info = self.rec.GetModelInfo(pb.GetModelInfoRequest())
        return status.version, info.bundle_version


def until(what: str, check: Callable[[], bool]) -> None:
    """Wait for a condition (the deadline only stops a hang: no timing assertion)."""
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"still not {what}"
        time.sleep(0.05)


def events_of(tag: str, n: int) -> list[epb.Event]:
    rng = np.random.default_rng(abs(hash(tag)) % 1000)
    out = []
    for k in range(n):
        user = USERS[int(rng.integers(len(USERS)))]
        if rng.random() < 0.2:
            out.append(event(f"{tag}-{k}", user, f"g{rng.integers(40)}", SOURCE))
        else:
            out.append(event(f"{tag}-{k}", user, f"v{rng.integers(50)}", TARGET))
    return out


class Streamer:
    """Streams 8-event batches to one replica until stopped (at least ``minimum`` batches)."""

    def __init__(self, replica: Replica, tag: str, minimum: int = 20) -> None:
        self.tag, self.minimum = tag, minimum
        self.sent: list[epb.EventBatch] = []
        self.acks: list[epb.EventAck] = []
        self.stop = threading.Event()
        stub = replica.process.channel
        self.thread = threading.Thread(target=self._run, args=(stub,))
        self.thread.start()

    def _batches(self) -> Iterator[epb.EventBatch]:
        n = 0
        while not self.stop.is_set() or n < self.minimum:
            b = batch(n + 1, *events_of(f"{self.tag}{n}", 8))
            self.sent.append(b)
            yield b
            n += 1
            time.sleep(0.01)

    def _run(self, channel: grpc.Channel) -> None:
        from coldbridge.v1 import events_pb2_grpc

        self.acks.extend(events_pb2_grpc.EventsStub(channel).StreamEvents(self._batches()))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()


def served(replica: Replica) -> tuple[dict[str, tuple[int, int]], dict[str, np.ndarray]]:
    from coldbridge.v1 import events_pb2_grpc

    events = events_pb2_grpc.EventsStub(replica.process.channel)
    counts, scores = {}, {}
    for user in USERS:
        got = events.GetUserState(epb.GetUserStateRequest(user_id=user))
        counts[user] = (got.source_events, got.target_events)
        reply = replica.rec.Score(pb.ScoreRequest(user_id=user, item_ids=ITEMS))
        scores[user] = np.array([i.score for i in reply.items])
    return counts, scores


def expected_from_log(redis: RedisServer, bundle: TinyBundle) -> tuple[dict, dict]:
    replay = serial_replay(bundle.path, log_events(redis.client(), PARTITIONS), warm_threshold=5)
    counts, scores = {}, {}
    for user in USERS:
        state = replay.get(user)
        counts[user] = (0, 0) if state is None else (state.source_events, state.target_events)
        scores[user] = bundle.all_scores(None if state is None else state.vector)
    return counts, scores


def check_agrees(replicas: list[Replica], counts: dict, scores: dict) -> None:
    results = []
    for replica in replicas:
        until("caught up", lambda r=replica: served(r)[0] == counts)
        results.append(served(replica))
    for got_counts, got_scores in results:
        assert got_counts == counts
        for user in USERS:
            np.testing.assert_allclose(got_scores[user], scores[user], rtol=1e-5, atol=1e-5)
    for _, got_scores in results[1:]:  # the replicas agree exactly
        for user in USERS:
            np.testing.assert_array_equal(got_scores[user], results[0][1][user])


def fleet(replica: Replica) -> tuple[float | None, dict[str, float | None]]:
    name = "coldbridge_fleet_replicas"
    per_version = {v: replica.metric(name, version=v) for v in ("v1", "v2")}
    return replica.metric("coldbridge_fleet_bundle_versions"), per_version


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    return tmp_path / "bundles"


def test_rolling_reload_replica_by_replica_while_events_stream(
    bundles: Path, tmp_path: Path
) -> None:
    version(bundles, "v1", seed=0)
    with redis_server(tmp_path) as redis:
        replicas = [Replica(bundles, tmp_path / f"state{n}", redis) for n in range(3)]
        try:
            until("one version", lambda: fleet(replicas[0]) == (1, {"v1": 3, "v2": None}))
            streamers = [Streamer(r, f"r{n}-") for n, r in enumerate(replicas)]
            until("streaming", lambda: all(len(s.acks) >= 5 for s in streamers))
            v2 = version(bundles, "v2", seed=1)  # the new version lands in the shared directory
            for n, replica in enumerate(replicas):
                reply = replica.admin.ReloadBundle(admin_pb2.ReloadBundleRequest())
                assert (reply.old_version, reply.new_version) == ("v1", "v2")
                assert reply.states_rebuilt  # another embedding space: rebuilt from the log
                assert replica.versions() == ("v2", "v2")
                for other in replicas[n + 1 :]:
                    assert other.versions() == ("v1", "v1")
                if n < 2:  # the mixed-version window, seen by every replica
                    window = (2, {"v1": 2 - n, "v2": n + 1})
                    for r in replicas:
                        until(f"window {window}", lambda r=r, w=window: fleet(r) == w)
            for r in replicas:
                until("one version again", lambda r=r: fleet(r) == (1, {"v1": None, "v2": 3}))
            for s in streamers:
                s.finish()
            sent = [b for s in streamers for b in s.sent]
            acks = [a for s in streamers for a in s.acks]
            assert len(acks) == len(sent)
            assert sum(a.accepted for a in acks) == 8 * len(sent)
            assert not any(a.rejections for a in acks)
            logged = [e for s in log_events(redis.client(), PARTITIONS) for e in s]
            assert sorted(e.event_id for e in logged if not isinstance(e, str)) == sorted(
                e.event_id for b in sent for e in b.events
            )  # every acknowledged event is in the log, once
            counts, scores = expected_from_log(redis, v2)
            check_agrees(replicas, counts, scores)
        finally:
            for replica in replicas:
                replica.process.kill()


def test_a_restart_after_a_rollout_starts_from_the_snapshot_of_its_version(
    bundles: Path, tmp_path: Path
) -> None:
    """Replicas on v1 and v2 both keep snapshotting during the window; each version keeps its
    own snapshot, so a restart on either version replays only the log after it."""
    v1 = version(bundles, "v1", seed=0)
    v2 = version(tmp_path / "next", "v2", seed=1)
    with redis_server(tmp_path) as redis:
        a = Replica(v1.path, tmp_path / "a", redis)
        b = Replica(v1.path, tmp_path / "b", redis)
        try:
            for n in range(3):
                Streamer(a, f"x{n}-", minimum=10).finish()
            a.admin.ReloadBundle(admin_pb2.ReloadBundleRequest(path=str(v2.path)))
            for n in range(3):  # both versions snapshot (every 60 events) in the window
                Streamer(b, f"y{n}-", minimum=10).finish()
                Streamer(a, f"z{n}-", minimum=10).finish()
            total = sum(len(s) for s in log_events(redis.client(), PARTITIONS))
            counts2, scores2 = expected_from_log(redis, v2)
            counts1, scores1 = expected_from_log(redis, v1)
            check_agrees([a], counts2, scores2)
            check_agrees([b], counts1, scores1)
        finally:
            a.process.kill()
            b.process.kill()
        for bundle, counts, scores in ((v2, counts2, scores2), (v1, counts1, scores1)):
            again = Replica(bundle.path, tmp_path / f"again-{bundle.version}", redis)
            try:
                check_agrees([again], counts, scores)
                replayed = again.metric("coldbridge_event_log_events")
                # the entries applied at start-up: only those after its version's snapshot
                assert replayed is not None and replayed < total, (bundle.version, replayed)
            finally:
                again.process.kill()


def test_the_fleet_view_drops_dead_replicas_and_cleanly_stopped_ones(tmp_path: Path) -> None:
    """A replica that stops beating leaves the view after three heartbeats; one that stops
    cleanly leaves it at once (real redis-server, the Lua script the server runs)."""
    views: list[dict[str, int]] = []
    with redis_server(tmp_path) as redis:

        def beacon(version: str) -> FleetBeacon:
            return FleetBeacon(redis.client, lambda: version, 0.1, views.append)

        dead, alive = beacon("v1"), beacon("v2")
        assert dead.beat() == {"v1": 1}
        assert alive.beat() == {"v1": 1, "v2": 1}  # dead never beats again
        until("the dead replica expired", lambda: alive.beat() == {"v2": 1})
        clean = beacon("v3")
        clean.start()
        until("registered", lambda: alive.beat() == {"v2": 1, "v3": 1})
        clean.close()
        assert alive.beat() == {"v2": 1}
        assert views[-1] == {"v2": 1}
