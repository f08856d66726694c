"""Admission of calls and connections: the start-up gate, stream caps, connection options.

The sync ``grpc.Server`` runs every call on a thread of one pool, and a streaming call
(``StreamEvents``, ``Health.Watch``, reflection) holds its thread for as long as it is open.
So that open streams can never take the threads unary calls need, the pool has
``max_workers + max_streams`` threads and :class:`AdmissionInterceptor` refuses a stream beyond

* ``max_streams`` open streams on the server, or
* ``max_streams_per_client`` open streams from one client address (the peer IP),

with ``RESOURCE_EXHAUSTED`` and a message naming the cap and its setting. At most
``max_streams`` threads are ever held by streams; ``max_workers`` are left for unary calls.

The same interceptor is the start-up gate: until :meth:`AdmissionInterceptor.open` (called
when the models are warm *and* the event log is replayed), every call of
``coldbridge.v1.Recommender`` and ``coldbridge.v1.Events`` except ``GetModelInfo`` gets
``UNAVAILABLE``, so nothing is ever answered from half-restored state. Health and
reflection answer throughout.

:func:`server_options` are the server's channel arguments: no ``SO_REUSEPORT`` (a second
server on a used port fails to bind instead of splitting the traffic), keepalive and maximum
connection age. :func:`check_port_free` refuses a port in use before gRPC tries it, so the
error is one clear line (gRPC's own bind failure also logs a C-core line to stderr).
"""

from __future__ import annotations

import errno
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from coldbridge_server.config import Settings
from coldbridge_server.errors import CapacityError, ConfigError, NotReadyError
from coldbridge_server.interception import Interceptor, WrapOnce, handler_like, refusal
from coldbridge_server.observability.interceptor import transport_limit
from coldbridge_server.status import status_code

__all__ = [
    "GATED_PREFIXES",
    "STARTING",
    "UNGATED",
    "AdmissionInterceptor",
    "check_port_free",
    "client_of",
    "server_options",
]

GATED_PREFIXES: tuple[str, ...] = ("/coldbridge.v1.Recommender/", "/coldbridge.v1.Events/")
"""Methods answered only once the server is ready (start-up gate)."""
UNGATED: frozenset[str] = frozenset({"/coldbridge.v1.Recommender/GetModelInfo"})
"""Gated-service methods that answer during start-up (they read the loaded bundle only)."""
STARTING = (
    "the server is starting (warming up the models / replaying the event log); "
    "retry when health is SERVING"
)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The ``grpc.server`` channel arguments of ``settings`` (see the module docstring)."""
    options = [
        # the metrics interceptor enforces max_message_bytes itself (counted)
        ("grpc.max_receive_message_length", transport_limit(settings.max_message_bytes)),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", _ms(settings.keepalive_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(settings.keepalive_timeout_seconds)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]
    if settings.max_connection_age_seconds > 0:
        options += [
            ("grpc.max_connection_age_ms", _ms(settings.max_connection_age_seconds)),
            ("grpc.max_connection_age_grace_ms", _ms(settings.max_connection_age_grace_seconds)),
        ]
    return options


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`ConfigError` if ``host:port`` is in use (port 0 is always free).

    Only "address in use" is reported here; any other bind problem is left to gRPC.
    """
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return  # gRPC reports it
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(
                        "port", f"cannot bind {host}:{port}: address already in use"
                    ) from None


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def client_of(peer: str) -> str:
    """The client address of a ``context.peer()`` string, without the port.

    Examples
    --------
    >>> client_of("ipv4:127.0.0.1:50312"), client_of("ipv6:[::1]:50312")
    ('ipv4:127.0.0.1', 'ipv6:[::1]')
    """
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


class AdmissionInterceptor(Interceptor):
    """The start-up gate and the stream caps (see the module docstring).

    Parameters
    ----------
    max_streams
        Most streaming calls open at once on the server.
    max_streams_per_client
        Most streaming calls open at once from one client address.
    """

    def __init__(self, *, max_streams: int, max_streams_per_client: int) -> None:
        self.max_streams = max_streams
        self.max_streams_per_client = max_streams_per_client
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._open = 0
        self._per_client: Counter[str] = Counter()
        self._wrapped = WrapOnce(self._wrap)  # one wrapper per streaming method handler

    @property
    def ready(self) -> bool:
        """Whether the start-up gate is open."""
        return self._ready.is_set()

    @property
    def open_streams(self) -> int:
        """Streaming calls open now."""
        return self._open

    def open(self) -> None:
        """Open the start-up gate: the Recommender and Events calls are answered from now on."""
        self._ready.set()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        if not self._ready.is_set() and _gated(details.method):
            return refusal(handler, NotReadyError(STARTING))
        if not (handler.request_streaming or handler.response_streaming):
            return handler
        return self._wrapped(handler, details.method)

    def _wrap(self, handler: Any, method: str) -> Any:
        behaviour = handler.unary_stream or handler.stream_stream or handler.stream_unary

        def handle_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            client = self._admit(context)
            try:
                yield from behaviour(request, context)
            finally:
                self._release(client)

        def handle_unary(request: Any, context: grpc.ServicerContext) -> Any:
            client = self._admit(context)
            try:
                return behaviour(request, context)
            finally:
                self._release(client)

        return handler_like(handler, handle_stream if handler.response_streaming else handle_unary)

    def _admit(self, context: grpc.ServicerContext) -> str:
        client = client_of(context.peer())
        with self._lock:
            if self._open >= self.max_streams:
                error = CapacityError(
                    "max_streams",
                    f"too many open streams: the server's cap of {self.max_streams} "
                    "concurrent streams is reached",
                )
            elif self._per_client[client] >= self.max_streams_per_client:
                error = CapacityError(
                    "max_streams_per_client",
                    f"too many open streams from {client}: the cap of "
                    f"{self.max_streams_per_client} concurrent streams per client is reached",
                )
            else:
                self._open += 1
                self._per_client[client] += 1
                return client
        context.abort(status_code(error), str(error))
        raise error  # not reached: abort raises

    def _release(self, client: str) -> None:
        with self._lock:
            self._open -= 1
            self._per_client[client] -= 1
            if not self._per_client[client]:
                del self._per_client[client]


def _gated(method: str) -> bool:
    return method.startswith(GATED_PREFIXES) and method not in UNGATED
