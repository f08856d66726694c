"""The second :class:`~coldbridge_server.streaming.store.EventStore`: a replicated log in Redis.

Users are hashed to ``partitions`` partitions (:func:`~.redis_codec.partition_of`); each
partition is one Redis Stream plus its idempotency hash and snapshot
(:mod:`~coldbridge_server.streaming.redis_codec` lists the keys). Appending runs one Lua
script per partition (:data:`~.redis_scripts.APPEND`) that claims each event id and XADDs the
event: Redis decides one total order per partition, shared by every replica. Every replica
applies every partition's stream in that order
(:class:`~coldbridge_server.streaming.replicated.ReplicatedIngestor`), so all replicas converge
to the serial replay of the log.

Differences from the SQLite contract of :class:`EventStore` (docs/scaling.md):

* **No lock**: many server processes share the keyspace by design; the Lua scripts make
  their writes safe. The partition count is stored in Redis, and a server configured with
  another count refuses to start.
* **Positions**: the stream ids order each partition; :meth:`events_after` packs
  ``(partition, stream id)`` into one integer (:func:`~.redis_codec.position`) and yields the
  events this replica has applied (up to :attr:`cursors`), partition after partition.
  :attr:`last_seq` and :attr:`count` count the entries this replica applied.
* **Snapshots** are per partition and bundle version and cover this replica's
  :attr:`cursors`.
* **Idempotency** is per partition: a resent event (same user) is always recognised.
* **Retention** trims each stream below its snapshot's cursor
  (:mod:`~coldbridge_server.streaming.redis_retention`); :meth:`read` raises
  :class:`LogTrimmed` when entries after the cursor it reads from are gone.

Durability: :meth:`append_events` returns once Redis answered, i.e. once the events are in
the append-only file, fsynced with ``appendfsync always``; with ``wait_replicas`` > 0 it then
WAITs for that many Redis replicas. Redis errors become
:class:`~coldbridge_server.errors.StorageError` (``OOM``: :class:`StorageFullError`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from redis.cluster import RedisCluster

from coldbridge_server.core import UserState
from coldbridge_server.errors import ConfigError, StorageError
from coldbridge_server.streaming import redis_scripts
from coldbridge_server.streaming.redis_client import connect, translated
from coldbridge_server.streaming.redis_codec import (
    PARTITIONS_KEY,
    StreamId,
    append_argument,
    decode_blob,
    decode_entry,
    encode_blob,
    fmt_id,
    keys,
    parse_id,
    partition_of,
    position,
    unposition,
    version_key,
)
from coldbridge_server.streaming.store import EventStore, Logged
from coldbridge_server.streaming.validate import Event

__all__ = ["Appended", "Entry", "LogTrimmed", "RedisEventStore", "connect"]

logger = logging.getLogger(__name__)
Entry = tuple[StreamId, Event | str]
"""A stream entry: its id and its event (or the user id of an erasure)."""
_ZERO: StreamId = (0, 0)
_CHUNK = 1000
_TRIM_CHECK_SECONDS = 1.0
_ATTEMPTS = 10
SNAPSHOT_VERSIONS = 2
"""Bundle versions whose snapshots a partition keeps (the served one and the one before:
a roll-out's window, or a roll-back); older ones are dropped at the next full snapshot."""


class LogTrimmed(Exception):  # noqa: N818 (a signal to re-bootstrap, not an error)
    """Entries of partition ``partition`` after the reader's cursor were deleted by
    retention (up to ``point``): the reader must reload the partition from its snapshot."""

    def __init__(self, partition: int, point: StreamId) -> None:
        super().__init__(f"partition {partition} was trimmed up to {fmt_id(point)}")
        self.partition, self.point = partition, point


def _gap(partition: int, point: StreamId) -> Iterator[Entry]:
    """Entries that cannot be read: iterating raises :class:`LogTrimmed`."""
    raise LogTrimmed(partition, point)
    yield  # pragma: no cover  (makes this a generator)


class Appended(NamedTuple):
    """What :meth:`RedisEventStore.append_events` logged."""

    ids: list[StreamId | None]
    """Per event its stream id, or ``None`` if its event id was already logged."""
    follows: frozenset[int]
    """The partitions whose new entries directly follow :attr:`RedisEventStore.cursors`: no
    entry this replica has not applied precedes them."""
    parts: dict[int, list[int]]
    """Per partition, the indexes of its events in the batch (in batch order)."""


class RedisEventStore(EventStore):
    """The partitioned event log, idempotency ids and snapshots in Redis.

    Parameters
    ----------
    url
        ``redis://host:port/db`` (``rediss://`` for TLS), or ``redis+cluster://host:port``
        for a Redis Cluster (any node; the others are discovered).
    partitions
        Number of partitions (streams); fixed for a keyspace.
    wait_replicas, wait_timeout
        After an append, ``WAIT wait_replicas wait_timeout`` (0 replicas: no WAIT).
    timeout
        Socket timeout of every command (seconds).

    Raises
    ------
    ConfigError
        If the keyspace was created with another partition count.
    StorageError
        If Redis cannot be reached.
    """

    def __init__(
        self,
        url: str,
        *,
        partitions: int = 16,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        client = connect(url, timeout)
        self.cluster = isinstance(client, RedisCluster)
        self.client: Any = client  # redis-py's annotations vary by version: used untyped
        self.partitions = partitions
        self.wait_replicas, self.wait_timeout = wait_replicas, wait_timeout
        self.cursors: list[StreamId] = [_ZERO] * partitions
        """Per partition, the id of the last entry this replica applied."""
        self.bases: list[StreamId | None] = [None] * partitions
        """Per partition, the cursor of this replica's last snapshot (``None``: none yet)."""
        self.applied = 0
        self._keys = [keys(p) for p in range(partitions)]
        self._partition = {k[0].encode(): p for p, k in enumerate(self._keys)}
        self._append_keys = [(log, ids, meta) for log, ids, _, meta in self._keys]
        self._append = self.client.register_script(redis_scripts.APPEND)
        self._erase = self.client.register_script(redis_scripts.ERASE)
        self._snapshot = self.client.register_script(redis_scripts.SNAPSHOT)
        self._read = self.client.register_script(redis_scripts.READ)
        self._trim_checked = 0.0  # time.monotonic() of read_new's last look at trim points
        with translated("connect"):
            self.client.set(PARTITIONS_KEY, partitions, nx=True)
            stored = int(self.client.get(PARTITIONS_KEY) or partitions)
        if stored != partitions:
            self.client.close()
            raise ConfigError(
                "redis_partitions",
                f"the Redis keyspace has {stored} partitions, this server is configured "
                f"with {partitions}: all replicas must use the same count",
            )

    def partition(self, user_id: str) -> int:
        """The partition of ``user_id``."""
        return partition_of(user_id, self.partitions)

    @property
    def last_seq(self) -> int:
        """The number of log entries this replica applied (a local, increasing number)."""
        return self.applied

    @property
    def count(self) -> int:
        """The number of log entries this replica applied (see :attr:`last_seq`)."""
        return self.applied

    def append_events(self, events: Sequence[Event], received_at: float) -> Appended:
        """Log ``events``: per event its stream id (``None`` if its id is already logged),
        and the partitions whose new entries directly follow :attr:`cursors`.

        One script per partition (pipelined on a single node); each partition's part is
        all-or-nothing. Raises :class:`StorageError` if Redis fails (parts of the batch
        may then be logged: the client resends, and those come back as duplicates).
        """
        parts: dict[int, list[int]] = defaultdict(list)
        for n, event in enumerate(events):
            parts[self.partition(event.user_id)].append(n)
        results: list[StreamId | None] = [None] * len(events)
        follows: set[int] = set()
        calls: list[tuple[Sequence[str], list[Any]]] = [
            (self._append_keys[p], self._append_args(p, events, ns, received_at))
            for p, ns in parts.items()
        ]
        with translated("append"):
            replies = self._run_scripts(calls)
            if self.wait_replicas:
                self._wait(list(parts))
        for (p, ns), (follow, sids) in zip(parts.items(), replies, strict=True):
            if follow:
                follows.add(p)
            for n, sid in zip(ns, sids.split(b","), strict=True):
                results[n] = parse_id(sid) if sid else None
        return Appended(results, frozenset(follows), parts)

    def _append_args(
        self, p: int, events: Sequence[Event], ns: list[int], received_at: float
    ) -> list[str]:
        return [fmt_id(self.cursors[p]), append_argument((events[n] for n in ns), received_at)]

    def _run_scripts(self, calls: list[tuple[Sequence[str], list[Any]]]) -> list[Any]:
        if self.cluster or len(calls) == 1:
            return [self._append(keys=k, args=a) for k, a in calls]
        pipe = self.client.pipeline(transaction=False)
        for k, a in calls:
            self._append(keys=k, args=a, client=pipe)
        return list(pipe.execute())

    def _wait(self, parts: list[int]) -> None:
        timeout_ms = int(self.wait_timeout * 1000)
        if self.cluster:
            nodes = {self.client.get_node_from_key(self._keys[p][0]).name for p in parts}
            targets = [n for n in self.client.get_primaries() if n.name in nodes]
            got = self.client.execute_command(
                "WAIT", self.wait_replicas, timeout_ms, target_nodes=targets
            )
            acks = min(got.values()) if isinstance(got, dict) else int(got)
        else:
            acks = int(self.client.execute_command("WAIT", self.wait_replicas, timeout_ms))
        if acks < self.wait_replicas:
            raise StorageError(
                f"append failed: only {acks} of {self.wait_replicas} Redis replicas confirmed "
                f"within {self.wait_timeout}s (WAIT)"
            )

    def read(
        self,
        p: int,
        after: StreamId,
        upto: StreamId | None = None,
        *,
        checked: bool = True,
        count: int = _CHUNK,
    ) -> Iterator[Entry]:
        """The entries of partition ``p`` after ``after`` (up to ``upto``), in stream order.

        ``checked``: each chunk of ``count`` entries is read together with the partition's
        trim point (:data:`~.redis_scripts.READ`); :class:`LogTrimmed` is raised when
        retention deleted entries after the position the chunk starts from. Unchecked, the
        entries still kept are read (what retention left).
        """
        log, meta = self._keys[p][0], self._keys[p][3]
        end = "+" if upto is None else fmt_id(upto)
        start = after
        while True:
            with translated("read"):
                if checked:
                    point, raw = self._read(keys=[log, meta], args=[fmt_id(start), end, count])
                    if point and parse_id(point) > start:
                        raise LogTrimmed(p, parse_id(point))
                    rows = [(sid, dict(zip(f[::2], f[1::2], strict=True))) for sid, f in raw]
                else:
                    rows = self.client.xrange(log, f"({fmt_id(start)}", end, count=count)
            for sid, fields in rows:
                start = parse_id(sid)
                yield start, decode_entry(fields)
            if len(rows) < count:
                return

    def read_new(self, block_ms: int) -> dict[int, Iterable[Entry]]:
        """New entries after :attr:`cursors` of every partition (XREAD; on a single node it
        blocks up to ``block_ms`` while there are none).

        A partition whose entries after the cursor were trimmed by retention (checked after
        the XREAD whenever it found entries, else once a second) yields entries whose
        iteration raises :class:`LogTrimmed` instead.
        """
        found: dict[int, Iterable[Entry]] = {}
        cursors = list(self.cursors)
        with translated("follow"):
            if self.cluster:
                replies: Any = []
                for p, (log, *_) in enumerate(self._keys):
                    replies += self.client.xread({log: fmt_id(cursors[p])}, count=_CHUNK)
            else:
                streams = {k[0]: fmt_id(c) for k, c in zip(self._keys, cursors, strict=True)}
                replies = self.client.xread(streams, count=_CHUNK, block=block_ms) or []
        if isinstance(replies, dict):  # RESP3
            replies = [[k, v[0]] for k, v in replies.items()]
        for name, rows in replies:
            key = name if isinstance(name, bytes) else name.encode()
            found[self._partition[key]] = [(parse_id(s), decode_entry(f)) for s, f in rows]
        now = time.monotonic()
        if found or now - self._trim_checked >= _TRIM_CHECK_SECONDS:
            self._trim_checked = now
            for p, point in enumerate(self.trim_points()):  # read after the XREAD: see docs
                if point is not None and point > cursors[p]:
                    found[p] = _gap(p, point)
        return found

    def trim_points(self) -> list[StreamId | None]:
        """Per partition, the id of the last entry retention deleted (``None``: none)."""
        with translated("follow"):
            if self.cluster:
                points = [self.client.hget(k[3], "trimmed") for k in self._keys]
            else:
                pipe = self.client.pipeline(transaction=False)
                for k in self._keys:
                    pipe.hget(k[3], "trimmed")
                points = pipe.execute()
        return [None if raw is None else parse_id(raw) for raw in points]

    def erase(self, user_id: str) -> tuple[StreamId, list[str]]:
        """Delete the user's entries, ids and snapshot state, append an erasure entry;
        return its stream id and the deleted event ids (atomic per partition)."""
        with translated("delete"):
            sid, deleted = self._erase(keys=self._keys[self.partition(user_id)], args=[user_id])
        return parse_id(sid), [d.decode() for d in deleted]

    def snapshot_meta(self, p: int) -> tuple[str, StreamId | None]:
        """``(bundle version, cursor)`` of partition ``p``'s snapshot written last (of any
        version); ``("", None)``: none."""
        with translated("recover"):
            cursor, version = self.client.hmget(self._keys[p][3], ["cursor", "version"])
        if cursor is None:
            return "", None
        return (version or b"").decode(), parse_id(cursor)

    def read_snapshot(self, p: int, version: str) -> tuple[StreamId | None, list[UserState]]:
        """``(cursor, user states)`` of partition ``p``'s snapshot of bundle ``version``,
        consistent (``vector`` left ``None``).

        The states are read in chunks (HSCAN) between two reads of that snapshot's cursor and
        write order; a snapshot of this version written meanwhile changes them, and the read is
        repeated. ``(None, [])``: no snapshot of this version.

        Raises
        ------
        StorageError
            If Redis fails, or snapshots kept changing during ten reads.
        """
        _, _, snap, meta = self._keys[p]
        fields = [f"cursor:{version}", f"written:{version}"]
        for _ in range(_ATTEMPTS):
            with translated("recover"):
                before = self.client.hmget(meta, fields)
                rows = list(self.client.hscan_iter(version_key(snap, version), count=_CHUNK))
                after = self.client.hmget(meta, fields)
            if before != after:
                continue
            if before[0] is None:
                return None, []
            states = [decode_blob(user.decode("utf-8"), blob) for user, blob in rows]
            return parse_id(before[0]), states
        raise StorageError(f"recover failed: the snapshot of partition {p} kept changing")

    def write_partition(
        self, p: int, states: Iterable[UserState], version: str, *, full: bool
    ) -> str:
        """Store ``states`` of partition ``p`` as its snapshot at :attr:`cursors` ``[p]``.

        Returns the script's answer: ``ok``, ``skip``, ``stale`` or ``full`` (an incremental
        write that must be redone with every user of the partition).
        """
        cursor, base = self.cursors[p], self.bases[p]
        if not full and base is None:
            return "full"
        args: list[Any] = [fmt_id(cursor), version, "full" if full else "inc"]
        args += (fmt_id(base or _ZERO), SNAPSHOT_VERSIONS)
        for state in states:
            args += (state.user_id, encode_blob(state))
        _, _, snap, meta = self._keys[p]
        with translated("snapshot"):
            answer = self._snapshot(keys=[version_key(snap, version), meta, snap], args=args)
        result = answer.decode() if isinstance(answer, bytes) else str(answer)
        if result in ("ok", "skip"):
            self.bases[p] = cursor
        return result

    # --- the EventStore interface -------------------------------------------------------

    def append(self, events: Sequence[Event], received_at: float) -> int:
        """Log ``events`` (duplicate ids are skipped, not raised); return :attr:`last_seq`."""
        self.append_events(events, received_at)
        return self.last_seq

    def event_ids(self) -> Iterator[str]:
        """Every logged event id (all partitions)."""
        for _, ids, _, _ in self._keys:
            with translated("read"):
                rows = list(self.client.hscan_iter(ids, count=_CHUNK))
            yield from (eid.decode() for eid, _ in rows)

    def events_after(self, seq: int) -> Iterator[tuple[int, Event]]:
        """The events this replica applied after position ``seq``, partition after
        partition, each in stream order (erasure entries are left out: the erased events
        are deleted from the log; so are the events retention deleted)."""
        first, after = unposition(seq)
        for p in range(first, self.partitions):
            start = after if p == first else _ZERO
            for sid, entry in self.read(p, start, self.cursors[p], checked=False):
                if not isinstance(entry, str):
                    yield position(p, sid), entry

    def read_chunk(self, cursor: Any, limit: int | None) -> tuple[list[Logged], Any]:
        """Up to ``limit`` events this replica applied after ``cursor``, and the cursor after
        them: ``(per partition the stream id read up to, the partition to start the next call
        from)``; ``None``: nothing read yet.

        Every partition is read from its own point up to :attr:`cursors`, so entries the
        follower applies between two calls, in partitions already read, are found by the next
        call (a single partition-major position would skip them). Each call starts at the
        partition after the one the previous call stopped in, so a partition that keeps
        receiving events cannot starve the others. ``received_at`` is the event's time, as the
        follower applies it. Like :meth:`events_after`, it reads what retention kept
        (unchecked: the trimmed head is not an error here).
        """
        done, first = ([_ZERO] * self.partitions, 0) if cursor is None else cursor
        done = list(done)
        rows: list[Logged] = []
        for k in range(self.partitions):
            p = (first + k) % self.partitions
            end = self.cursors[p]
            entries = self.read(p, done[p], end, checked=False) if done[p] < end else ()
            for sid, entry in entries:
                done[p] = sid
                if not isinstance(entry, str):  # erased events are deleted from the log
                    rows.append((entry, entry.timestamp))
                if limit is not None and len(rows) >= limit:
                    return rows, (done, (p + 1) % self.partitions)
            done[p] = max(done[p], end)  # read up to the cursor, even past deleted entries
        return rows, (done, first)

    def read_end(self) -> list[StreamId]:
        """Where :meth:`read_chunk` stands once it returned everything applied so far."""
        return list(self.cursors)

    def read_covers(self, cursor: Any, end: Any) -> bool:
        """Whether every partition of ``cursor`` is at or past ``end``'s."""
        return cursor is not None and all(c >= e for c, e in zip(cursor[0], end, strict=True))

    def snapshot_info(self) -> tuple[str, int]:
        """``(bundle version of partition 0's last snapshot, 0)``: snapshots are per partition
        and per version (:meth:`snapshot_meta`)."""
        return self.snapshot_meta(0)[0], 0

    def load_states(self) -> Iterator[UserState]:
        """The user states of every partition's snapshot written last."""
        for p in range(self.partitions):
            yield from self.read_snapshot(p, self.snapshot_meta(p)[0])[1]

    def write_snapshot(
        self, states: Iterable[UserState], seq: int, bundle_version: str, *, replace: bool = False
    ) -> None:
        """Snapshot ``states`` at :attr:`cursors` (``seq`` is ignored), partition by partition.

        Without ``replace``, ``states`` are the users changed since this replica's last
        snapshot; partitions whose stored snapshot that does not extend are collected in
        :attr:`need_full` for the caller to write in full.
        """
        parts: dict[int, list[UserState]] = {p: [] for p in range(self.partitions)}
        for state in states:
            parts[self.partition(state.user_id)].append(state)
        self.need_full = [
            p
            for p, group in parts.items()
            if self.write_partition(p, group, bundle_version, full=replace) == "full"
        ]

    need_full: list[int] = []
    """Partitions the last :meth:`write_snapshot` could not extend (see there)."""

    def delete_user(self, user_id: str) -> list[str]:
        """Erase ``user_id`` (:meth:`erase`); return the deleted event ids."""
        return self.erase(user_id)[1]

    def compact(self, through_seq: int, received_before: float) -> list[str]:
        """Not used: retention trims per partition
        (:func:`~coldbridge_server.streaming.redis_retention.trim`); no-op."""
        return []

    def probe(self) -> None:
        """Write and delete 64 KiB (raises while Redis is down or out of memory)."""
        with translated("probe"):
            self.client.set("cb:probe", b"\0" * 65536)
            self.client.delete("cb:probe")

    def close(self) -> None:
        """Close the client's connections."""
        with contextlib.suppress(Exception):
            self.client.close()
