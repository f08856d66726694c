"""Start-up: nothing is answered from half-restored state; stop() during the replay is safe.

The slow replay is real: an event log of many events written through the real
``SqliteEventStore`` and no snapshot, so the server replays all of them at start-up.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_server import Settings, create_server, load_bundle
from coldbridge_server.server import LIVENESS_SERVICE
from coldbridge_server.streaming.sqlite_store import SqliteEventStore
from coldbridge_server.streaming.validate import Domain, Event, Kind
from conftest import TinyBundle
from eventlib import batch, event
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

USERS = 500
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


def write_log(state_dir: Path, n_events: int) -> None:
    """``n_events`` target events of :data:`USERS` users, logged without a snapshot."""
    state_dir.mkdir(parents=True)
    store = SqliteEventStore(state_dir, synchronous="OFF")
    for start in range(0, n_events, 5000):
        store.append(
            [
                Event(f"e{i}", f"user{i % USERS}", f"v{i % 50}", Domain.TARGET, Kind.IMPLICIT)
                for i in range(start, min(n_events, start + 5000))
            ],
            0.0,
        )
    store.close()


def settings(state_dir: Path) -> Settings:
    return Settings(host="127.0.0.1", port=0, state_dir=str(state_dir), metrics_port=-1)


def test_calls_are_unavailable_until_the_replay_is_done(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    n_events = 100_000
    write_log(tmp_path / "state", n_events)
    server, port = create_server(settings(tmp_path / "state"), bundle=load_bundle(tiny_bundle.path))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            rec = recommender_pb2_grpc.RecommenderStub(channel)
            events = events_pb2_grpc.EventsStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            while not server.engine.ready:  # the models are warm: the replay is running
                assert not server.wait_until_ready(0.01), "the replay ended too soon to test"
            calls = {
                "Recommend": lambda: rec.Recommend(pb.RecommendRequest(user_id="user1", k=5)),
                "Score": lambda: rec.Score(pb.ScoreRequest(user_id="user1", item_ids=["v1"])),
                "GetUserState": lambda: events.GetUserState(
                    epb.GetUserStateRequest(user_id="user1")
                ),
                "IngestEvents": lambda: events.IngestEvents(batch(1, event("n1", "u0", "v1"))),
                "StreamEvents": lambda: list(
                    events.StreamEvents(iter([batch(1, event("n2", "u0", "v1"))]))
                ),
            }
            for name, call in calls.items():
                with pytest.raises(grpc.RpcError) as refused:
                    call()
                assert refused.value.code() is grpc.StatusCode.UNAVAILABLE, name
                assert "replaying the event log" in refused.value.details(), name
            check = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert check.status == NOT_SERVING, "the replay ended too soon to test"
            live = health.Check(health_pb2.HealthCheckRequest(service=LIVENESS_SERVICE))
            assert live.status == SERVING
            assert rec.GetModelInfo(pb.GetModelInfoRequest()).bundle_version  # bundle only

            assert server.wait_until_ready(timeout=120)
            state = events.GetUserState(epb.GetUserStateRequest(user_id="user1"))
            assert state.target_events == n_events // USERS  # the whole log, never half
            assert len(rec.Recommend(pb.RecommendRequest(user_id="user1", k=5)).items) == 5
    finally:
        server.stop(None).wait()


def test_stop_during_the_replay_is_clean(
    tiny_bundle: TinyBundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """start() then stop() at once, several times: no error, no thread or store left open."""
    state = tmp_path / "state"
    write_log(state, 20_000)
    bundle = load_bundle(tiny_bundle.path)
    before = set(threading.enumerate())
    caplog.set_level(logging.WARNING)
    for _ in range(4):
        server, _ = create_server(settings(state), bundle=bundle, registry=CollectorRegistry())
        server.start()
        assert server.stop(None).wait(timeout=120)
        left = {t.name for t in set(threading.enumerate()) - before if t.is_alive()}
        assert not left & {"coldbridge-warmup", "coldbridge-ingest"}  # replay and writer ended
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    server, port = create_server(settings(state), bundle=bundle, registry=CollectorRegistry())
    server.start()
    try:
        assert server.wait_until_ready(timeout=120)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            events = events_pb2_grpc.EventsStub(channel)
            got = events.GetUserState(epb.GetUserStateRequest(user_id="user7"))
            assert got.target_events == 20_000 // USERS
    finally:
        server.stop(None).wait()
