"""The ingest pipeline: a bounded queue of batches and one writer thread.

::

    handler threads --submit(batch)--> Queue(ingest_queue_size) --> writer thread
       (block when full: backpressure)                               take 1..64 batches
                                                                     duplicates (+ validate
                                                                     if the bundle changed)
                                                                     store.append (durable)
                                                                     updater.apply_many (publish)
                                                                     snapshot if due
       <------------------ BatchResult (accepted, rejections) ------ resolve the batches

Only the writer touches the store, the learner and the published states, so learning needs no
locks and the log order *is* the apply order. Batches taken together share one transaction
(group commit); each one's result is released only after that commit and its events' states
are published, so an acknowledged event is both durable and visible. Start-up recovery
(:mod:`~coldbridge_server.streaming.replay`) loads the snapshot and replays the log after it
before the writer starts. Durable state is reached only through the
:class:`~coldbridge_server.streaming.store.EventStore` interface.

The queue and the thread are :class:`~coldbridge_server.streaming.writer.Writer`'s; it never
dies. A batch that fails inside the store in a group commit is retried alone (only it
fails); a storage fault (disk full, I/O error) fails the group with
``StorageFullError`` / ``StorageError`` and is tracked by
:class:`~coldbridge_server.streaming.faults.StorageHealth` (Events health, retries); a failed
snapshot is retried later while ingest goes on. An erasure (:meth:`Ingestor.delete_user`)
is queued like a batch, so it is ordered with the user's in-flight events. After each
snapshot, retention compacts the events it covers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence

from coldbridge_server.bundle import Bundle
from coldbridge_server.errors import ColdbridgeError, StorageError
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.streaming.replay import recover, snapshot
from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import Domain, Event, Reason, Rejection, admit
from coldbridge_server.streaming.work import BatchResult, Erasure, Pending, Work
from coldbridge_server.streaming.writer import Writer

__all__ = ["BatchResult", "Erasure", "Ingestor", "Pending"]

logger = logging.getLogger(__name__)


class Ingestor(Writer):
    """Owns the store, the updater and the writer thread.

    Parameters
    ----------
    open_store
        Opens the durable event log (called by :meth:`recover`, so that a server that is
        created but never started holds no files).
    updater
        Applies events to user states.
    queue_size
        Batches that may wait for the writer; :meth:`submit` blocks beyond that.
    snapshot_every
        Applied events between two snapshots.
    metrics
        Optional Prometheus metrics.
    retention_seconds, retention_events
        Event-log retention (0 = keep): after each snapshot, the events it covers that are
        older than ``retention_seconds`` or not among the newest ``retention_events`` are
        deleted (:mod:`~coldbridge_server.streaming.faults` documents the fault handling).
    retry_seconds
        Pause between two attempts to recover from a storage fault.
    """

    def __init__(
        self,
        open_store: Callable[[], EventStore],
        updater: OnlineUpdater,
        *,
        queue_size: int = 16,
        snapshot_every: int = 50_000,
        metrics: Metrics | None = None,
        retention_seconds: float = 0.0,
        retention_events: int = 0,
        retry_seconds: float = 1.0,
    ) -> None:
        super().__init__(queue_size=queue_size, retry_seconds=retry_seconds, metrics=metrics)
        self._open_store = open_store
        self._store: EventStore | None = None
        self.updater = updater
        self.bundle: Bundle = updater.bundle
        self.metrics = metrics
        self.snapshot_every = snapshot_every
        self.retention_seconds = retention_seconds
        self.retention_events = retention_events
        self._event_ids: set[str] = set()
        self._dirty: set[str] = set()
        self._since_snapshot = 0
        self._full_snapshot = False  # the next snapshot replaces all states (bundle change)
        self.erased_during_rebuild: set[str] | None = None
        """Set by a hot reload's state rebuild: users erased since it last looked."""

    @property
    def store(self) -> EventStore:
        """The event log (opened on first use)."""
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def forget(self, user_id: str) -> bool:
        """Erase ``user_id``'s online state (under :attr:`writer_lock`); return whether there
        was one. A state rebuild in progress is told (:attr:`erased_during_rebuild`)."""
        if self.erased_during_rebuild is not None:
            self.erased_during_rebuild.add(user_id)
        return self.updater.forget(user_id)

    def degraded_reason(self) -> str:
        """Why answers may miss acknowledged events now (``""``: they do not).

        With a store of its own every acknowledged event was applied here, so never.
        """
        return ""

    def start(self) -> None:
        """Recover the state (snapshot + log replay), then start the writer thread."""
        self.recover()
        self._start_writer()

    def recover(self) -> int:
        """Load the snapshot, replay the log after it; return the number of replayed events."""
        replayed = recover(self.store, self.updater, self._recovery_snapshot_failed)
        self._event_ids.update(self.store.event_ids())
        self._update_gauges()
        return replayed

    def _recovery_snapshot_failed(self, exc: Exception, replace: bool) -> None:
        """Start anyway (the state is recovered in memory); the writer retries the snapshot."""
        self.health.failed("snapshot", exc)
        self._full_snapshot = self._full_snapshot or replace
        self._dirty.update(state.user_id for state in self.updater.states)

    def submit(self, events: Sequence[Event], *, checked: Bundle | None = None) -> Pending:
        """Queue a batch; blocks while the queue is full (backpressure).

        ``checked``: the bundle ``events`` were already validated against (by the servicer);
        the writer validates them again only if another bundle is served by then.
        """
        return self._put(Pending(events=events, checked=checked))

    def ingest(self, events: Sequence[Event]) -> BatchResult:
        """Submit a batch and wait until it is durable and applied."""
        return self.submit(events).wait()

    def delete_user(self, user_id: str) -> Erasure:
        """Queue the erasure of ``user_id``, ordered with the batches queued around it.

        Once :meth:`Erasure.wait` returns, the user's events and state are deleted from the
        log, the snapshot and memory; their later events start a new user.
        """
        return self._put(Erasure(user_id=user_id))

    def close(self) -> None:
        """Stop the writer after the queued batches, write a final snapshot, close the store."""
        if self._stop_writer():
            with self.writer_lock:  # a hot reload checks `running` under it
                self._snapshot()
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                logger.exception("closing the event log failed")
            self._store = None

    def replace_updater(self, updater: OnlineUpdater, *, rebuilt: bool) -> None:
        """Apply the next batches with ``updater`` (a reloaded bundle's); hold ``writer_lock``.

        ``updater`` must already hold every logged event. The stored snapshot is rewritten
        for its bundle: all users when the states were ``rebuilt``, else the changed ones.
        """
        self.updater, self.bundle = updater, updater.bundle
        if rebuilt:
            self.store.write_snapshot(
                updater.states, self.store.last_seq, self.bundle.version, replace=True
            )
            self._dirty.clear()
            self._since_snapshot = 0
        else:
            self._snapshot()
        self._update_gauges()

    def _handle(self, work: list[Work]) -> None:
        """Batches in a row share one group commit; an erasure is applied between them."""
        run: list[Pending] = []
        for item in work:
            if isinstance(item, Pending):
                run.append(item)
                continue
            if run:
                self._process(run)
                run = []
            if isinstance(item, Erasure):
                self._erase(item)
        if run:
            self._process(run)

    def _retry(self) -> None:
        """During a storage fault: retry the snapshot, probe the store for the rest."""
        if "snapshot" in self.health.faults:
            self._snapshot()
        others = [op for op in self.health.faults if op != "snapshot"]
        if others:
            try:
                self.store.probe()
            except Exception as exc:
                self.health.failed("probe", exc)
            else:
                self.health.succeeded(*others)

    def _process(self, batches: list[Pending]) -> None:
        start, now = time.perf_counter(), time.time()
        accepted, rejections = self._validate(batches)
        events = [e for batch in accepted for e in batch]
        last = self.store.last_seq
        if events:
            try:
                last = self.store.append(events, now)
            except Exception as exc:  # not logged: not applied, the client may resend
                self._event_ids.difference_update(e.event_id for e in events)
                return self._append_failed(batches, exc)
            self.health.succeeded("append", "probe")
        try:
            updates = self.updater.apply_many(events, now)
        except Exception as exc:  # logged: a restart replays it; never acknowledged here
            self.health.fatal("apply", exc)
            return self._fail(batches, ColdbridgeError(f"ingest failed: {exc}"))
        self._dirty.update(event.user_id for event in events)
        self._since_snapshot += len(events)
        if self._since_snapshot >= self.snapshot_every and "snapshot" not in self.health.faults:
            self._snapshot()
        self._resolve(batches, accepted, rejections, last)
        if self.metrics is not None:
            self._observe_applied(events, updates)
            self.metrics.event_apply_seconds.observe(time.perf_counter() - start)
            self._update_gauges()

    def _append_failed(self, batches: list[Pending], exc: Exception) -> None:
        if isinstance(exc, OSError):  # a store without its own translation
            error: Exception = StorageError(f"append failed: I/O error ({exc})")
            error.__cause__ = exc
            exc = error
        if isinstance(exc, StorageError):  # every batch of the group, alike
            self.health.failed("append", exc)
            return self._fail(batches, exc)
        if len(batches) > 1:  # one batch is at fault: each alone, so only it fails
            logger.warning(
                "group commit of %d batches failed (%s): retrying each", len(batches), exc
            )
            for pending in batches:
                self._process([pending])
            return None
        logger.error("a batch failed in the event log: %s", exc, exc_info=exc)
        return self._fail(batches, ColdbridgeError(f"ingest failed: {exc}"))

    def _fail(self, batches: list[Pending], error: Exception) -> None:
        for pending in batches:
            pending.fail(error)

    def _erase(self, erasure: Erasure) -> None:
        uid = erasure.user_id
        try:
            ids = self.store.delete_user(uid)
        except Exception as exc:
            if isinstance(exc, (StorageError, OSError)):
                self.health.failed("delete", exc)
            else:
                logger.error("deleting user %r failed: %s", uid, exc, exc_info=exc)
            error = exc if isinstance(exc, ColdbridgeError) else StorageError(f"delete: {exc}")
            return erasure.fail(error)
        self.health.succeeded("delete")
        self._event_ids.difference_update(ids)
        self._dirty.discard(uid)
        erasure.had_state = self.forget(uid)
        erasure.result = len(ids)
        logger.info("user erased: %d events deleted", len(ids))
        if self.metrics is not None:
            self.metrics.events_erased.labels("user").inc(len(ids))
            self._update_gauges()
        erasure.done.set()
        return None

    def _validate(self, batches: list[Pending]) -> tuple[list[list[Event]], list[list[Rejection]]]:
        """Split each batch into accepted events and rejections; claim the accepted ids."""
        bundle, ids = self.bundle, self._event_ids
        admitted = [admit(p.events, bundle, ids, valid=p.checked is bundle) for p in batches]
        return [ok for ok, _ in admitted], [bad for _, bad in admitted]

    def _resolve(
        self,
        batches: list[Pending],
        accepted: list[list[Event]],
        rejections: list[list[Rejection]],
        last: int,
    ) -> None:
        position = last - sum(len(a) for a in accepted)
        for pending, ok, bad in zip(batches, accepted, rejections, strict=True):
            for rejection in bad:
                self._observe_rejected(pending.events[rejection.index], rejection.reason)
            position += len(ok)
            pending.result = BatchResult(len(ok), tuple(bad), position if ok else 0)
            pending.done.set()

    def _snapshot(self) -> None:
        """Snapshot the changed users, then compact; a failure is retried later."""
        covered, full = self.store.last_seq, self._full_snapshot
        try:
            snapshot(self.store, self.updater, None if full else self._dirty, replace=full)
        except Exception as exc:  # the log has everything: ingest goes on
            self.health.failed("snapshot", exc)
            return
        finally:
            self._since_snapshot = 0
        self._dirty.clear()
        self._full_snapshot = False
        self.health.succeeded("snapshot")
        self._compact(covered)

    def _compact(self, covered: int) -> None:
        """Retention: delete the events the snapshot covers that are past the limits."""
        ids: list[str] = []
        try:
            if self.retention_events:
                keep_from = self.store.last_seq - self.retention_events
                ids += self.store.compact(min(covered, keep_from), math.inf)
            if self.retention_seconds:
                ids += self.store.compact(covered, time.time() - self.retention_seconds)
        except Exception as exc:
            self.health.failed("compact", exc)
        self._event_ids.difference_update(ids)  # the idempotency window ends with retention
        if ids and self.metrics is not None:
            self.metrics.events_erased.labels("retention").inc(len(ids))
            self._update_gauges()

    def _observe_applied(self, events: Sequence[Event], updates: Sequence[int]) -> None:
        if self.metrics is None:
            return
        source = sum(1 for event in events if event.domain is Domain.SOURCE)
        for domain, n in ((Domain.SOURCE, source), (Domain.TARGET, len(events) - source)):
            if n:
                self.metrics.count_events("applied", domain.value, n)
        for value, n in Counter(updates).items():  # equal observations in one step each
            self.metrics.online_updates_per_user.observe(value, n)

    def _observe_rejected(self, event: Event, reason: Reason) -> None:
        if self.metrics is not None:
            domain = event.domain.value if event.domain is not None else "unknown"
            self.metrics.count_rejected(domain, reason.value)

    def _update_gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.event_log_events.set(self.store.count)
            for stage, count in self.updater.stages.items():
                self.metrics.set_users(stage, count)
