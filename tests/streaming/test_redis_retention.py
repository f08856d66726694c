"""Retention with the Redis store: each partition's stream and event ids are trimmed below its
snapshot (by count and by age), the idempotency window ends with retention, a replica started
after trimming equals the serial replay of the full history, and a replica that fell behind
the trim point re-bootstraps the partition from the snapshot instead of skipping events."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge_server import Settings
from coldbridge_server.streaming.redis_codec import keys, partition_of
from coldbridge_server.streaming.redis_retention import trim
from coldbridge_server.streaming.redis_store import LogTrimmed, RedisEventStore
from coldbridge_server.streaming.validate import Domain, Event, Kind
from conftest import TinyBundle
from eventlib import SOURCE, Client, batch, serving
from redislib import redis_server, serial_replay
from test_events_durability import USERS, workload

BASE = dict(store="redis", redis_partitions=2, warm_threshold=5, snapshot_every_events=1)
DUPLICATE = epb.REJECTION_REASON_DUPLICATE_EVENT


def domain_event(message: epb.Event) -> Event:
    domain = Domain.SOURCE if message.domain == SOURCE else Domain.TARGET
    return Event(message.event_id, message.user_id, message.item_id, domain, Kind.IMPLICIT)


def history(*parts: Sequence[epb.EventBatch] | str) -> list[list[Event | str]]:
    """The full history as one stream: events in send order, a str is an erasure."""
    out: list[Event | str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            out += [domain_event(e) for b in part for e in b.events]
    return [out]


def assert_equals_replay(c: Client, bundle: TinyBundle, streams: list[list[Event | str]]) -> None:
    replay = serial_replay(bundle.path, streams, warm_threshold=5)
    for user in USERS:
        state = replay.get(user)
        got = c.state(user)
        counts = (0, 0) if state is None else (state.source_events, state.target_events)
        assert (got.source_events, got.target_events) == counts, user
        if state is not None:  # the served scores follow the replayed vector
            expected = bundle.all_scores(state.vector)
            np.testing.assert_allclose(c.scores(user), expected, rtol=1e-5, atol=1e-5)


def wait_for(c: Client, streams: list[list[Event | str]], bundle: TinyBundle) -> None:
    """Quiescence (the deadline only stops a hang): the replica applied the whole log."""
    replay = serial_replay(bundle.path, streams, warm_threshold=5)
    expected = {}
    for user in USERS:
        state = replay.get(user)
        expected[user] = (0, 0) if state is None else (state.source_events, state.target_events)
    deadline = time.monotonic() + 60
    while True:
        got = {u: (s.source_events, s.target_events) for u in USERS for s in [c.state(u)]}
        if got == expected:
            return
        assert time.monotonic() < deadline, f"{got} != {expected}"
        time.sleep(0.05)


def resend_duplicate(c: Client, message: epb.Event) -> None:
    """Resend a logged event: DUPLICATE_EVENT. Also a barrier: the writer acks a batch
    before its snapshot and trim, and answers this only after them."""
    dup = c.events.IngestEvents(batch(99, message))
    assert [r.reason for r in dup.rejections] == [DUPLICATE]


def lengths(client: Any) -> list[tuple[int, int]]:
    """Per partition, (stream length, number of event ids)."""
    return [(client.xlen(keys(p)[0]), client.hlen(keys(p)[1])) for p in range(2)]


def test_retention_settings_are_accepted_with_the_redis_store() -> None:
    """Refused with a ConfigError before retention over Redis was built."""
    settings = Settings(store="redis", event_retention_seconds=60.0, event_retention_events=5)
    assert settings.event_retention_events == 5


def test_retention_by_events_trims_each_partition_and_a_new_replica_equals_the_full_replay(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    batches = workload(20)  # 200 events over both partitions
    per_partition = [0, 0]
    for e in (e for b in batches for e in b.events):
        per_partition[partition_of(e.user_id, 2)] += 1
    assert min(per_partition) > 8
    settings = dict(BASE, event_retention_events=8)
    with redis_server(tmp_path) as redis:
        client = redis.client()
        with serving(tiny_bundle.path, tmp_path / "a", redis_url=redis.url, **settings) as a:
            assert all(ack.accepted == 10 for ack in a.stream(batches[:10]))
            erased = a.events.DeleteUser(epb.DeleteUserRequest(user_id="u0"))
            assert erased.had_state  # the erasure entry is trimmed later, the user stays gone
            assert all(ack.accepted == 10 for ack in a.stream(batches[10:]))
            first, last = batches[0].events[0], batches[-1].events[-1]
            resend_duplicate(a, last)  # inside the idempotency window
            # each partition keeps its newest 8 entries, and exactly their ids
            assert lengths(client) == [(8, 8), (8, 8)]
            trimmed = 200 - 16 - erased.deleted_events  # events (not the erasure entry)
            assert a.metric("coldbridge_events_erased_total", reason="retention") == trimmed
            kept = {eid.decode() for p in range(2) for eid in client.hkeys(keys(p)[1])}
            assert first.event_id not in kept and last.event_id in kept
            # the idempotency window ended with retention: the trimmed event is new again
            assert a.events.IngestEvents(batch(22, first)).accepted == 1
            full = history(batches[:10], "u0", batches[10:], [batch(22, first)])
            assert_equals_replay(a, tiny_bundle, full)
        # a replica started after trimming: the snapshots + the kept tails
        with serving(tiny_bundle.path, tmp_path / "b", redis_url=redis.url, **settings) as b:
            assert_equals_replay(b, tiny_bundle, full)
            assert b.metric("coldbridge_replica_rebootstraps_total") == 0


def test_retention_by_age_trims_entries_older_than_the_limit(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    batches = workload(8)
    settings = dict(BASE, event_retention_seconds=1.5)
    with redis_server(tmp_path) as redis:
        client = redis.client()
        with serving(tiny_bundle.path, tmp_path / "a", redis_url=redis.url, **settings) as a:
            a.stream(batches[:5])
            assert sum(n for n, _ in lengths(client)) == 50  # nothing is old enough yet
            time.sleep(1.6)  # the first 50 events age past the retention
            a.stream(batches[5:])  # their snapshots cover the old entries: trimmed
            resend_duplicate(a, batches[-1].events[0])  # inside the window
            kept = {eid.decode() for p in range(2) for eid in client.hkeys(keys(p)[1])}
            assert kept == {e.event_id for b in batches[5:] for e in b.events}
            assert sum(n for n, _ in lengths(client)) == 30
            again = batches[0].events[0]
            assert a.events.IngestEvents(batch(10, again)).accepted == 1
        full = history(batches, [batch(10, again)])
        with serving(tiny_bundle.path, tmp_path / "b", redis_url=redis.url, **settings) as b:
            assert_equals_replay(b, tiny_bundle, full)


def test_a_lagging_replica_rebootstraps_the_trimmed_partitions_and_agrees(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    batches = workload(14)
    settings = dict(BASE, event_retention_events=5)
    with (
        redis_server(tmp_path) as redis,
        serving(tiny_bundle.path, tmp_path / "a", redis_url=redis.url, **settings) as a,
        serving(tiny_bundle.path, tmp_path / "b", redis_url=redis.url, **settings) as b,
    ):
        a.stream(batches[:2])
        wait_for(b, history(batches[:2]), tiny_bundle)
        with b.server.ingestor.writer_lock:  # b's follower cannot apply: it falls behind
            a.stream(batches[2:])  # a trims far past b's cursors
            resend_duplicate(a, batches[-1].events[-1])
            assert lengths(redis.client()) == [(5, 5), (5, 5)]
        wait_for(b, history(batches), tiny_bundle)
        assert b.metric("coldbridge_replica_rebootstraps_total") >= 1
        assert a.metric("coldbridge_replica_rebootstraps_total") == 0
        assert_equals_replay(b, tiny_bundle, history(batches))
        for user in USERS:
            np.testing.assert_array_equal(b.scores(user), a.scores(user))


def test_a_read_across_a_trim_raises_instead_of_skipping(tmp_path: Path) -> None:
    """The race: another replica trims between two chunks of a replica's read."""
    with redis_server(tmp_path) as redis:
        writer = RedisEventStore(redis.url, partitions=1)
        reader = RedisEventStore(redis.url, partitions=1)
        try:
            events = [Event(f"e{n}", "u", "v1", Domain.TARGET, Kind.IMPLICIT) for n in range(30)]
            ids = writer.append_events(events, 0.0).ids
            writer.cursors[0] = max(i for i in ids if i is not None)
            assert writer.write_partition(0, [], "v", full=True) == "ok"
            chunks = reader.read(0, (0, 0), count=10)
            first = [next(chunks) for _ in range(10)]  # the first chunk is read
            assert trim(writer, 0, "v", keep=5) == 25
            with pytest.raises(LogTrimmed) as gap:
                next(chunks)  # the next chunk would start after entries that are gone
            assert gap.value.point == ids[24]
            assert [sid for sid, _ in first] == ids[:10]
            with pytest.raises(LogTrimmed):  # a reader below the trim point, from the start
                list(reader.read(0, ids[10] or (0, 0)))
            assert [sid for sid, _ in reader.read(0, ids[24] or (0, 0))] == ids[25:]
            reader.cursors[0] = ids[3] or (0, 0)
            with pytest.raises(LogTrimmed):  # the follower's read
                list(reader.read_new(1)[0])
            assert list(reader.read(0, (0, 0), checked=False)) == list(reader.read(0, ids[24]))
        finally:
            writer.close()
            reader.close()


