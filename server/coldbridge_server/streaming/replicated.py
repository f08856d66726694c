"""The ingest writer over Redis: append to the shared log, then follow it.

::

    handler threads --submit--> Queue --> writer thread          follower thread
                                          validate                XREAD the partitions
                                          append (Lua, per        after the cursors
                                            partition) [+ WAIT]   (blocks while idle)
                                          catch up: apply the     apply under writer_lock
                                            streams up to the
                                            batch's entries
                                          ack

Every replica applies every partition's stream in stream order through the same
deterministic :class:`~coldbridge_server.streaming.update.OnlineUpdater`; a user's state
depends only on their own events, and all of a user's events are in one partition, so each
replica's states equal the serial replay of the log. The writer acknowledges a batch only
after its events are durable in Redis (and WAITed for) *and* applied here, by catching up
the touched partitions up to the batch's last entries (which applies the other replicas'
earlier entries first). Other replicas apply it within their follow latency.

Both threads apply under :attr:`Ingestor.writer_lock`, so hot reload pauses both. A Redis
failure in either turns the Events health ``NOT_SERVING``
(:class:`~coldbridge_server.streaming.faults.StorageHealth`); both retry, and health returns
by itself. Recommend keeps serving the states in memory meanwhile;
``coldbridge_replica_lag_seconds`` tells how old the replica's view of the log may be.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from coldbridge_server.errors import ColdbridgeError, StorageError
from coldbridge_server.streaming.ingest import Ingestor
from coldbridge_server.streaming.redis_codec import StreamId
from coldbridge_server.streaming.redis_fleet import FleetBeacon
from coldbridge_server.streaming.redis_store import Entry, RedisEventStore
from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import Event, Reason, Rejection, validate
from coldbridge_server.streaming.work import BatchResult, Erasure, Pending

__all__ = ["ReplicatedIngestor"]

logger = logging.getLogger(__name__)
_DUPLICATE = (Reason.DUPLICATE_EVENT, "event_id was already applied")


class ReplicatedIngestor(Ingestor):
    """An :class:`Ingestor` whose store is the shared Redis log (see the module docs).

    Parameters
    ----------
    open_store
        Opens the :class:`RedisEventStore`.
    follow_block_ms
        Longest XREAD block of the follower (single-node Redis; it returns at once when an
        entry arrives), and its pause between polls of a Redis Cluster.
    **kwargs
        As :class:`Ingestor` (retention must be off).
    """

    def __init__(
        self,
        open_store: Callable[[], EventStore],
        updater: OnlineUpdater,
        *,
        follow_block_ms: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(open_store, updater, **kwargs)
        self.follow_block_ms = follow_block_ms
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
        store, bundle, replayed = self.redis, self.bundle, 0
        for p in range(store.partitions):
            _, cursor = store.snapshot_meta(p, bundle.version)
            if cursor is not None:  # this bundle's snapshot (each version keeps its own)
                for state in store.partition_states(p, bundle.version):
                    self.updater.restore(state)
                store.cursors[p] = store.bases[p] = cursor
            else:  # no snapshot, or another bundle's: the whole stream, then a full snapshot
                self._full_snapshot = True
            replayed += self._apply_entries(p, store.read(p, store.cursors[p]), evaluate=False)
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
                problem = validate(event, self.bundle)
                if problem is None:
                    ok.append((index, event))
                else:
                    bad.append(Rejection(index, event.event_id, *problem))
            accepted.append(ok)
            rejections.append(bad)
        events = [e for ok in accepted for _, e in ok]
        ids: list[StreamId | None] = []
        if events:
            try:
                ids = self.redis.append_events(events, now)
            except Exception as exc:  # not acknowledged: the client resends
                return self._append_failed(batches, exc)
            self.health.succeeded("append", "probe")
        try:
            self._catch_up(events, ids)
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

    def _catch_up(self, events: Sequence[Event], ids: Sequence[StreamId | None]) -> None:
        """Apply every partition's stream up to the last of ``ids`` (of ``events``) in it."""
        store = self.redis
        upto: dict[int, StreamId] = {}
        for event, sid in zip(events, ids, strict=True):
            p = store.partition(event.user_id)
            if sid is not None and sid > upto.get(p, (0, 0)):
                upto[p] = sid
        for p, sid in sorted(upto.items()):
            if sid > store.cursors[p]:
                self._apply_entries(p, store.read(p, store.cursors[p], sid), evaluate=True)

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

    def _apply_entries(self, p: int, entries: Iterable[Entry], *, evaluate: bool) -> int:
        """Apply the entries of partition ``p`` after its cursor, in order; return how many."""
        store, applied = self.redis, 0
        run: list[Event] = []
        for sid, entry in entries:
            if sid <= store.cursors[p]:
                continue  # already applied (the writer and the follower race to read)
            if isinstance(entry, str):  # an erasure: the events before it first
                applied += self._apply_run(run, evaluate)
                run = []
                self._forgotten[entry] = self.updater.forget(entry)
                self._dirty.discard(entry)
            elif validate(entry, self.bundle) is None:  # items of another bundle: skipped
                run.append(entry)
            store.cursors[p] = sid
            store.applied += 1
        return applied + self._apply_run(run, evaluate)

    def _apply_run(self, events: list[Event], evaluate: bool) -> int:
        if not events:
            return 0
        updates = self.updater.apply_many(events, events[-1].timestamp, evaluate=evaluate)
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

    def _compact(self, covered: int) -> None:
        """Retention is not supported with Redis yet (the settings refuse it)."""
