"""Prometheus metrics on an injected registry, and the gRPC server interceptor.

Every metric hangs off the :class:`prometheus_client.CollectorRegistry` passed to
:class:`Metrics`, so two servers in one process (or one per test) never collide
("Duplicated timeseries"). The gRPC metrics use the names of
``go-grpc-prometheus`` / ``py-grpc-prometheus`` so existing dashboards work:

- ``grpc_server_started_total{grpc_service, grpc_method, grpc_type}``
- ``grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}``
- ``grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}`` (histogram)
- ``grpc_server_msg_received_total`` / ``grpc_server_msg_sent_total`` (same labels)

The README's "Monitoring" section lists every metric; a test keeps it complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    start_http_server,
)
from prometheus_client import gc_collector, platform_collector, process_collector

__all__ = ["Metrics", "MetricsInterceptor", "serve_metrics"]

_GRPC_LABELS = ("grpc_service", "grpc_method", "grpc_type")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """All coldbridge metrics, registered on ``registry``.

    Parameters
    ----------
    registry
        Where to register. Tests pass a fresh ``CollectorRegistry()``.
    process_metrics
        Also register the default process, platform and GC collectors.
    """

    def __init__(self, registry: CollectorRegistry, *, process_metrics: bool = True) -> None:
        self.registry = registry
        if process_metrics:
            process_collector.ProcessCollector(registry=registry)
            platform_collector.PlatformCollector(registry=registry)
            gc_collector.GCCollector(registry=registry)
        r = registry
        self.grpc_started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS, registry=r
        )
        self.grpc_handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*_GRPC_LABELS, "grpc_code"),
            registry=r,
        )
        self.grpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from RPC start to completion on the server.",
            _GRPC_LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.grpc_received = Counter(
            "grpc_server_msg_received_total", "Stream messages received.", _GRPC_LABELS, registry=r
        )
        self.grpc_sent = Counter(
            "grpc_server_msg_sent_total", "Stream messages sent.", _GRPC_LABELS, registry=r
        )
        self.recommendations = Counter(
            "coldbridge_recommendations_total",
            "Recommend/Score answers, by the path that produced them and the strategy.",
            ("provenance", "strategy"),
            registry=r,
        )
        self.fallbacks = Counter(
            "coldbridge_fallbacks_total", "Answers served by the popularity fallback, by reason.",
            ("reason",), registry=r,
        )
        self.inference_seconds = Histogram(
            "coldbridge_inference_seconds", "onnxruntime session run time, by model.",
            ("model",), buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.strategy_errors = Counter(
            "coldbridge_strategy_errors_total", "Strategy failures at request time.",
            ("strategy",), registry=r,
        )
        self.bundle_loads = Counter(
            "coldbridge_bundle_loads_total", "Bundle load attempts, by result (ok, error).",
            ("result",), registry=r,
        )
        self.bundle_info = Info(
            "coldbridge_bundle", "The bundle being served.", registry=r
        )
        self.ready = Gauge(
            "coldbridge_ready", "1 once the bundle is loaded and warmed up, else 0.", registry=r
        )

    def observe_inference(self, model: str, seconds: float) -> None:
        """Record one onnxruntime session run."""
        self.inference_seconds.labels(model).observe(seconds)

    def count_answer(self, provenance: str, strategy: str, fallback_reason: str) -> None:
        """Count one Recommend/Score answer (and its fallback reason, if any)."""
        self.recommendations.labels(provenance, strategy).inc()
        if fallback_reason:
            self.fallbacks.labels(fallback_reason).inc()


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> tuple[Any, int]:
    """Serve ``/metrics`` over HTTP on its own port; returns ``(server, bound_port)``."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, int(server.server_port)


def _split(full_method: str) -> tuple[str, str]:
    _, service, method = full_method.split("/", 2)
    return service, method


def _code_name(context: grpc.ServicerContext, failed: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if failed else "OK"


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every RPC once, whatever its type."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service, method = _split(details.method)
        kind = ("bidi_stream" if handler.response_streaming else "client_stream") \
            if handler.request_streaming else \
            ("server_stream" if handler.response_streaming else "unary")
        labels = (service, method, kind)
        behaviour = next(
            b for b in (handler.unary_unary, handler.unary_stream, handler.stream_unary, handler.stream_stream)
            if b is not None
        )
        wrapped = self._wrap(behaviour, labels, handler.request_streaming, handler.response_streaming)
        factory = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(handler.request_streaming, handler.response_streaming)]
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, behaviour: Callable[..., Any], labels: tuple[str, str, str],
              req_stream: bool, resp_stream: bool) -> Callable[..., Any]:
        m = self._m

        def count_in(requests: Iterator[Any]) -> Iterator[Any]:
            for request in requests:
                m.grpc_received.labels(*labels).inc()
                yield request

        def finish(context: grpc.ServicerContext, start: float, failed: bool) -> None:
            m.grpc_seconds.labels(*labels).observe(time.perf_counter() - start)
            m.grpc_handled.labels(*labels, _code_name(context, failed)).inc()

        def unary_response(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            m.grpc_started.labels(*labels).inc()
            if req_stream:
                request = count_in(request)
            else:
                m.grpc_received.labels(*labels).inc()
            try:
                response = behaviour(request, context)
            except BaseException:
                finish(context, start, True)
                raise
            m.grpc_sent.labels(*labels).inc()
            finish(context, start, False)
            return response

        def stream_response(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            m.grpc_started.labels(*labels).inc()
            if req_stream:
                request = count_in(request)
            else:
                m.grpc_received.labels(*labels).inc()
            try:
                for response in behaviour(request, context):
                    m.grpc_sent.labels(*labels).inc()
                    yield response
            except BaseException:
                finish(context, start, True)
                raise
            finish(context, start, False)

        return stream_response if resp_stream else unary_response
