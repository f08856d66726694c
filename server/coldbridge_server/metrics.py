"""Prometheus metrics on an injected registry (recorded by :mod:`coldbridge_server.interceptor`).

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

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    start_http_server,
)
from prometheus_client import gc_collector, platform_collector, process_collector

__all__ = ["Metrics", "serve_metrics"]

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
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
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
            "Recommend/Score answers, by the path that produced them, the strategy and the "
            "user's lifecycle stage.",
            ("provenance", "strategy", "stage"),
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
        self.topk_batch_size = Histogram(
            "coldbridge_topk_batch_size", "Recommend calls merged into one top-k model run.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
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
        self._init_online(r)

    def _init_online(self, r: CollectorRegistry) -> None:
        # --- online learning (coldbridge.v1.Events; recorded by ingest.py / events_servicer.py) ---
        self.events_received = Counter(
            "coldbridge_events_received_total", "Streamed events received, by domain.",
            ("domain",), registry=r,
        )
        self.events_applied = Counter(
            "coldbridge_events_applied_total",
            "Streamed events durably logged and applied, by domain.", ("domain",), registry=r,
        )
        self.events_rejected = Counter(
            "coldbridge_events_rejected_total", "Streamed events rejected, by domain and reason.",
            ("domain", "reason"), registry=r,
        )
        self.event_apply_seconds = Histogram(
            "coldbridge_event_apply_seconds",
            "Time to validate, log (commit) and apply one group of batches.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.ack_lag_seconds = Histogram(
            "coldbridge_ack_lag_seconds", "Time from receiving a batch to sending its ack.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.event_log_events = Gauge(
            "coldbridge_event_log_events", "Events in the durable event log.", registry=r
        )
        self.users = Gauge(
            "coldbridge_users", "Users with online state, by lifecycle stage.", ("stage",),
            registry=r,
        )
        self.online_updates_per_user = Histogram(
            "coldbridge_online_updates_per_user",
            "The user's total number of online updates, observed at each update (high "
            "buckets filling up = users warming up).",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=r,
        )
        self.prequential_hits = Counter(
            "coldbridge_prequential_hits_total",
            "Target events whose item was in the user's top-K before learning from it.",
            ("strategy", "stage"), registry=r,
        )
        self.prequential_events = Counter(
            "coldbridge_prequential_events_total",
            "Target events evaluated prequentially (hit rate = hits / events).",
            ("strategy", "stage"), registry=r,
        )

    def count_events(self, family: Any, domain: str, n: int = 1, reason: str = "") -> None:
        """Add ``n`` to one of the ``events_*`` counters (``reason`` for rejections)."""
        labels = (domain, reason) if reason else (domain,)
        self.child(family, *labels).inc(n)

    def observe_prequential(self, strategy: str, stage: str, hit: bool) -> None:
        """Count one prequentially evaluated target event."""
        self.child(self.prequential_events, strategy, stage).inc()
        if hit:
            self.child(self.prequential_hits, strategy, stage).inc()

    def child(self, family: Any, *labels: str) -> Any:
        """``family.labels(*labels)``, cached: ``labels()`` costs microseconds per call."""
        key = (id(family), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children.setdefault(key, family.labels(*labels))
        return found

    def observe_inference(self, model: str, seconds: float) -> None:
        """Record one onnxruntime session run."""
        self.child(self.inference_seconds, model).observe(seconds)

    def count_answer(
        self, provenance: str, strategy: str, fallback_reason: str, stage: str = "new"
    ) -> None:
        """Count one Recommend/Score answer (and its fallback reason, if any)."""
        self.child(self.recommendations, provenance, strategy, stage).inc()
        if fallback_reason:
            self.child(self.fallbacks, fallback_reason).inc()


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> tuple[Any, int]:
    """Serve ``/metrics`` over HTTP on its own port; returns ``(server, bound_port)``."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, int(server.server_port)
