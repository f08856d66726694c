"""Storage faults: a full disk or an I/O error never kills the ingest writer.

Disk full is real: SQLite's ``max_page_count`` (the ``state_max_bytes`` setting, or the
store's ``max_bytes``) makes SQLite itself fail with ``SQLITE_FULL``. Only the generic
I/O-error path injects an ``OSError``.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge_server.streaming.sqlite_store import SqliteEventStore
from conftest import TinyBundle
from eventlib import Client, batch, event, serving
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FAST_RETRY = dict(storage_retry_seconds=0.05)


def health(c: Client, service: str = "coldbridge.v1.Events") -> int:
    stub = health_pb2_grpc.HealthStub(c.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service)).status


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def events_of(user: str, n: int, start: int = 0, prefix: str = "e") -> list[epb.Event]:
    return [event(f"{prefix}{user}-{i}", user, f"v{i % 50}") for i in range(start, start + n)]


def logged_ids(state: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(state / "coldbridge.sqlite3")) as db:
        return {row[0] for row in db.execute("SELECT event_id FROM events")}


@contextlib.contextmanager
def swapped_store(c: Client, store_class: type[SqliteEventStore], **kw: Any) -> Iterator[Any]:
    """Reopen the running server's event log as ``store_class`` (same directory)."""
    ingestor = c.server.ingestor
    assert ingestor is not None
    old = ingestor.store
    path, sync = old.path.parent, "NORMAL"
    old.close()
    ingestor._store = new = store_class(path, synchronous=sync, **kw)  # noqa: SLF001
    yield new


