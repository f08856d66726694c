"""The ingest pipeline: a bounded queue of batches and one writer thread.

::

    handler threads --submit(batch)--> Queue(ingest_queue_size) --> writer thread
       (block when full: backpressure)                               take 1..64 batches
                                                                     validate -> rejections
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
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coldbridge_server.bundle import Bundle
from coldbridge_server.errors import ColdbridgeError, NotReadyError
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.streaming.replay import recover, snapshot
from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import (
    Domain,
    Event,
    Reason,
    Rejection,
    is_plain_target,
    validate,
)

__all__ = ["BatchResult", "Ingestor", "Pending"]

logger = logging.getLogger(__name__)
_MAX_GROUP = 64


@dataclass(frozen=True)
class BatchResult:
    """Outcome of one batch: accepted count, rejections, log position of its last event."""

    accepted: int
    rejections: tuple[Rejection, ...]
    log_position: int


@dataclass(eq=False)
class Pending:
    """A submitted batch; :meth:`wait` returns its result once durable and applied."""

    events: Sequence[Event]
    done: threading.Event = field(default_factory=threading.Event)
    result: BatchResult | None = None
    error: BaseException | None = None

    def wait(self) -> BatchResult:
        """Block until the writer processed the batch; re-raise its error if it failed."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Ingestor:
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
    """

    def __init__(
        self,
        open_store: Callable[[], EventStore],
        updater: OnlineUpdater,
        *,
        queue_size: int = 16,
        snapshot_every: int = 50_000,
        metrics: Metrics | None = None,
    ) -> None:
        self._open_store = open_store
        self._store: EventStore | None = None
        self.updater = updater
        self.bundle: Bundle = updater.bundle
        self.metrics = metrics
        self.snapshot_every = snapshot_every
        self._queue: queue.Queue[Pending | None] = queue.Queue(maxsize=queue_size)
        self._event_ids: set[str] = set()
        self._dirty: set[str] = set()
        self._since_snapshot = 0
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self.writer_lock = threading.Lock()
        """Held by the writer while it processes a group; holding it pauses the writer (and
        grants the store to the holder: hot reload reads the log and swaps under it)."""

    @property
    def store(self) -> EventStore:
        """The event log (opened on first use)."""
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def start(self) -> None:
        """Recover the state (snapshot + log replay), then start the writer thread."""
        self.recover()
        self._thread = threading.Thread(target=self._run, name="coldbridge-ingest", daemon=True)
        self._running.set()
        self._thread.start()

    def recover(self) -> int:
        """Load the snapshot, replay the log after it; return the number of replayed events."""
        replayed = recover(self.store, self.updater)
        self._event_ids.update(self.store.event_ids())
        self._update_gauges()
        return replayed

    def submit(self, events: Sequence[Event]) -> Pending:
        """Queue a batch; blocks while the queue is full (backpressure)."""
        if not self._running.is_set():
            raise NotReadyError("the event ingest is not running")
        pending = Pending(events)
        self._queue.put(pending)
        return pending

    def ingest(self, events: Sequence[Event]) -> BatchResult:
        """Submit a batch and wait until it is durable and applied."""
        return self.submit(events).wait()

    def close(self) -> None:
        """Stop the writer after the queued batches, write a final snapshot, close the store."""
        if self._thread is not None and self._running.is_set():
            self._running.clear()
            self._queue.put(None)
            self._thread.join()
            with self.writer_lock:  # a hot reload checks `running` under it
                self._snapshot()
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def running(self) -> bool:
        """Whether the writer thread accepts batches (after recovery, before close)."""
        return self._running.is_set()

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

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            group = [first]
            while first is not None and len(group) < _MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batches = [p for p in group if p is not None]
            if batches:
                with self.writer_lock:
                    self._process(batches)
            if None in group:
                return

    def _process(self, batches: list[Pending]) -> None:
        start, now = time.perf_counter(), time.time()
        accepted, rejections = self._validate(batches)
        events = [e for batch in accepted for e in batch]
        try:
            last = self.store.append(events, now) if events else self.store.last_seq
        except Exception as exc:  # not logged: not applied, the client may resend
            self._event_ids.difference_update(e.event_id for e in events)
            return self._fail(batches, exc)
        try:
            updates = self.updater.apply_many(events, now)
        except Exception as exc:  # logged: a restart replays it; never acknowledged here
            return self._fail(batches, exc)
        self._dirty.update(event.user_id for event in events)
        self._since_snapshot += len(events)
        if self._since_snapshot >= self.snapshot_every:
            self._snapshot()
        self._resolve(batches, accepted, rejections, last)
        if self.metrics is not None:
            self._observe_applied(events, updates)
            self.metrics.event_apply_seconds.observe(time.perf_counter() - start)
            self._update_gauges()

    def _fail(self, batches: list[Pending], exc: Exception) -> None:
        logger.error("ingest of %d batches failed: %s", len(batches), exc, exc_info=exc)
        error = ColdbridgeError(f"ingest failed: {exc}")
        error.__cause__ = exc
        for pending in batches:
            pending.error = error
            pending.done.set()

    def _validate(self, batches: list[Pending]) -> tuple[list[list[Event]], list[list[Rejection]]]:
        accepted: list[list[Event]] = []
        rejected: list[list[Rejection]] = []
        for pending in batches:
            ok: list[Event] = []
            bad: list[Rejection] = []
            for index, event in enumerate(pending.events):
                problem = self._check(event)
                if problem is None:
                    ok.append(event)
                else:
                    bad.append(Rejection(index, event.event_id, *problem))
                    self._observe_rejected(event, problem[0])
            accepted.append(ok)
            rejected.append(bad)
        return accepted, rejected

    def _check(self, event: Event) -> tuple[Reason, str] | None:
        """Validate ``event`` and claim its id; ``(reason, message)`` if it is rejected."""
        ids = self._event_ids
        if is_plain_target(event, self.bundle.target_item_index) and event.event_id not in ids:
            ids.add(event.event_id)
            return None
        problem = validate(event, self.bundle)
        if problem is None and event.event_id in ids:
            problem = (Reason.DUPLICATE_EVENT, "event_id was already applied")
        if problem is None:
            ids.add(event.event_id)
        return problem

    def _resolve(
        self,
        batches: list[Pending],
        accepted: list[list[Event]],
        rejections: list[list[Rejection]],
        last: int,
    ) -> None:
        position = last - sum(len(a) for a in accepted)
        for pending, ok, bad in zip(batches, accepted, rejections, strict=True):
            position += len(ok)
            pending.result = BatchResult(len(ok), tuple(bad), position if ok else 0)
            pending.done.set()

    def _snapshot(self) -> None:
        snapshot(self.store, self.updater, self._dirty)
        self._dirty.clear()
        self._since_snapshot = 0

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
