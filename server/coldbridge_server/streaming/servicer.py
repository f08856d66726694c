"""The ``coldbridge.v1.Events`` servicer: pb2 <-> domain objects around the :class:`Ingestor`.

``StreamEvents`` runs a reader thread per stream that checks each batch, converts it and
submits it to the ingest queue (blocking while the queue is full, so gRPC flow control slows
the client down); the handler yields one ack per batch, in order, once the batch is durable
and applied. A protocol error ends the stream with INVALID_ARGUMENT after the acks of the
batches submitted before it. Errors map to status codes in
:func:`coldbridge_server.status.map_errors`.

Every event is checked here, in the handler's thread, before its batch is queued: an id over
``max_id_bytes`` fails the whole batch with INVALID_ARGUMENT naming ``events[i].<field>``;
an event that :func:`~coldbridge_server.streaming.validate.validate` or the
:class:`~coldbridge_server.streaming.validate.EventPolicy` refuses is rejected alone (its
``EventRejection``) and never reaches the writer, whose group commit other clients share.
The writer then only looks for duplicates (unless a reload changed the bundle meanwhile).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from math import isfinite
from typing import Any, NamedTuple

import grpc
from coldbridge.v1 import events_pb2, events_pb2_grpc

from coldbridge_server.bundle import Bundle
from coldbridge_server.core import ServingModel, UserStates
from coldbridge_server.errors import ColdbridgeError, InvalidRequestError
from coldbridge_server.limits import TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS, check_id
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.status import blend_pb, map_errors, provenance_pb, stage_pb
from coldbridge_server.streaming.ingest import BatchResult, Ingestor, Pending
from coldbridge_server.streaming.validate import (
    Domain,
    Event,
    EventPolicy,
    Kind,
    Reason,
    Rejection,
    check_batch,
    validate,
)

__all__ = ["EVENTS_SERVICE_NAME", "EventsServicer"]

EVENTS_SERVICE_NAME: str = events_pb2.DESCRIPTOR.services_by_name["Events"].full_name
_DOMAIN = {events_pb2.DOMAIN_SOURCE: Domain.SOURCE, events_pb2.DOMAIN_TARGET: Domain.TARGET}
_KIND = {events_pb2.EVENT_KIND_IMPLICIT: Kind.IMPLICIT, events_pb2.EVENT_KIND_RATING: Kind.RATING}
_REASON = {
    reason: events_pb2.RejectionReason.Value("REJECTION_REASON_" + reason.name) for reason in Reason
}
_END = object()


class _Served(NamedTuple):
    """What a call reads of the served bundle: one attribute, replaced whole by a reload."""

    bundle: Bundle
    model: ServingModel
    states: UserStates
    policy: EventPolicy


class _Submitted(NamedTuple):
    """A batch handed to the ingestor, with what the servicer rejected before."""

    sequence: int
    received: float
    pending: Pending
    kept: list[int] | None  # batch index of each submitted event (None: all of them)
    rejected: list[Rejection]


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
    policy
        The input limits of events (default: :class:`EventPolicy` defaults, ratings
        accepted only if the bundle's feedback is explicit).
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
        policy: EventPolicy | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.ingestor = ingestor
        bundle = ingestor.bundle
        ratings = bundle.feedback == "explicit"
        self._served = _Served(bundle, model, states, policy or EventPolicy(ratings=ratings))
        self.max_batch_events = max_batch_events
        self.window = window
        self.metrics = metrics

    def serve(self, bundle: Bundle, model: ServingModel, states: UserStates) -> None:
        """Answer from a hot-reloaded bundle from now on (ratings as its feedback says).

        One assignment: a call reads the served parts once, so it never mixes two bundles.
        """
        policy = dataclasses.replace(self._served.policy, ratings=bundle.feedback == "explicit")
        self._served = _Served(bundle, model, states, policy)

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
                result = item.pending.wait()
            yield self._ack(item, result)

    def IngestEvents(  # noqa: N802 - gRPC method name
        self, request: events_pb2.EventBatch, context: grpc.ServicerContext
    ) -> events_pb2.EventAck:
        with map_errors(context):
            submitted = self._submit(request, None)
            result = submitted.pending.wait()
        return self._ack(submitted, result)

    def GetUserState(  # noqa: N802 - gRPC method name
        self, request: events_pb2.GetUserStateRequest, context: grpc.ServicerContext
    ) -> events_pb2.UserState:
        served = self._served  # one generation per call: a hot reload replaces it
        with map_errors(context):
            if not request.user_id:
                raise InvalidRequestError("user_id", "must be non-empty")
            check_id("user_id", request.user_id, served.policy.max_id_bytes)
            view = served.model.describe(request.user_id)
        state = served.states.get(request.user_id)
        reply = events_pb2.UserState(
            user_id=request.user_id,
            stage=stage_pb(view.stage),
            provenance=provenance_pb(view.provenance),
            strategy=view.strategy,
            bundle_version=served.bundle.version,
            blend=blend_pb(view.blend),
        )
        if state is not None:
            reply.source_events, reply.target_events = state.source_events, state.target_events
            reply.online_updates, reply.seen_items = state.online_updates, len(state.seen)
            if _MIN_TIME <= state.last_update <= _MAX_TIME:  # a state of an older log may not be
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
                submitted = self._submit(batch, previous)
                previous = batch.sequence
                if not _put(acks, submitted, context):
                    return
        except ColdbridgeError as exc:
            _put(acks, exc, context)
        except grpc.RpcError:
            pass  # the client went away; nothing left to acknowledge
        _put(acks, _END, context)

    def _submit(self, batch: events_pb2.EventBatch, previous: int | None) -> _Submitted:
        received = time.perf_counter()
        check_batch(batch.sequence, previous, len(batch.events), self.max_batch_events)
        events = [_event(message) for message in batch.events]
        served = self._served  # read once: a hot reload may swap it meanwhile
        rejected = self._check(served, batch.events, events)
        if self.metrics is not None:
            self._count_received(events)
        kept = None
        if rejected:
            bad = {r.index for r in rejected}
            kept = [i for i in range(len(events)) if i not in bad]
            events = [events[i] for i in kept]
        pending = self.ingestor.submit(events, checked=served.bundle)
        return _Submitted(batch.sequence, received, pending, kept, rejected)

    def _check(
        self, served: _Served, messages: Sequence[events_pb2.Event], events: list[Event]
    ) -> list[Rejection]:
        """The rejections of ``events`` against ``served``'s bundle and policy (see the module
        docs); raises for an over-long id."""
        policy, bundle, items = served.policy, served.bundle, served.bundle.target_item_index
        quick = policy.max_id_bytes // 4  # no id of at most this many characters is too long
        rejected: list[Rejection] = []
        for index, (message, event) in enumerate(zip(messages, events, strict=True)):
            eid, uid, iid = event.event_id, event.user_id, event.item_id
            if len(eid) > quick or len(uid) > quick or len(iid) > quick:
                policy.check_ids(index, event)
            if (  # the common event, inline: a plain implicit target event without timestamp
                event.kind is Kind.IMPLICIT
                and event.domain is Domain.TARGET
                and eid
                and uid
                and iid in items
                and isfinite(event.value)
                and not message.HasField("timestamp")
            ):
                continue
            problem = validate(event, bundle)
            if problem is None:
                stamp = message.timestamp if message.HasField("timestamp") else None
                why = policy.problem(event, None if stamp is None else (stamp.seconds, stamp.nanos))
                if why is not None:
                    problem = Reason.INVALID_VALUE, why
            if problem is not None:
                rejected.append(Rejection(index, eid, *problem))
                self._count_rejected(event, problem[0])
        return rejected

    def _count_rejected(self, event: Event, reason: Reason) -> None:
        if self.metrics is not None:
            domain = event.domain.value if event.domain is not None else "unknown"
            self.metrics.count_rejected(domain, reason.value)

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

    def _ack(self, submitted: _Submitted, result: BatchResult) -> events_pb2.EventAck:
        rejections: Sequence[Rejection] = result.rejections
        if submitted.kept is not None:  # the writer's indices are positions among the kept
            kept = submitted.kept
            moved = [dataclasses.replace(r, index=kept[r.index]) for r in rejections]
            rejections = sorted((*submitted.rejected, *moved), key=lambda r: r.index)
        ack = events_pb2.EventAck(
            sequence=submitted.sequence,
            accepted=result.accepted,
            log_position=result.log_position,
            rejections=[
                events_pb2.EventRejection(
                    index=r.index, event_id=r.event_id, reason=_REASON[r.reason], message=r.message
                )
                for r in rejections
            ],
        )
        if self.metrics is not None:
            self.metrics.ack_lag_seconds.observe(time.perf_counter() - submitted.received)
        return ack


_MIN_TIME, _MAX_TIME = float(TIMESTAMP_MIN_SECONDS), float(TIMESTAMP_MAX_SECONDS)


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
