"""Concurrency: open streams never starve unary calls; stream caps answer RESOURCE_EXHAUSTED.

Real servers on loopback port 0. Open streams are held idle the way a real client holds
them: a ``Health.Watch`` that got its first answer, or a ``StreamEvents`` whose request
iterator waits for the next batch.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_server import ConfigError, Settings, create_server, load_bundle
from conftest import TinyBundle
from eventlib import batch, event, serving
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
STREAM_DEADLINE = 120  # a safety net only: every stream is closed long before


class Streams:
    """Idle streams held open on ``channel`` (closed on exit)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.health = health_pb2_grpc.HealthStub(channel)
        self.events = events_pb2_grpc.EventsStub(channel)
        self.calls: list[Any] = []
        self.feeds: list[queue.Queue[epb.EventBatch | None]] = []

    def watch(self) -> Any:
        """A Health.Watch that has received its first answer (its handler is running)."""
        call = self.health.Watch(health_pb2.HealthCheckRequest(), timeout=STREAM_DEADLINE)
        self.calls.append(call)
        assert next(call).status == SERVING
        return call

    def events_stream(self, first: epb.EventBatch) -> Any:
        """A StreamEvents with ``first`` sent; the stream then waits for more batches."""
        feed: queue.Queue[epb.EventBatch | None] = queue.Queue()
        feed.put(first)
        call = self.events.StreamEvents(iter(feed.get, None), timeout=STREAM_DEADLINE)
        self.calls.append(call)
        self.feeds.append(feed)
        return call

    def close(self) -> None:
        for feed in self.feeds:
            feed.put(None)
        for call in self.calls:
            call.cancel()


@contextlib.contextmanager
def idle_streams(channel: grpc.Channel) -> Iterator[Streams]:
    streams = Streams(channel)
    try:
        yield streams
    finally:
        streams.close()


def unary_calls_answer(channel: grpc.Channel, tag: str) -> None:
    """Recommend, Health.Check, IngestEvents and GetUserState all answer OK."""
    rec = recommender_pb2_grpc.RecommenderStub(channel)
    events = events_pb2_grpc.EventsStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    assert len(rec.Recommend(pb.RecommendRequest(user_id="u0", k=5), timeout=10).items) == 5
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
    ack = events.IngestEvents(batch(1, event(f"{tag}-unary", "u1", "v3")), timeout=10)
    assert ack.accepted == 1
    assert events.GetUserState(epb.GetUserStateRequest(user_id="u1"), timeout=10).user_id


def test_idle_streams_never_starve_unary_calls(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    """More idle streams than handler threads (max_workers=8): unary calls still answer."""
    with serving(tiny_bundle.path, tmp_path / "state") as c, idle_streams(c.channel) as s:
        for _ in range(8):
            s.watch()
        calls = [s.events_stream(batch(1, event(f"s{i}", "u0", "v1"))) for i in range(8)]
        unary_calls_answer(c.channel, "a")
        assert [next(call).accepted for call in calls] == [1] * 8  # the streams work too


def test_server_stream_cap_refuses_with_resource_exhausted(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    settings = dict(max_streams=4, max_streams_per_client=100)
    with (
        serving(tiny_bundle.path, tmp_path / "state", **settings) as c,
        idle_streams(c.channel) as s,
    ):
        watches = [s.watch() for _ in range(4)]
        refused_batch = batch(1, event("refused", "u0", "v1"))
        for open_one in (s.watch, lambda: next(s.events_stream(refused_batch))):
            with pytest.raises(grpc.RpcError) as refused:
                open_one()
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_streams" in refused.value.details()
            assert "max_streams_per_client" not in refused.value.details()
        unary_calls_answer(c.channel, "b")  # unary calls are never capped
        watches[0].cancel()
        assert next(_admitted(s)).accepted == 1  # a closed stream frees its place


def _admitted(s: Streams) -> Any:
    """A StreamEvents opened once the server has released a cancelled stream's place."""
    for attempt in range(200):
        call = s.events_stream(batch(1, event(f"late-{attempt}", "u0", "v2")))
        try:
            first = next(call)
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            continue
        return iter([first])
    raise AssertionError("the cancelled stream's place was never released")


def test_per_client_stream_cap(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    """One client address at its cap is refused; another address still gets streams."""
    settings = Settings(
        host="[::]",
        port=0,
        state_dir=str(tmp_path / "state"),
        metrics_port=-1,
        max_streams_per_client=2,
    )
    server, port = create_server(settings, bundle=load_bundle(tiny_bundle.path))
    server.start()
    try:
        assert server.wait_until_ready(timeout=60)
        with (
            grpc.insecure_channel(f"127.0.0.1:{port}") as v4,
            grpc.insecure_channel(f"[::1]:{port}") as v6,
            idle_streams(v4) as four,
            idle_streams(v6) as six,
        ):
            four.watch(), four.watch()
            with pytest.raises(grpc.RpcError) as refused:
                four.watch()
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_streams_per_client" in refused.value.details()
            six.watch(), six.watch()  # another client address
            unary_calls_answer(v4, "c")
    finally:
        server.stop(None).wait()


def test_max_connection_age_closes_long_lived_streams(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    settings = dict(max_connection_age_seconds=0.5, max_connection_age_grace_seconds=0.5)
    with (
        serving(tiny_bundle.path, tmp_path / "state", **settings) as c,
        idle_streams(c.channel) as s,
    ):
        call = s.watch()
        with pytest.raises(grpc.RpcError) as ended:
            next(call)  # no status change: only the connection's age can end it
        assert ended.value.code() is grpc.StatusCode.UNAVAILABLE, ended.value


@pytest.mark.parametrize(
    "bad",
    [
        {"max_streams": 0},
        {"max_streams_per_client": 0},
        {"drain_seconds": -1.0},
        {"keepalive_seconds": 0.0},
        {"keepalive_timeout_seconds": 0.0},
        {"max_connection_age_seconds": -1.0},
        {"max_connection_age_grace_seconds": -1.0},
    ],
    ids=lambda bad: next(iter(bad)),
)
def test_out_of_range_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(**bad)  # type: ignore[arg-type]
    assert refused.value.setting == next(iter(bad))
