"""The ``coldbridge.v1.Events`` servicer: pb2 <-> domain objects around the :class:`Ingestor`.

``StreamEvents`` runs a reader thread per stream that checks each batch, converts it and
submits it to the ingest queue (blocking while the queue is full, so gRPC flow control slows
the client down); the handler yields one ack per batch, in order, once the batch is durable
and applied. A protocol error ends the stream with INVALID_ARGUMENT after the acks of the
batches submitted before it. Errors map to status codes in
:func:`coldbridge_server.status.map_errors`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from coldbridge.v1 import events_pb2, events_pb2_grpc

from coldbridge_server.bundle import Bundle
from coldbridge_server.core import ServingModel, UserStates
from coldbridge_server.errors import ColdbridgeError, InvalidRequestError
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.status import blend_pb, map_errors, provenance_pb, stage_pb
from coldbridge_server.streaming.ingest import BatchResult, Ingestor, Pending
from coldbridge_server.streaming.validate import Domain, Event, Kind, Reason, check_batch

__all__ = ["EVENTS_SERVICE_NAME", "EventsServicer"]

EVENTS_SERVICE_NAME: str = events_pb2.DESCRIPTOR.services_by_name["Events"].full_name
_DOMAIN = {events_pb2.DOMAIN_SOURCE: Domain.SOURCE, events_pb2.DOMAIN_TARGET: Domain.TARGET}
_KIND = {events_pb2.EVENT_KIND_IMPLICIT: Kind.IMPLICIT, events_pb2.EVENT_KIND_RATING: Kind.RATING}
_REASON = {
    reason: events_pb2.RejectionReason.Value("REJECTION_REASON_" + reason.name) for reason in Reason
}
_END = object()


class EventsServicer(events_pb2_grpc.EventsServicer):
    """Implements ``coldbridge.v1.Events``.

    Parameters
    ----------
    ingestor
        The ingest pipeline.
    model
        The serving model (GetUserState reports what Recommend would do).
    states
        The published user states.
    max_batch_events
        Largest accepted batch.
    window
        Batches of one stream submitted but not yet acknowledged, at most.
    metrics
        Optional Prometheus metrics.
    """

    def __init__(
        self,
        ingestor: Ingestor,
        model: ServingModel,
        states: UserStates,
        *,
        max_batch_events: int,
        window: int = 16,
        metrics: Metrics | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.bundle: Bundle = ingestor.bundle
        self.model = model
        self.states = states
        self.max_batch_events = max_batch_events
        self.window = window
        self.metrics = metrics

    def StreamEvents(  # noqa: N802 - gRPC method name
        self, request_iterator: Iterator[events_pb2.EventBatch], context: grpc.ServicerContext
    ) -> Iterator[events_pb2.EventAck]:
        acks: queue.Queue[Any] = queue.Queue(maxsize=self.window)
        threading.Thread(
            target=self._read,
            args=(request_iterator, acks, context),
            name="coldbridge-stream-reader",
            daemon=True,
        ).start()
        while (item := acks.get()) is not _END:
            with map_errors(context):
                if isinstance(item, ColdbridgeError):
                    raise item
                sequence, received, pending = item
                result = pending.wait()
            yield self._ack(sequence, result, received)

    def IngestEvents(  # noqa: N802 - gRPC method name
        self, request: events_pb2.EventBatch, context: grpc.ServicerContext
    ) -> events_pb2.EventAck:
        received = time.perf_counter()
        with map_errors(context):
            result = self._submit(request, None).wait()
        return self._ack(request.sequence, result, received)

    def GetUserState(  # noqa: N802 - gRPC method name
        self, request: events_pb2.GetUserStateRequest, context: grpc.ServicerContext
    ) -> events_pb2.UserState:
        with map_errors(context):
            if not request.user_id:
                raise InvalidRequestError("user_id", "must be non-empty")
            view = self.model.describe(request.user_id)
        state = self.states.get(request.user_id)
        reply = events_pb2.UserState(
            user_id=request.user_id,
            stage=stage_pb(view.stage),
            provenance=provenance_pb(view.provenance),
            strategy=view.strategy,
            bundle_version=self.bundle.version,
            blend=blend_pb(view.blend),
        )
        if state is not None:
            reply.source_events, reply.target_events = state.source_events, state.target_events
            reply.online_updates, reply.seen_items = state.online_updates, len(state.seen)
            reply.last_update_time.FromNanoseconds(int(state.last_update * 1e9))
        return reply

    def DeleteUser(  # noqa: N802 - gRPC method name
        self, request: events_pb2.DeleteUserRequest, context: grpc.ServicerContext
    ) -> events_pb2.DeleteUserResponse:
        with map_errors(context):
            if not request.user_id:
                raise InvalidRequestError("user_id", "must be non-empty")
            erasure = self.ingestor.delete_user(request.user_id)
            deleted = erasure.wait()
        return events_pb2.DeleteUserResponse(
            user_id=request.user_id, deleted_events=deleted, had_state=erasure.had_state
        )

    def _read(
        self,
        requests: Iterable[events_pb2.EventBatch],
        acks: queue.Queue[Any],
        context: grpc.ServicerContext,
    ) -> None:
        previous: int | None = None
        try:
            for batch in requests:
                received = time.perf_counter()
                pending = self._submit(batch, previous)
                previous = batch.sequence
                if not _put(acks, (batch.sequence, received, pending), context):
                    return
        except ColdbridgeError as exc:
            _put(acks, exc, context)
        except grpc.RpcError:
            pass  # the client went away; nothing left to acknowledge
        _put(acks, _END, context)

    def _submit(self, batch: events_pb2.EventBatch, previous: int | None) -> Pending:
        check_batch(batch.sequence, previous, len(batch.events), self.max_batch_events)
        events = [_event(message) for message in batch.events]
        if self.metrics is not None:
            self._count_received(events)
        return self.ingestor.submit(events)

    def _count_received(self, events: list[Event]) -> None:
        assert self.metrics is not None
        target = sum(1 for event in events if event.domain is Domain.TARGET)
        source = sum(1 for event in events if event.domain is Domain.SOURCE)
        for domain, n in (
            ("target", target),
            ("source", source),
            ("unknown", len(events) - target - source),
        ):
            if n:
                self.metrics.count_events("received", domain, n)

    def _ack(self, sequence: int, result: BatchResult, received: float) -> events_pb2.EventAck:
        ack = events_pb2.EventAck(
            sequence=sequence,
            accepted=result.accepted,
            log_position=result.log_position,
            rejections=[
                events_pb2.EventRejection(
                    index=r.index, event_id=r.event_id, reason=_REASON[r.reason], message=r.message
                )
                for r in result.rejections
            ],
        )
        if self.metrics is not None:
            self.metrics.ack_lag_seconds.observe(time.perf_counter() - received)
        return ack


def _event(message: events_pb2.Event) -> Event:
    """The domain event of ``message`` (unknown enum values become ``None``)."""
    when = 0.0
    if message.HasField("timestamp"):
        when = message.timestamp.seconds + message.timestamp.nanos * 1e-9
    return Event(
        message.event_id,
        message.user_id,
        message.item_id,
        _DOMAIN.get(message.domain),
        _KIND.get(message.kind),
        message.value,
        when,
    )


def _put(acks: queue.Queue[Any], item: object, context: grpc.ServicerContext) -> bool:
    """Put ``item`` unless the RPC ended first (its handler no longer reads ``acks``)."""
    while True:
        try:
            acks.put(item, timeout=0.5)
            return True
        except queue.Full:
            if not context.is_active():
                return False
