"""The Redis writer applies its own entries from memory only when nothing it has not applied
precedes them in the partition; otherwise it reads that gap first (docs/scaling.md).

Two in-process replicas over one real redis-server, writer threads only (no follower, so
the interleaving is the test's): each batch of one replica lands after the other's on the
same partitions, and each replica's states must equal the serial replay of the log, bit
for bit (the online updates depend on the order of a user's events).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from coldbridge_plugins import get_plugin_manager, load_strategies
from coldbridge_server import Settings, load_bundle
from coldbridge_server.app import build_engine, build_ingestor
from coldbridge_server.core import UserStates
from coldbridge_server.streaming.ingest import Ingestor
from coldbridge_server.streaming.redis_codec import StreamId
from coldbridge_server.streaming.redis_store import Appended, RedisEventStore
from coldbridge_server.streaming.replicated import ReplicatedIngestor
from coldbridge_server.streaming.validate import Domain, Event, Kind
from conftest import TinyBundle
from redislib import log_events, redis_server, serial_replay

PARTITIONS = 2
SETTINGS: dict[str, Any] = dict(online_negatives=2, warm_threshold=3)
USERS = ["u0", "u1", "u2", "u3", "u4", "u5"]


@contextmanager
def writer_only(bundle: Path, url: str) -> Iterator[tuple[ReplicatedIngestor, list[Any]]]:
    """A replica without its follower; yields it and the log reads of its writer."""
    config = Settings(
        bundle_path=str(bundle),
        store="redis",
        redis_url=url,
        redis_partitions=PARTITIONS,
        **SETTINGS,
    )
    states = UserStates()
    served = load_bundle(bundle)
    engine = build_engine(config, served, load_strategies(get_plugin_manager()), None, states)
    ingestor = build_ingestor(config, engine.resolver, states)
    assert isinstance(ingestor, ReplicatedIngestor)
    Ingestor.start(ingestor)  # recover + the writer; no follower thread
    reads: list[Any] = []
    store = ingestor.redis
    read = store.read

    def spy(p: int, after: StreamId, upto: StreamId | None = None) -> Any:
        reads.append((p, after, upto))
        return read(p, after, upto)

    store.read = spy  # type: ignore[method-assign]
    try:
        yield ingestor, reads
    finally:
        ingestor.close()


def events(tag: str, seed: int, n: int = 30, timestamps: bool = False) -> list[Event]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        user = USERS[int(rng.integers(len(USERS)))]
        when = 1_700_000_000.0 + seed * 100 + k if timestamps else 0.0
        if rng.random() < 0.2:
            out.append(
                Event(f"{tag}{k}", user, f"g{rng.integers(40)}", Domain.SOURCE, Kind.IMPLICIT)
            )
        else:
            item = f"v{rng.integers(50)}"
            out.append(Event(f"{tag}{k}", user, item, Domain.TARGET, Kind.IMPLICIT, 0.0, when))
    return out


def assert_serial(replica: ReplicatedIngestor, bundle: Path, client: Any) -> None:
    """The replica's states equal the serial replay of the whole log, bit for bit."""
    expected = serial_replay(bundle, log_events(client, PARTITIONS), **SETTINGS)
    got = replica.updater.states
    assert sorted(s.user_id for s in got) == sorted(s.user_id for s in expected)
    for want in expected:
        have = got.get(want.user_id)
        assert have is not None
        assert (have.source_events, have.target_events, have.online_updates, have.seen) == (
            want.source_events,
            want.target_events,
            want.online_updates,
            want.seen,
        ), want.user_id
        for name in ("delta", "vector"):
            a, b = getattr(have, name), getattr(want, name)
            assert (a is None) == (b is None), (want.user_id, name)
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"{want.user_id} {name}")


def test_own_entries_after_another_replicas_are_applied_in_stream_order(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    bundle = tiny_bundle.path
    with (
        redis_server(tmp_path) as redis,
        writer_only(bundle, redis.url) as (a, a_reads),
        writer_only(bundle, redis.url) as (b, b_reads),
    ):
        client = redis.client()
        assert a.ingest(events("a", 1)).accepted == 30
        assert a_reads == []  # nothing before its entries: applied from memory
        assert_serial(a, bundle, client)

        assert b.ingest(events("b", 2)).accepted == 30
        # a's entries precede b's on both partitions: b reads exactly that gap first
        assert sorted(p for p, _, _ in b_reads) == list(range(PARTITIONS))
        assert all(after == (0, 0) for _, after, _ in b_reads)
        assert_serial(b, bundle, client)

        a_reads.clear()
        result = a.ingest([*events("a", 1)[:5], *events("c", 3, timestamps=True)])
        assert result.accepted == 30 and len(result.rejections) == 5  # 5 duplicates
        assert a_reads  # b's entries came between: read before a's new ones
        assert_serial(a, bundle, client)

        a_reads.clear()
        assert a.ingest(events("d", 4, timestamps=True)).accepted == 30
        assert a.ingest(events("f", 7)).accepted == 30
        assert a_reads == []  # a is at the end of every partition again
        assert_serial(a, bundle, client)

        b_reads.clear()
        assert b.ingest(events("e", 5, timestamps=True)).accepted == 30
        assert b_reads  # a's last three batches
        assert_serial(b, bundle, client)
        assert a.redis.cursors != b.redis.cursors  # a has not applied b's last batch


def test_append_reports_the_partitions_that_directly_follow_the_cursor(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis:
        one = RedisEventStore(redis.url, partitions=PARTITIONS)
        two = RedisEventStore(redis.url, partitions=PARTITIONS)
        p = one.partition("u0")
        other = next(u for u in USERS if one.partition(u) != p)

        def put(store: RedisEventStore, *ids: str, user: str = "u0") -> Appended:
            batch = [Event(i, user, "v1", Domain.TARGET, Kind.IMPLICIT) for i in ids]
            return store.append_events(batch, 1.0)

        first = put(one, "e1", "e1")  # the same id twice: logged once
        assert first.follows == {p} and first.ids[0] is not None and first.ids[1] is None
        assert put(one, "o1", user=other).follows == {one.partition(other)}
        second = put(two, "e2")
        assert second.follows == frozenset()  # one's entry precedes it; two is at 0-0
        assert second.ids[0] is not None
        two.cursors[p] = second.ids[0]  # as if two had applied the stream so far
        third = put(two, "e3")
        assert third.follows == {p} and third.ids[0] is not None
        two.cursors[p] = third.ids[0]
        one.erase("u0")  # deletes e1..e3, appends an erasure entry after two's cursor
        assert put(two, "e4").follows == frozenset()
        assert put(two, "e5").follows == frozenset()  # two's cursor did not move
        one.close()
        two.close()


def test_ids_of_any_characters_are_logged_as_sent(tmp_path: Path) -> None:
    """The append script's argument carries UTF-8 byte lengths (spaces, digits, non-ASCII)."""
    weird = ["1 2 3 ", "ü é", "", " 0", "😀\x00,", "x" * 300]
    batch = [
        Event(f"{e}#{n}", u or "u", f"v{n}", Domain.TARGET, Kind.RATING, n / 7, 0.0)
        for n, (e, u) in enumerate(zip(weird, reversed(weird), strict=True))
    ]
    with redis_server(tmp_path) as redis:
        store = RedisEventStore(redis.url, partitions=1)
        logged = store.append_events([*batch, batch[0]], 5.0)
        assert None not in logged.ids[:-1] and logged.ids[-1] is None  # the resent one
        assert log_events(redis.client(), 1) == [[e._replace(timestamp=5.0) for e in batch]]
        store.close()