def test_disk_full_on_append_is_resource_exhausted_with_the_cause_and_recovers(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with serving(tiny_bundle.path, state, state_max_bytes=160 * 1024, **FAST_RETRY) as c:
        acked: list[str] = []
        refused = None
        for n in range(1, 400):  # until the 160 KiB database is full
            events = events_of(f"user{n % 7}", 50, start=n * 50)
            try:
                ack = c.events.IngestEvents(batch(n, *events))
            except grpc.RpcError as exc:
                refused = (exc, events)
                break
            assert ack.accepted == 50
            acked += [e.event_id for e in events]
        assert refused is not None, "the size limit was never reached"
        exc, events = refused
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "disk full" in exc.details() and "database or disk is full" in exc.details()
        assert "no transaction is active" not in exc.details()
        assert health(c) == NOT_SERVING
        assert health(c, "") == SERVING and health(c, "coldbridge.v1.Recommender") == SERVING
        before = c.scores("user1")
        np.testing.assert_array_equal(c.scores("user1"), before)  # Recommend serves from memory
        reply = c.recommend("user1")
        assert reply.items
        assert reply.degraded_reason == ""  # one process, one log: every ack was applied here
        assert c.metric("coldbridge_storage_errors_total", operation="append", kind="full") >= 1
        assert c.metric("coldbridge_storage_ok") == 0
        with pytest.raises(grpc.RpcError) as again:  # still full: the writer is alive and says so
            c.events.IngestEvents(batch(1000, *events))
        assert again.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        c.server.ingestor.store.max_bytes = 0  # space returns
        wait_for(lambda: health(c) == SERVING, "Events health SERVING after space returned")
        assert c.metric("coldbridge_storage_ok") == 1
        ack = c.events.IngestEvents(batch(1001, *events))  # the refused batch, resent
        assert ack.accepted == len(events)
        acked += [e.event_id for e in events]
    assert set(acked) <= logged_ids(state)  # nothing acknowledged was lost
    with serving(tiny_bundle.path, state) as c:
        assert c.state("user1").target_events == sum(1 for a in acked if a.startswith("euser1-"))


class FillsUpOnSnapshot(SqliteEventStore):
    """While ``full``, the disk is full during every snapshot (SQLite's own size check) and
    has room again for the appends in between (another process's files come and go)."""

    full = False

    def write_snapshot(self, *args: Any, **kwargs: Any) -> None:
        if not self.full:
            return super().write_snapshot(*args, **kwargs)
        self.max_bytes = 1  # max_page_count = the current size: no page can be added
        try:
            super().write_snapshot(*args, **kwargs)
        finally:
            self.max_bytes = 0


def test_disk_full_during_a_snapshot_keeps_the_writer_alive_and_recovers(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    settings = dict(snapshot_every_events=200, warm_threshold=3, **FAST_RETRY)
    with (
        serving(tiny_bundle.path, state, **settings) as c,
        swapped_store(c, FillsUpOnSnapshot) as s,
    ):
        s.full = True
        users = [f"new-{u}" for u in range(300)]  # 300 user states: more than the free pages
        acks = [c.events.IngestEvents(batch(n, *events_of(u, 1))) for n, u in enumerate(users)]
        assert all(a.accepted == 1 for a in acks)  # ingest goes on while snapshots fail
        assert c.metric("coldbridge_storage_errors_total", operation="snapshot", kind="full") >= 1
        assert health(c) == NOT_SERVING
        assert c.state("new-7").target_events == 1  # served from memory
        assert c.recommend("new-7").items

        s.full, s.max_bytes = False, 0  # space returns: the retried snapshot succeeds
        wait_for(lambda: health(c) == SERVING, "SERVING after the snapshot retry")
        ack = c.events.IngestEvents(batch(999, *events_of("new-7", 3, start=1)))
        assert ack.accepted == 3
        served = {u: c.scores(u) for u in ("new-7", "new-8")}
    with serving(tiny_bundle.path, state, **settings) as c:
        for user, scores in served.items():
            np.testing.assert_array_equal(c.scores(user), scores)


class FailingIO(SqliteEventStore):
    """Appends fail with an I/O error while ``failing`` (the generic I/O-error path)."""

    failing = False

    def append(self, events: Any, received_at: float) -> int:
        if self.failing:
            raise OSError(errno.EIO, "Input/output error", str(self.path))
        return super().append(events, received_at)


def test_io_error_on_append_is_unavailable_with_the_cause_and_recovers(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with serving(tiny_bundle.path, state, **FAST_RETRY) as c, swapped_store(c, FailingIO) as s:
        assert c.events.IngestEvents(batch(1, *events_of("u0", 3))).accepted == 3
        s.failing = True
        with pytest.raises(grpc.RpcError) as refused:
            c.events.IngestEvents(batch(2, *events_of("u0", 3, start=3)))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Input/output error" in refused.value.details()
        assert health(c) == NOT_SERVING
        assert c.metric("coldbridge_storage_errors_total", operation="append", kind="io") == 1
        s.failing = False  # the probe write succeeds: SERVING again without any client write
        wait_for(lambda: health(c) == SERVING, "SERVING after the I/O error")
        assert c.events.IngestEvents(batch(3, *events_of("u0", 3, start=3))).accepted == 3
        assert c.state("u0").target_events == 6


def test_a_batch_failing_in_sqlite_fails_alone_not_its_group_commit(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with serving(tiny_bundle.path, state) as c:
        ingestor = c.server.ingestor
        assert c.events.IngestEvents(batch(1, *events_of("u0", 1))).accepted == 1
        side = sqlite3.connect(state / "coldbridge.sqlite3", isolation_level=None)
        side.execute(  # a real SQLite failure that only the poisoned user's batch hits
            "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.user_id = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned event'); END"
        )
        side.close()
        holding, release = threading.Event(), threading.Event()

        def hold(state: Any) -> None:  # the writer publishes u1's state: hold it there
            if state.user_id == "u1":
                holding.set()
                release.wait()

        c.server.ingestor.updater.states.subscribe(hold)
        results: dict[str, Any] = {}

        def send(name: str, events: list[epb.Event]) -> None:
            try:
                results[name] = c.events.IngestEvents(batch(1, *events), timeout=60)
            except grpc.RpcError as exc:
                results[name] = exc

        first = threading.Thread(target=send, args=("first", events_of("u1", 2)))
        first.start()
        wait_for(holding.is_set, "the writer busy with the first batch")
        others = [
            threading.Thread(target=send, args=("poison", events_of("poison", 2))),
            threading.Thread(target=send, args=("good", events_of("s0", 2))),
        ]
        for thread in others:
            thread.start()
        wait_for(lambda: ingestor.queued == 2, "both batches queued behind the first")
        release.set()  # the next group commit holds the poisoned and the good batch
        for thread in (first, *others):
            thread.join()
        assert results["first"].accepted == 2
        assert results["good"].accepted == 2, results["good"]
        assert isinstance(results["poison"], grpc.RpcError)
        assert results["poison"].code() == grpc.StatusCode.INTERNAL
        assert "poisoned event" in results["poison"].details()
        assert c.state("s0").target_events == 2 and c.state("poison").target_events == 0
        assert health(c) == SERVING
    assert {"es0-0", "es0-1", "eu1-0", "eu1-1"} <= logged_ids(state)
    assert not {"epoison-0", "epoison-1"} & logged_ids(state)


def test_an_unexpected_writer_error_is_visible_in_health_and_ingest_goes_on(
    tiny_bundle: TinyBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(tiny_bundle.path, tmp_path / "state") as c:
        updater = c.server.ingestor.updater
        real = updater.apply_many

        def broken(*args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(updater, "apply_many", real)  # fails once
            raise RuntimeError("learner exploded")

        monkeypatch.setattr(updater, "apply_many", broken)
        with pytest.raises(grpc.RpcError) as failed:
            c.events.IngestEvents(batch(1, *events_of("u0", 2)))
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        assert "learner exploded" in failed.value.details()
        assert health(c) == NOT_SERVING  # the state may not match the log: restart needed
        assert c.metric("coldbridge_storage_errors_total", operation="apply", kind="other") == 1
        assert c.events.IngestEvents(batch(2, *events_of("u1", 2))).accepted == 2  # alive


def test_disk_full_at_start_up_still_serves_recommend_and_recovers(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    settings: dict[str, Any] = dict(snapshot_every_events=100_000, **FAST_RETRY)
    with serving(tiny_bundle.path, state, **settings) as c:
        for n in range(300):
            assert c.events.IngestEvents(batch(n, *events_of(f"new-{n}", 1))).accepted == 1
        served = c.scores("new-7")
        ingestor = c.server.ingestor
        ingestor.close = ingestor.store.close  # type: ignore[method-assign]  # a crash
    # the disk is full: the snapshot after the replay (300 new user states) cannot be written
    with serving(tiny_bundle.path, state, state_max_bytes=1, **settings) as c:
        np.testing.assert_array_equal(c.scores("new-7"), served)  # recovered, serving
        wait_for(lambda: health(c) == NOT_SERVING, "Events NOT_SERVING: the snapshot failed")
        assert health(c, "") == SERVING
        assert c.metric("coldbridge_storage_errors_total", operation="snapshot", kind="full") >= 1
        c.server.ingestor.store.max_bytes = 0
        wait_for(lambda: health(c) == SERVING, "SERVING once the snapshot is written")
        ingestor = c.server.ingestor
        ingestor.close = ingestor.store.close  # type: ignore[method-assign]  # a crash again
    with contextlib.closing(sqlite3.connect(state / "coldbridge.sqlite3")) as db:
        assert db.execute("SELECT COUNT(*) FROM user_state").fetchone()[0] == 300
