"""The ingest writer over Redis: append to the shared log, then follow it.

::

    handler threads --submit--> Queue --> writer thread          follower thread
                                          validate                XREAD the partitions
                                          append (Lua, per        after the cursors
                                            partition) [+ WAIT]   (blocks while idle)
                                          apply: the batch from   apply under writer_lock
                                            memory, after the
                                            others' entries before
                                            it (read) if any
                                          ack

Every replica applies every partition's stream in stream order through the same
deterministic :class:`~coldbridge_server.streaming.update.OnlineUpdater`; a user's state
depends only on their own events, and all of a user's events are in one partition, so each
replica's states equal the serial replay of the log. The writer acknowledges a batch only
after its events are durable in Redis (and WAITed for) *and* applied here, after the other
replicas' entries that precede them in their partitions (the append script tells whether
there are any: then that gap is read from Redis first). Other replicas apply it within
their follow latency.

Both threads apply under :attr:`Ingestor.writer_lock`, so hot reload pauses both. A Redis
failure in either turns the Events health ``NOT_SERVING``
(:class:`~coldbridge_server.streaming.faults.StorageHealth`); both retry, and health returns
by itself. Recommend keeps serving the states in memory meanwhile;
``coldbridge_replica_lag_seconds`` tells how old the replica's view of the log may be.

Retention (:mod:`~coldbridge_server.streaming.redis_retention`) trims the streams after each
snapshot this replica writes. A replica that finds entries after its cursor trimmed (it fell
behind, or was paused) re-bootstraps that partition from the snapshot and the stream after it,
exactly as at start-up (:meth:`ReplicatedIngestor.bootstrap_partition`), and counts it
(``coldbridge_replica_rebootstraps_total``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any

from coldbridge_server.errors import ColdbridgeError, StorageError
from coldbridge_server.streaming.ingest import Ingestor
from coldbridge_server.streaming.redis_codec import StreamId
from coldbridge_server.streaming.redis_fleet import FleetBeacon
from coldbridge_server.streaming.redis_retention import trim
from coldbridge_server.streaming.redis_store import Appended, Entry, LogTrimmed, RedisEventStore
from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import Event, Reason, Rejection, validate
from coldbridge_server.streaming.work import BatchResult, Erasure, Pending

__all__ = ["ReplicatedIngestor"]

logger = logging.getLogger(__name__)
_DUPLICATE = (Reason.DUPLICATE_EVENT, "event_id was already applied")
_ATTEMPTS = 10


def _before(sid: StreamId) -> StreamId:
    """The greatest stream id below ``sid`` (an inclusive end that stops before ``sid``)."""
    ms, seq = sid
    return (ms, seq - 1) if seq else (ms - 1, (1 << 64) - 1)


class ReplicatedIngestor(Ingestor):
    """An :class:`Ingestor` whose store is the shared Redis log (see the module docs).

    Parameters
    ----------
    open_store
        Opens the :class:`RedisEventStore`.
    follow_block_ms
        Longest XREAD block of the follower (single-node Redis; it returns at once when an
        entry arrives), and its pause between polls of a Redis Cluster.
    on_rebootstrap
        Called each time a partition is re-bootstrapped because retention trimmed entries this
        replica had not applied yet (the metric).
    **kwargs
        As :class:`Ingestor`; ``retention_events`` counts per partition.
    """

    def __init__(
        self,
        open_store: Callable[[], EventStore],
        updater: OnlineUpdater,
        *,
        follow_block_ms: int = 100,
        on_rebootstrap: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(open_store, updater, **kwargs)
        self.follow_block_ms = follow_block_ms
        self.on_rebootstrap = on_rebootstrap
        self._follower: threading.Thread | None = None
        self._following = threading.Event()
        self._forgotten: dict[str, bool] = {}
        self.last_caught_up = time.time()
        """When the follower last saw the end of the log (for the lag gauge)."""
        self.beacon: FleetBeacon | None = None
        """Announces the served bundle version in Redis while started (see ``redis_fleet``)."""

    @property
    def redis(self) -> RedisEventStore:
        """The store, typed."""
        store = self.store
        assert isinstance(store, RedisEventStore)
        return store

    def degraded_reason(self) -> str:
        """``event_log_unavailable`` while Redis fails (other replicas' acks go unseen)."""
        return "" if self.health.serving else "event_log_unavailable"

    def start(self) -> None:
        """Recover, start the writer, then the follower."""
        super().start()
        self._following.set()
        self._follower = threading.Thread(
            target=self._follow, name="coldbridge-follow", daemon=True
        )
        self._follower.start()
        if self.beacon is not None:
            self.beacon.start()

    def close(self) -> None:
        """Stop the follower and the beacon, then as :meth:`Ingestor.close`."""
        if self.beacon is not None:
            self.beacon.close()
        self._following.clear()
        if self._follower is not None:
            self._follower.join()
            self._follower = None
        super().close()

    def recover(self) -> int:
        """Per partition: load this bundle's snapshot (if any), apply the stream after it."""
        store, replayed = self.redis, 0
        for p in range(store.partitions):
            replayed += self.bootstrap_partition(p, reset=False)
        self._since_snapshot = self.snapshot_every if replayed else 0
        self.last_caught_up = time.time()
        self._update_gauges()
        logger.info(
            "online state from Redis: %d users, %d log entries replayed after the snapshots",
            len(self.updater.states),
            replayed,
        )
        return replayed

    # --- the writer -----------------------------------------------------------------------

    def _process(self, batches: list[Pending]) -> None:
        start, now = time.perf_counter(), time.time()
        accepted: list[list[tuple[int, Event]]] = []
        rejections: list[list[Rejection]] = []
        for pending in batches:
            ok: list[tuple[int, Event]] = []
            bad: list[Rejection] = []
            for index, event in enumerate(pending.events):
                problem = None if pending.checked is self.bundle else validate(event, self.bundle)
                if problem is None:
                    ok.append((index, event))
                else:
                    bad.append(Rejection(index, event.event_id, *problem))
            accepted.append(ok)
            rejections.append(bad)
        events = [e for ok in accepted for _, e in ok]
        logged = Appended([], frozenset(), {})
        if events:
            try:
                logged = self.redis.append_events(events, now)
            except Exception as exc:  # not acknowledged: the client resends
                return self._append_failed(batches, exc)
            self.health.succeeded("append", "probe")
        ids = logged.ids
        try:
            self._catch_up(events, logged, now)
        except StorageError as exc:  # logged, applied later by the follower: not acked now
            self.health.failed("follow", exc)
            return self._fail(batches, exc)
        except Exception as exc:
            self.health.fatal("apply", exc)
            return self._fail(batches, ColdbridgeError(f"ingest failed: {exc}"))
        self._resolve_logged(batches, accepted, rejections, ids)
        if self._since_snapshot >= self.snapshot_every and "snapshot" not in self.health.faults:
            self._snapshot()
        if self.metrics is not None:
            self.metrics.event_apply_seconds.observe(time.perf_counter() - start)
            self._update_gauges()
        return None

    def _append_failed(self, batches: list[Pending], exc: Exception) -> None:
        if isinstance(exc, StorageError):
            self.health.failed("append", exc)
            return self._fail(batches, exc)
        logger.error("a batch failed in the Redis log: %s", exc, exc_info=exc)
        return self._fail(batches, ColdbridgeError(f"ingest failed: {exc}"))

    def _catch_up(self, events: Sequence[Event], logged: Appended, received_at: float) -> None:
        """Apply the batch's logged ``events`` and, first, what precedes them in each partition.

        A partition whose new entries directly follow this replica's cursor (the append
        script saw it as the stream's last entry) gets its events from memory, as logged;
        otherwise the gap between the cursor and its first new entry (other replicas'
        entries) is read from Redis and applied first. The partitions that follow and whose
        run would be applied at the receive time (its last event's time) are one run: the
        same, as no user is in two partitions.
        """
        store, ids, together = self.redis, logged.ids, []
        for p, ns in sorted(logged.parts.items()):
            own = [(sid, events[n]) for n in ns if (sid := ids[n]) is not None]
            if not own:
                continue  # only duplicates
            follows = p in logged.follows
            if follows and (own[-1][1].timestamp or received_at) == received_at:
                together.append((p, own))
                continue
            # as logged (encode_entry): a missing event time is the receive time
            as_logged = [
                (s, e if e.timestamp else e._replace(timestamp=received_at)) for s, e in own
            ]
            if follows:
                self._apply_entries(p, as_logged, evaluate=True, valid=True)
            else:
                gap = store.read(p, store.cursors[p], _before(own[0][0]))
                self._apply_entries(p, chain(gap, as_logged), evaluate=True)
        run = [event for _, own in together for _, event in own]
        for p, own in together:
            store.cursors[p] = own[-1][0]
        store.applied += len(run)
        self._apply_run(run, evaluate=True, now=received_at)

    def _resolve_logged(
        self,
        batches: list[Pending],
        accepted: list[list[tuple[int, Event]]],
        rejections: list[list[Rejection]],
        ids: Sequence[StreamId | None],
    ) -> None:
        n = 0
        for pending, ok, bad in zip(batches, accepted, rejections, strict=True):
            logged = 0
            for index, event in ok:
                if ids[n] is None:
                    bad.append(Rejection(index, event.event_id, *_DUPLICATE))
                else:
                    logged += 1
                n += 1
            bad.sort(key=lambda r: r.index)
            for rejection in bad:
                self._observe_rejected(pending.events[rejection.index], rejection.reason)
            pending.result = BatchResult(logged, tuple(bad), self.redis.applied if logged else 0)
            pending.done.set()

    # --- applying the log -------------------------------------------------------------------

    def bootstrap_partition(self, p: int, *, reset: bool = True) -> int:
        """Load partition ``p`` from its snapshot (if of this bundle) and the stream after it.

        ``reset``: forget the partition's users in memory first. Another bundle's snapshot
        (or none): the stream that retention kept, then a full snapshot. Retried when the
        stream is trimmed past the snapshot meanwhile (a newer snapshot is then stored).
        Returns the number of events applied after the snapshot.
        """
        store = self.redis
        for _ in range(_ATTEMPTS):
            cursor, states = store.read_snapshot(p, self.bundle.version)
            if reset:
                for uid in [s.user_id for s in self.updater.states]:
                    if store.partition(uid) == p:
                        self.updater.forget(uid)
                        self._dirty.discard(uid)
            if cursor is not None:  # this bundle's snapshot (each version keeps its own)
                for state in states:
                    self.updater.restore(state)
                store.cursors[p] = store.bases[p] = cursor
            else:  # no snapshot of this bundle: what the log kept, then a full snapshot
                self._full_snapshot = True
                store.cursors[p], store.bases[p] = store.trim_points()[p] or (0, 0), None
            try:
                return self._apply_log(p, store.read(p, store.cursors[p]), evaluate=False)
            except LogTrimmed:
                reset = True
        raise StorageError(f"partition {p} was trimmed faster than it could be loaded")

    def _apply_entries(
        self, p: int, entries: Iterable[Entry], *, evaluate: bool, valid: bool = False
    ) -> int:
        """Apply the entries of partition ``p`` after its cursor, in order; return how many.

        ``valid``: the events were validated against the served bundle already. If some
        entries were deleted by retention before this replica applied them, re-bootstrap the
        partition instead (:meth:`bootstrap_partition`).
        """
        try:
            return self._apply_log(p, entries, evaluate=evaluate, valid=valid)
        except LogTrimmed as gap:
            logger.warning(
                "%s after this replica's cursor: re-bootstrapping the partition from its snapshot",
                gap,
            )
            if self.on_rebootstrap is not None:
                self.on_rebootstrap()
            return self.bootstrap_partition(p)

    def _apply_log(
        self, p: int, entries: Iterable[Entry], *, evaluate: bool, valid: bool = False
    ) -> int:
        store, applied = self.redis, 0
        run: list[Event] = []
        for sid, entry in entries:
            if sid <= store.cursors[p]:
                continue  # already applied (the writer and the follower race to read)
            if isinstance(entry, str):  # an erasure: the events before it first
                applied += self._apply_run(run, evaluate)
                run = []
                self._forgotten[entry] = self.forget(entry)
                self._dirty.discard(entry)
            elif valid or validate(entry, self.bundle) is None:  # another bundle's: skipped
                run.append(entry)
            store.cursors[p] = sid
            store.applied += 1
        return applied + self._apply_run(run, evaluate)

    def _apply_run(self, events: list[Event], evaluate: bool, now: float | None = None) -> int:
        """Apply ``events`` at ``now`` (default: the last event's logged time)."""
        if not events:
            return 0
        now = events[-1].timestamp if now is None else now
        updates = self.updater.apply_many(events, now, evaluate=evaluate)
        self._dirty.update(event.user_id for event in events)
        self._since_snapshot += len(events)
        if self.metrics is not None:
            self._observe_applied(events, updates)
        return len(events)

    # --- the follower -----------------------------------------------------------------------

    def _follow(self) -> None:
        """Apply the other replicas' entries as they arrive; never dies on an exception."""
        while self._following.is_set():
            if self.health.broken is not None:
                time.sleep(self.health.retry_seconds)
                continue
            try:
                found = self.redis.read_new(self.follow_block_ms)
            except Exception as exc:
                self.health.failed("follow", exc)
                time.sleep(self.health.retry_seconds)
                continue
            self.health.succeeded("follow")
            if not found:
                self.last_caught_up = time.time()
                if self.redis.cluster:
                    time.sleep(self.follow_block_ms / 1000)
                continue
            with self.writer_lock:
                if not self._following.is_set():
                    return
                try:
                    for p, entries in found.items():
                        self._apply_entries(p, entries, evaluate=False)
                except StorageError as exc:  # a re-bootstrap could not read: found again later
                    self.health.failed("follow", exc)
                    continue
                except Exception as exc:
                    self.health.fatal("apply", exc)
                    continue
                if self._since_snapshot >= self.snapshot_every:
                    self._snapshot()
            self._update_gauges()

    # --- erasure and snapshots --------------------------------------------------------------

    def _erase(self, erasure: Erasure) -> None:
        uid = erasure.user_id
        store = self.redis
        try:
            sid, ids = store.erase(uid)
            p = store.partition(uid)
            self._forgotten.pop(uid, None)
            self._apply_entries(p, store.read(p, store.cursors[p], sid), evaluate=True)
        except Exception as exc:
            if isinstance(exc, StorageError):
                self.health.failed("delete", exc)
            else:
                logger.error("deleting user %r failed: %s", uid, exc, exc_info=exc)
            error = exc if isinstance(exc, ColdbridgeError) else StorageError(f"delete: {exc}")
            return erasure.fail(error)
        self.health.succeeded("delete")
        erasure.had_state = self._forgotten.pop(uid, False)
        erasure.result = len(ids)
        logger.info("user erased: %d events deleted", len(ids))
        if self.metrics is not None:
            self.metrics.events_erased.labels("user").inc(len(ids))
            self._update_gauges()
        erasure.done.set()
        return None

    def _snapshot(self) -> None:
        """Snapshot the changed users per partition; partitions whose stored snapshot the
        change set does not extend are written in full."""
        store, full = self.redis, self._full_snapshot
        states = self.updater.states
        try:
            if full:
                store.write_snapshot(states, 0, self.bundle.version, replace=True)
            else:
                changed = [s for uid in self._dirty if (s := states.get(uid)) is not None]
                store.write_snapshot(changed, 0, self.bundle.version)
                for p in store.need_full:
                    group = [s for s in states if store.partition(s.user_id) == p]
                    store.write_partition(p, group, self.bundle.version, full=True)
        except Exception as exc:  # the log has everything: ingest goes on
            self.health.failed("snapshot", exc)
            return
        finally:
            self._since_snapshot = 0
        self._dirty.clear()
        self._full_snapshot = False
        self.health.succeeded("snapshot")
        self._compact(0)

    def _compact(self, covered: int) -> None:
        """Retention: trim every partition's stream below its snapshot (``covered`` unused)."""
        if not (self.retention_events or self.retention_seconds):
            return
        store, deleted = self.redis, 0
        max_age_ms = max(1, round(self.retention_seconds * 1000)) if self.retention_seconds else 0
        try:
            for p in range(store.partitions):
                deleted += trim(
                    store, p, self.bundle.version, keep=self.retention_events, max_age_ms=max_age_ms
                )
        except Exception as exc:
            self.health.failed("compact", exc)
        else:
            self.health.succeeded("compact")
        if deleted and self.metrics is not None:
            self.metrics.events_erased.labels("retention").inc(deleted)
