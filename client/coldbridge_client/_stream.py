"""``EventStream``: send events over ``Events.StreamEvents`` and survive broken streams.

The server acknowledges every batch, in order, once its events are durable and applied; events
are idempotent by ``event_id`` (a resent event that was applied comes back as
``REJECTION_REASON_DUPLICATE_EVENT`` and is not applied again). So the helper keeps every batch
until its ack arrives and, when the stream breaks (server restart, network cut, UNAVAILABLE
while warming up), opens a new stream and resends the unacknowledged batches in order, before
anything sent later. Sequences keep increasing across streams, as each stream requires.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import grpc
from coldbridge.v1 import events_pb2, events_pb2_grpc

from coldbridge_client._config import DEFAULT_RECONNECT, ReconnectPolicy
from coldbridge_client._errors import ClientError, UnavailableError, map_rpc_error

__all__ = ["EventStream"]

#: Codes after which the stream is reopened: the connection or the server went away. Others
#: (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...) mean the batches are wrong; resending won't help.
RECONNECT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED}
)
_DUPLICATE = events_pb2.REJECTION_REASON_DUPLICATE_EVENT
_END = None


class EventStream:
    """A self-healing ``StreamEvents`` call that tracks acknowledged sequence numbers.

    Use :meth:`coldbridge_client.Client.stream_events` to make one; it is a context manager
    (leaving the block waits for every ack, or cancels on an exception).

    Parameters
    ----------
    stub
        The ``Events`` stub of a channel.
    max_unacked
        :meth:`send` blocks while this many batches wait for their ack.
    reconnect
        Backoff and limit of reopening a broken stream.
    on_ack
        Called (on the helper's thread) with every ack received.

    Attributes
    ----------
    acked_sequence : int
        Highest sequence acknowledged (0 before the first ack).
    accepted, duplicates : int
        Events applied, and resent events the server had applied already.
    rejections : list of EventRejection
        Events refused for another reason than being duplicates.
    reconnects : int
        Streams opened after the first one.
    """

    def __init__(
        self,
        stub: events_pb2_grpc.EventsStub,
        *,
        max_unacked: int = 64,
        reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
        on_ack: Callable[[events_pb2.EventAck], None] | None = None,
    ) -> None:
        if max_unacked < 1:
            raise ValueError(f"max_unacked must be >= 1, got {max_unacked}")
        self._stub, self._max_unacked, self._policy = stub, max_unacked, reconnect
        self._on_ack = on_ack
        self._cond = threading.Condition()
        self._pending: dict[int, events_pb2.EventBatch] = {}  # insertion = sequence order
        self._queue: queue.SimpleQueue[events_pb2.EventBatch | None] = queue.SimpleQueue()
        self._next_sequence = 1
        self._closing = self._done = False
        self._stopped = threading.Event()
        self._error: ClientError | None = None
        self._call: grpc.CallIterator[events_pb2.EventAck] | None = None
        self.acked_sequence = self.accepted = self.duplicates = self.reconnects = 0
        self.rejections: list[events_pb2.EventRejection] = []
        self._thread = threading.Thread(
            target=self._run, name="coldbridge-event-stream", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.cancel()

    @property
    def unacked(self) -> list[events_pb2.EventBatch]:
        """The batches sent and not acknowledged yet, in sequence order."""
        with self._cond:
            return list(self._pending.values())

    def send(self, events: Iterable[events_pb2.Event], *, timeout: float | None = None) -> int:
        """Queue one batch of ``events``; return its sequence number.

        Raises
        ------
        TimeoutError
            If ``max_unacked`` batches stayed unacknowledged for ``timeout`` seconds.
        ClientError
            If the stream failed for good (see :meth:`flush`).
        """
        with self._cond:
            if self._closing:
                raise RuntimeError("the event stream is closed")
            if not self._cond.wait_for(self._has_room, timeout):
                raise TimeoutError(
                    f"{len(self._pending)} batches still unacknowledged after {timeout} s"
                )
            self._raise_error()
            sequence, self._next_sequence = self._next_sequence, self._next_sequence + 1
            batch = events_pb2.EventBatch(sequence=sequence, events=events)
            self._pending[sequence] = batch
            self._queue.put(batch)
            return sequence

    def flush(self, timeout: float | None = None) -> None:
        """Block until every batch sent so far is acknowledged.

        Raises
        ------
        TimeoutError
            If some are still unacknowledged after ``timeout`` seconds.
        ClientError
            If the stream failed for good: a non-retryable status (e.g. INVALID_ARGUMENT), or
            :class:`UnavailableError` after ``reconnect.max_attempts`` failed streams.
        """
        with self._cond:
            if not self._cond.wait_for(
                lambda: not self._pending or self._error is not None or self._done, timeout
            ):
                raise TimeoutError(
                    f"{len(self._pending)} batches still unacknowledged after {timeout} s"
                )
            self._raise_error()

    def close(self, timeout: float | None = None) -> None:
        """Flush, end the stream and wait for the helper's thread."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._queue.put(_END)
        self._thread.join(timeout)

    def cancel(self, timeout: float | None = 10.0) -> None:
        """Stop now (waiting at most ``timeout`` s for the helper's thread).

        Unacknowledged batches stay in :attr:`unacked`.
        """
        with self._cond:
            self._closing = True
            self._stopped.set()
            self._queue.put(_END)
            if self._call is not None:
                self._call.cancel()  # type: ignore[no-untyped-call]  # unannotated in grpc-stubs
        self._thread.join(timeout)

    def _has_room(self) -> bool:
        return len(self._pending) < self._max_unacked or self._error is not None or self._done

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stopped.is_set():
                progressed, error = self._one_stream()
                with self._cond:
                    if self._stopped.is_set() or (self._closing and not self._pending):
                        return
                if error is not None and error.code() not in RECONNECT_CODES:
                    raise error
                failures = 0 if progressed else failures + 1
                if failures >= self._policy.max_attempts:
                    raise UnavailableError(
                        "StreamEvents",
                        grpc.StatusCode.UNAVAILABLE,
                        f"gave up after {failures} failed streams: {error}",
                    )
                if self._stopped.wait(self._policy.delay(failures)):
                    return
                self._reopen()
        except ClientError as exc:
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._queue.put(_END)  # lets gRPC's request-reading thread finish
                self._cond.notify_all()

    def _one_stream(self) -> tuple[bool, ClientError | None]:
        """Run one call until it ends; return (any ack received, its error or None)."""
        with self._cond:
            if self._stopped.is_set():
                return False, None
            call = self._stub.StreamEvents(_drain(self._queue), wait_for_ready=True)
            self._call = call
        progressed = False
        try:
            for ack in call:
                self._acknowledge(ack)
                progressed = True
        except grpc.RpcError as exc:
            if self._stopped.is_set():
                return progressed, None
            return progressed, map_rpc_error("StreamEvents", exc)
        return progressed, None

    def _reopen(self) -> None:
        """Point new sends at a fresh queue that starts with every unacknowledged batch."""
        with self._cond:
            self._queue.put(_END)  # ends the old request iterator, should gRPC still read it
            self._queue = queue.SimpleQueue()
            for batch in self._pending.values():
                self._queue.put(batch)
            if self._closing:
                self._queue.put(_END)
            self.reconnects += 1

    def _acknowledge(self, ack: events_pb2.EventAck) -> None:
        with self._cond:
            for sequence in [s for s in self._pending if s <= ack.sequence]:
                del self._pending[sequence]
            self.acked_sequence = max(self.acked_sequence, ack.sequence)
            self.accepted += ack.accepted
            for rejection in ack.rejections:
                if rejection.reason == _DUPLICATE:
                    self.duplicates += 1
                else:
                    self.rejections.append(rejection)
            self._cond.notify_all()
        if self._on_ack is not None:
            self._on_ack(ack)


def _drain(
    source: queue.SimpleQueue[events_pb2.EventBatch | None],
) -> Iterator[events_pb2.EventBatch]:
    """Yield the batches of ``source`` until its end marker (a request iterator for gRPC)."""
    while (batch := source.get()) is not _END:
        yield batch