def test_trimming_keeps_what_every_kept_versions_snapshot_needs(tmp_path: Path) -> None:
    """During a roll-out each bundle version has its own snapshot: a trim goes no further
    than the oldest of them, so a restart on the old version still finds its tail."""
    with redis_server(tmp_path) as redis:
        store = RedisEventStore(redis.url, partitions=1)
        try:
            events = [Event(f"e{n}", "u", "v1", Domain.TARGET, Kind.IMPLICIT) for n in range(30)]
            ids = [i for i in store.append_events(events, 0.0).ids if i is not None]
            store.cursors[0] = ids[9]
            assert store.write_partition(0, [], "old", full=True) == "ok"
            store.cursors[0] = ids[29]
            assert store.write_partition(0, [], "new", full=True) == "ok"
            assert trim(store, 0, "other", keep=1) == 0  # no snapshot of its own: no trim
            assert trim(store, 0, "new", keep=1) == 10  # up to the old version's cursor only
            assert [sid for sid, _ in store.read(0, ids[9], checked=False)] == ids[10:]
            log, ids_key = keys(0)[:2]
            assert store.client.xlen(log) == 20 and store.client.hlen(ids_key) == 20
        finally:
            store.close()


def test_an_append_to_a_stream_trimmed_empty_does_not_follow_a_fresh_cursor(
    tmp_path: Path,
) -> None:
    """A replica that applied nothing (cursor 0-0) appends to a partition whose every entry
    was trimmed: the empty stream must not read as "nothing precedes your entries" (the
    replica would apply its own from memory and never see the trimmed ones)."""
    with redis_server(tmp_path) as redis:
        writer = RedisEventStore(redis.url, partitions=1)
        fresh = RedisEventStore(redis.url, partitions=1)
        try:
            events = [Event(f"e{n}", "u", "v1", Domain.TARGET, Kind.IMPLICIT) for n in range(5)]
            ids = writer.append_events(events, 0.0).ids
            writer.cursors[0] = max(i for i in ids if i is not None)
            assert writer.write_partition(0, [], "v", full=True) == "ok"
            assert trim(writer, 0, "v", max_age_ms=1) == 5  # logged at time 0: all too old
            assert writer.client.xlen(keys(0)[0]) == 0
            mine = [Event("f0", "w", "v1", Domain.TARGET, Kind.IMPLICIT)]
            assert fresh.append_events(mine, 1.0).follows == frozenset()
            # a replica at the trim point of a stream trimmed empty does follow
            writer.cursors[0] = [sid for sid, _ in fresh.read(0, (0, 0), checked=False)][-1]
            assert writer.write_partition(0, [], "v", full=True) == "ok"
            time.sleep(0.01)
            assert trim(writer, 0, "v", max_age_ms=1) == 1
            more = [Event("f1", "w", "v1", Domain.TARGET, Kind.IMPLICIT)]
            assert writer.append_events(more, 1.0).follows == frozenset({0})
        finally:
            writer.close()
            fresh.close()


def test_a_reload_rebuild_reads_what_retention_kept(tmp_path: Path) -> None:
    """Hot reload's rebuild (``read_chunk`` from the start of every stream) reads the entries
    retention kept, like ``events_after``, instead of failing on the trimmed head."""
    with redis_server(tmp_path) as redis:
        store = RedisEventStore(redis.url, partitions=1)
        try:
            events = [Event(f"e{n}", "u", "v1", Domain.TARGET, Kind.IMPLICIT) for n in range(30)]
            ids = [i for i in store.append_events(events, 0.0).ids if i is not None]
            store.cursors[0] = ids[-1]
            assert store.write_partition(0, [], "v", full=True) == "ok"
            assert trim(store, 0, "v", keep=5) == 25
            rows, cursor = store.read_chunk(None, 2)
            more, _ = store.read_chunk(cursor, None)
            assert [e.event_id for e, _ in rows + more] == [e.event_id for e in events[25:]]
            assert [e for _, e in store.events_after(0)] == [e for e, _ in rows + more]
        finally:
            store.close()
