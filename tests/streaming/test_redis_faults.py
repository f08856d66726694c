"""The Redis store when Redis itself fails: a kill -9 of redis-server during streamed ingest
loses no acknowledged event (appendfsync always), and during an outage ingest answers
UNAVAILABLE, Recommend keeps serving from memory, the Events health is NOT_SERVING, and
everything recovers by itself when Redis returns."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import recommender_pb2 as pb
from conftest import TinyBundle
from eventlib import SOURCE, Client, batch, event, serving
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redislib import RedisServer, log_events, redis_server

USERS = ["u0", "s0", *(f"n{i}" for i in range(6))]
SETTINGS = dict(store="redis", redis_partitions=4, storage_retry_seconds=0.2)


def events_of(n: int) -> list[epb.Event]:
    return [
        event(f"e{n}-{k}", USERS[(n + k) % len(USERS)], f"v{(n * 7 + k) % 50}") for k in range(10)
    ]


def health(client: Client, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(client.channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service)).status)


def wait_health(client: Client, service: str, status: int) -> None:
    deadline = time.monotonic() + 30  # only stops a hang; no timing is asserted
    while health(client, service) != status:
        assert time.monotonic() < deadline, f"{service} never became {status}"
        time.sleep(0.05)


def logged(redis: RedisServer) -> Counter[str]:
    streams = log_events(redis.client(), 4)
    return Counter(e.event_id for s in streams for e in s if not isinstance(e, str))


def test_kill_9_of_redis_mid_stream_loses_no_acknowledged_event(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    batches = [batch(n + 1, *events_of(n)) for n in range(300)]
    with (
        redis_server(tmp_path) as redis,
        serving(tiny_bundle.path, tmp_path / "state", redis_url=redis.url, **SETTINGS) as client,
    ):
        acked: list[epb.EventBatch] = []
        with pytest.raises(grpc.RpcError) as failure:
            for ack in client.events.StreamEvents(iter(batches)):
                assert ack.accepted == 10
                acked.append(batches[ack.sequence - 1])
                if len(acked) == 100:
                    redis.kill()  # kill -9 while batches are in flight
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Redis unavailable" in (failure.value.details() or "")
        assert 100 <= len(acked) < 300

        redis.start()  # the same AOF directory and port
        ids = logged(redis)
        lost = [e.event_id for b in acked for e in b.events if ids[e.event_id] != 1]
        assert lost == []  # every acknowledged event is in the log, once

        wait_health(client, "coldbridge.v1.Events", health_pb2.HealthCheckResponse.SERVING)
        acks = client.stream(batches)  # resend everything: acked ones are duplicates
        duplicates = sum(len(a.rejections) for a in acks[: len(acked)])
        assert duplicates == 10 * len(acked)
        assert sum(a.accepted for a in acks) + sum(len(a.rejections) for a in acks) == 3000
        assert set(logged(redis).values()) == {1} and len(logged(redis)) == 3000
        per_user = Counter(e.user_id for b in batches for e in b.events)
        for user in USERS:  # applied once each, after the recovery too
            assert client.state(user).target_events == per_user[user]


def test_redis_outage_unavailable_ingest_serving_recommend_and_self_recovery(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    with (
        redis_server(tmp_path) as redis,
        serving(tiny_bundle.path, tmp_path / "state", redis_url=redis.url, **SETTINGS) as client,
    ):
        client.events.IngestEvents(batch(1, *events_of(0)))
        source = event("src-1", "n9", "g3", SOURCE)
        client.events.IngestEvents(batch(2, source))
        before = {u: client.recommend(u) for u in ("n0", "n9", "u0", "nobody")}
        assert client.metric("coldbridge_storage_ok") == 1
        assert all(reply.degraded_reason == "" for reply in before.values())

        redis.stop()
        with pytest.raises(grpc.RpcError) as failure:
            client.events.IngestEvents(batch(3, *events_of(1)))
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Redis unavailable" in (failure.value.details() or "")
        wait_health(client, "coldbridge.v1.Events", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert health(client, "") == health_pb2.HealthCheckResponse.SERVING
        assert client.metric("coldbridge_storage_ok") == 0
        assert client.metric("coldbridge_storage_errors_total", operation="append", kind="io") >= 1
        time.sleep(0.5)
        assert client.metric("coldbridge_replica_lag_seconds") >= 0.5
        for user, reply in before.items():  # served from memory: the same answers
            again = client.recommend(user)
            assert [i.item_id for i in again.items] == [i.item_id for i in reply.items]
            assert again.stage == reply.stage and again.provenance == reply.provenance
            assert again.degraded_reason == "event_log_unavailable"  # other acks go unseen
        degraded = {"reason": "event_log_unavailable"}
        assert client.metric("coldbridge_degraded_answers_total", **degraded) >= len(before)
        assert before["nobody"].provenance == pb.PROVENANCE_FALLBACK
        assert before["n9"].provenance == pb.PROVENANCE_TRANSFERRED  # streamed source event
        assert client.state("n0").target_events > 0

        redis.start()
        wait_health(client, "coldbridge.v1.Events", health_pb2.HealthCheckResponse.SERVING)
        assert client.metric("coldbridge_storage_ok") == 1
        ack = client.events.IngestEvents(batch(4, *events_of(1)))  # never logged: accepted
        assert ack.accepted == 10
        again = client.events.IngestEvents(batch(5, *events_of(0)))  # logged before the outage
        assert again.accepted == 0 and len(again.rejections) == 10
        deadline = time.monotonic() + 30  # the follower reads the log end again
        while client.metric("coldbridge_replica_lag_seconds") >= 0.5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert sum(logged(redis).values()) == 21
        assert client.recommend("n0").degraded_reason == ""
