"""The durable-state interface of streaming: event log, idempotency, snapshots, replay, lock.

Streaming reaches durable state only through :class:`EventStore`.
:class:`~coldbridge_server.streaming.sqlite_store.SqliteEventStore` is the first
implementation. A second backend (Redis, say) must keep the contract below; ``app.py``
chooses the backend and hands the ingestor a function that opens it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from coldbridge_server.core import UserState
from coldbridge_server.streaming.validate import Event

__all__ = ["EventStore", "Logged"]

Logged = tuple[Event, float]
"""A logged event and the server time it was appended at (``received_at``)."""


class EventStore(abc.ABC):
    """The event log and user-state snapshots of one state directory (or keyspace).

    Contract of every implementation:

    **Ownership (lock).** A store takes an exclusive lock on its state when it is opened
    (its constructor) and holds it until :meth:`close`. A second opener, in this process or
    another, must fail with :class:`~coldbridge_server.errors.ConfigError` naming the state,
    so two servers never write one log. A lock that can expire (a lease) must be renewed
    while the store is open.

    **Durable append.** :meth:`append` writes a batch of validated events all-or-nothing and
    returns only once the batch survives a process kill (the ack the client receives
    depends on it). The events get the consecutive log positions ``last_seq + 1`` onwards,
    in the order given: the log order *is* the apply order. If it raises, nothing of the
    batch is logged and ``last_seq`` / ``count`` are unchanged.

    **Storage faults.** A full disk (or size limit) raises
    :class:`~coldbridge_server.errors.StorageFullError`, any other I/O error
    :class:`~coldbridge_server.errors.StorageError`, with the backend's cause in the message,
    from every writing method; nothing of the failed write is kept, and the store stays usable
    (the same call succeeds once space returns). Any other exception of :meth:`append` means
    the batch itself is at fault.

    **Idempotency by event id.** Event ids are unique in the log: appending an id that is
    already logged must fail (raise) without logging any event of the batch. The ingest
    writer keeps the set of applied ids in memory, seeded from :meth:`event_ids` at
    recovery, and rejects duplicates before they reach the store; the store's uniqueness
    is the backstop.

    **Snapshots.** :meth:`write_snapshot` stores user states and the log position they
    cover, plus the bundle version they belong to, atomically: after a crash either the old
    or the new snapshot is visible, never a mix. ``delta`` (float64) and ``prior``
    (float32) must round-trip bit for bit; ``vector`` need not be stored (the caller
    recomputes it from the prior and the bundle).

    **Replay.** :meth:`events_after` yields the logged events after a position in log
    order, with the fields they were appended with (an unset ``timestamp`` is stored as the
    batch's ``received_at``). Recovery is: load the snapshot, then apply
    ``events_after(snapshot_seq)``.

    **Deletion.** :meth:`delete_user` (erasure) and :meth:`compact` (retention) remove events
    and return their ids, atomically; positions of deleted events are never reused (a
    restart continues after the highest position ever logged).

    A store is used by one thread at a time: the ingest writer (and recovery, before the
    writer starts).
    """

    @property
    @abc.abstractmethod
    def last_seq(self) -> int:
        """The log position of the last logged event (0 for an empty log)."""

    @property
    @abc.abstractmethod
    def count(self) -> int:
        """The number of logged events."""

    @abc.abstractmethod
    def append(self, events: Sequence[Event], received_at: float) -> int:
        """Log ``events`` durably, all or nothing; return the new :attr:`last_seq`.

        Raises
        ------
        Exception
            Any backend error (nothing of the batch is logged then), including a logged
            ``event_id``.
        """

    @abc.abstractmethod
    def event_ids(self) -> Iterator[str]:
        """Every logged event id (seeds the writer's duplicate check)."""

    @abc.abstractmethod
    def events_after(self, seq: int) -> Iterator[tuple[int, Event]]:
        """``(position, event)`` of the log after position ``seq``, in log order."""

    def received_after(self, seq: int) -> Iterator[tuple[int, Event, float]]:
        """``(position, event, received_at)`` of the log after ``seq``: what recovery applies.

        ``received_at`` is the server time the event's batch was appended with (the time the
        live apply used, so a replayed user's ``last_update`` is unchanged). This default,
        for a backend that does not keep it, uses the event's timestamp.
        """
        for position, event in self.events_after(seq):
            yield position, event, event.timestamp

    def read_chunk(self, cursor: Any, limit: int | None) -> tuple[list[Logged], Any]:
        """Up to ``limit`` (``None``: all) logged events after ``cursor``, and the cursor
        after them: what a hot reload's state rebuild reads, a chunk at a time.

        ``cursor`` is opaque: ``None`` for the beginning of the log, else what the previous
        call returned. Between two calls the writer may log and apply more; every event it
        applied by the time of a call is returned by that call or a later one, once. This
        default follows the positions of :meth:`received_after`.
        """
        rows = self.received_after(0 if cursor is None else cursor)
        try:
            chunk = list(islice(rows, limit))
        finally:
            close = getattr(rows, "close", None)
            if close is not None:  # a generator: release its cursor now
                close()
        return [(event, at) for _, event, at in chunk], chunk[-1][0] if chunk else cursor

    def read_end(self) -> Any:
        """The cursor :meth:`read_chunk` reaches once it has returned every event applied so
        far (called with the writer paused): how a rebuild knows it caught up with the log."""
        return self.last_seq

    def read_covers(self, cursor: Any, end: Any) -> bool:
        """Whether ``cursor`` (of :meth:`read_chunk`) is at or past ``end`` (of
        :meth:`read_end`)."""
        return cursor is not None and cursor >= end

    @abc.abstractmethod
    def snapshot_info(self) -> tuple[str, int]:
        """``(bundle_version, snapshot_seq)`` of the stored snapshot (``("", 0)`` if none)."""

    @abc.abstractmethod
    def load_states(self) -> Iterator[UserState]:
        """The user states of the stored snapshot (``vector`` left ``None``)."""

    @abc.abstractmethod
    def write_snapshot(
        self, states: Iterable[UserState], seq: int, bundle_version: str, *, replace: bool = False
    ) -> None:
        """Upsert ``states`` and mark the snapshot as covering the log up to ``seq``.

        ``replace`` first drops every stored state (the snapshot then holds all users).
        """

    @abc.abstractmethod
    def delete_user(self, user_id: str) -> list[str]:
        """Delete every event and the snapshot state of ``user_id``, durably and atomically.

        Returns the deleted event ids.
        """

    @abc.abstractmethod
    def compact(self, through_seq: int, received_before: float) -> list[str]:
        """Delete the events at positions ``<= through_seq`` received before
        ``received_before`` (a Unix time); return their ids."""

    @abc.abstractmethod
    def probe(self) -> None:
        """Write and remove a little data durably: raises the storage fault while it lasts."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend and the lock; the store is unusable afterwards."""
