"""A full disk in a real server process: SIGTERM still exits cleanly within the grace period,
and a restart with space keeps every acknowledged event."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc
from conftest import TinyBundle
from eventlib import StartProcess, batch, server_processes
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_storage_faults import events_of, logged_ids

GRACE = 2.0


@pytest.fixture
def server_process(tiny_bundle: TinyBundle) -> Iterator[StartProcess]:
    with server_processes(
        tiny_bundle.path, grace_seconds=str(GRACE), snapshot_every_events="100"
    ) as start:
        yield start


def test_full_disk_then_sigterm_exits_in_the_grace_period_and_nothing_acked_is_lost(
    server_process: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    process, channel = server_process(state, state_max_bytes=str(128 * 1024))
    events = events_pb2_grpc.EventsStub(channel)
    acked: set[str] = set()
    codes = []
    for n in range(1, 300):  # snapshots every 100 events and appends both hit the limit
        sent = events_of(f"user{n % 40}", 20, start=n * 20)
        try:
            ack = events.IngestEvents(batch(n, *sent), timeout=30)
        except grpc.RpcError as exc:
            codes.append(exc.code())
            if len(codes) == 3:
                break
            continue
        assert ack.accepted == 20
        acked.update(e.event_id for e in sent)
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3  # the writer is alive, says why
    check = health_pb2_grpc.HealthStub(channel).Check
    events_health = check(health_pb2.HealthCheckRequest(service="coldbridge.v1.Events"))
    assert events_health.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=GRACE + 25) == 0  # not stuck behind a dead writer
    assert acked <= logged_ids(state)

    process, channel = server_process(state)  # space returned: no limit
    events = events_pb2_grpc.EventsStub(channel)
    got = events.GetUserState(epb.GetUserStateRequest(user_id="user1"))
    assert got.target_events == sum(1 for e in acked if e.startswith("euser1-"))
    assert events.IngestEvents(batch(1, *events_of("user1", 5, start=10_000))).accepted == 5
    channel.close()
