"""One server interceptor for every RPC: gRPC metrics, request ids and the access log.

For each call it

* gives the call a request id, the client's ``x-request-id`` metadata or else a fresh one,
  made lazily: :data:`coldbridge_server.observability.logs.request_id` holds an object whose
  ``str()`` makes it, so log lines carry it, and it costs nothing when nothing is logged. When the
  id was used (a log line, the access log) or the RPC failed, it goes back to the client
  as ``x-request-id`` trailing metadata, with the status (initial metadata would be a
  separate transport send; echoing on every call costs ~1% of a loopback Recommend);
* counts ``grpc_server_started_total``, ``grpc_server_handled_total{grpc_code}``,
  ``grpc_server_msg_received_total`` / ``grpc_server_msg_sent_total`` and observes
  ``grpc_server_handling_seconds``;
* writes one access-log line (method, code, duration, request id; never the payload)
  at INFO to the ``coldbridge.access`` logger when ``access_log`` is on;
* decodes requests tolerantly: grpc turns a deserializer's exception into INTERNAL before
  any handler runs, so each handler's deserializer is wrapped to return a :class:`_Rejected`
  instead, for a message that does not decode (corrupt bytes, invalid UTF-8 in a string:
  INVALID_ARGUMENT) or is over ``max_message_bytes`` (RESOURCE_EXHAUSTED), and the call
  ends with that status inside the book-keeping, counted like any other. In a request
  stream the rejection is raised from the request iterator as the matching
  :class:`~coldbridge_server.errors.ColdbridgeError`, the status already set. The transport
  itself refuses only messages over :func:`transport_limit` (twice ``max_message_bytes``),
  before any handler: those are the only calls not counted.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import grpc

from coldbridge_server.errors import ColdbridgeError, InvalidRequestError, RequestTooLargeError
from coldbridge_server.interception import Interceptor, WrapOnce, handler_like, shape_of
from coldbridge_server.observability.logs import request_id
from coldbridge_server.observability.metrics import GrpcSeries, Metrics
from coldbridge_server.status import status_code, status_message

__all__ = ["REQUEST_ID_KEY", "ServerInterceptor", "transport_limit"]

REQUEST_ID_KEY = "x-request-id"
access_logger = logging.getLogger("coldbridge.access")
_TYPES = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}


def _code_name(context: grpc.ServicerContext, failed: bool) -> str:
    code = cast(Any, context).code()  # grpc-stubs 1.53 lacks ServicerContext.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if failed else "OK"


def transport_limit(max_message_bytes: int) -> int:
    """The transport's own message limit: twice ``max_message_bytes`` (at most 2 GiB - 1).

    Messages between the two limits reach the tolerant deserializer, which refuses them
    with a counted RESOURCE_EXHAUSTED.
    """
    return min(2 * max_message_bytes, 2**31 - 1)


class _Rejected:
    """A request the tolerant deserializer refused (grpc treats ``None`` as a failure)."""

    __slots__ = ("error", "code")

    def __init__(self, error: ColdbridgeError) -> None:
        self.error = error
        self.code = status_code(error)


def _tolerant(deserializer: Callable[[bytes], Any], max_bytes: int) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        if len(data) > max_bytes:
            return _Rejected(
                RequestTooLargeError(
                    f"request message of {len(data)} bytes exceeds max_message_bytes={max_bytes}"
                )
            )
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError (corrupt, bad UTF-8), RecursionError, ...
            return _Rejected(InvalidRequestError("request", f"cannot be decoded ({exc})"))

    return deserialize


def _refuse(call: _Call, rejected: _Rejected, context: grpc.ServicerContext) -> Any:
    """End the call with the status of a refused request message (counted by ``call``)."""
    try:
        context.abort(rejected.code, status_message(rejected.error))
    finally:
        call.finish(failed=True)


_PROCESS_PREFIX = os.urandom(8).hex()
_sequence = itertools.count(1)


def _incoming_request_id(context: grpc.ServicerContext) -> str:
    """The client's ``x-request-id``, else ``<random per-process prefix>-<sequence>``.

    The generated form is unique across processes and ~5x cheaper than ``uuid4()``.
    """
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return f"{_PROCESS_PREFIX}-{next(_sequence):x}"


class _Call:
    """Book-keeping of one RPC; ``str(call)`` is its request id (made on first use)."""

    __slots__ = ("series", "access_log", "context", "start", "token", "rid")

    def __init__(
        self, series: GrpcSeries, access_log: bool, context: grpc.ServicerContext, received: int
    ) -> None:
        self.series, self.access_log, self.context = series, access_log, context
        self.rid: str | None = None
        self.start = time.perf_counter()
        self.token = request_id.set(self)
        series.begin(received)

    def __str__(self) -> str:
        rid = self.rid
        if rid is None:
            rid = self.rid = _incoming_request_id(self.context)
        return rid

    def finish(self, failed: bool, sent: int = 0) -> None:
        elapsed = time.perf_counter() - self.start
        code = _code_name(self.context, failed)
        self.series.end(code, elapsed, sent)
        if self.access_log:
            service, method, _ = self.series.labels
            access_logger.info(
                "%s/%s %s %.2fms",
                service,
                method,
                code,
                elapsed * 1000,
                extra={
                    "grpc_method": method,
                    "grpc_code": code,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
        if self.rid is not None or code != "OK":  # the status is not sent yet
            self.context.set_trailing_metadata(((REQUEST_ID_KEY, str(self)),))
        try:
            request_id.reset(self.token)
        except ValueError:  # finished from another context (a cancelled stream's cleanup)
            pass


class ServerInterceptor(Interceptor):
    """Wraps every handler once (see the module docstring).

    Parameters
    ----------
    metrics
        Where the ``grpc_server_*`` series live.
    access_log
        Log one line per finished RPC.
    max_message_bytes
        Largest request message accepted (larger: RESOURCE_EXHAUSTED).
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        access_log: bool = False,
        max_message_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._metrics = metrics
        self._access_log = access_log
        self._max_bytes = max_message_bytes
        self._wrapped = WrapOnce(self._wrap)  # grpc asks per RPC: wrap each method once

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        return self._wrapped(handler, details.method)

    def _wrap(self, handler: Any, full_method: str) -> Any:
        shape = shape_of(handler)
        _, service, method = full_method.split("/", 2)
        series = self._metrics.grpc_series(service, method, _TYPES[shape])
        behaviour = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        wrap = self._wrap_stream if shape[1] else self._wrap_unary
        deserializer = handler.request_deserializer
        if deserializer is not None:
            deserializer = _tolerant(deserializer, self._max_bytes)
        return handler_like(handler, wrap(behaviour, series, shape[0]), deserializer)

    def _begin(
        self, request: Any, context: grpc.ServicerContext, series: GrpcSeries, streaming_in: bool
    ) -> tuple[_Call, Any]:
        if not streaming_in:
            return _Call(series, self._access_log, context, 1), request
        call = _Call(series, self._access_log, context, 0)

        def counted(requests: Iterator[Any]) -> Iterator[Any]:
            for item in requests:
                series.received()
                if item.__class__ is _Rejected:
                    context.set_code(item.code)  # the status, whoever handles the error
                    context.set_details(status_message(item.error))
                    raise item.error
                yield item

        return call, counted(request)

    def _wrap_unary(
        self, behaviour: Callable[..., Any], series: GrpcSeries, streaming_in: bool
    ) -> Callable[..., Any]:
        access_log = self._access_log

        def handle_unary(request: Any, context: grpc.ServicerContext) -> Any:  # the hot path
            call = _Call(series, access_log, context, 1)
            if request.__class__ is _Rejected:
                return _refuse(call, request, context)
            return _respond(call, behaviour, request, context)

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            call, request = self._begin(request, context, series, streaming_in)
            return _respond(call, behaviour, request, context)

        return handle if streaming_in else handle_unary

    def _wrap_stream(
        self, behaviour: Callable[..., Any], series: GrpcSeries, streaming_in: bool
    ) -> Callable[..., Iterator[Any]]:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call, request = self._begin(request, context, series, streaming_in)
            if request.__class__ is _Rejected:
                _refuse(call, request, context)
            try:
                for response in behaviour(request, context):
                    series.sent()
                    yield response
            except BaseException:
                call.finish(failed=True)
                raise
            call.finish(failed=False)

        return handle


def _respond(
    call: _Call, behaviour: Callable[..., Any], request: Any, context: grpc.ServicerContext
) -> Any:
    """Run a single-response handler inside ``call``'s book-keeping."""
    try:
        response = behaviour(request, context)
    except BaseException:
        call.finish(failed=True)
        raise
    call.finish(failed=False, sent=1)
    return response
