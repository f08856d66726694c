"""Prometheus metrics on an injected registry (recorded by :mod:`coldbridge_server.interceptor`).

Every metric hangs off the :class:`prometheus_client.CollectorRegistry` passed to
:class:`Metrics`, so two servers in one process (or one per test) never collide
("Duplicated timeseries"). The gRPC metrics use the names of
``go-grpc-prometheus`` / ``py-grpc-prometheus`` so existing dashboards work:

- ``grpc_server_started_total{grpc_service, grpc_method, grpc_type}``
- ``grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}``
- ``grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}`` (histogram)
- ``grpc_server_msg_received_total`` / ``grpc_server_msg_sent_total`` (same labels)

Counters and histograms are :mod:`coldbridge_server.fastmetrics` families (sub-microsecond
to record, same exposition); gauges and the info metric are ``prometheus_client``'s own.
The README's "Monitoring" section lists every metric; a test keeps it complete.
"""

from __future__ import annotations

import threading
from enum import Enum
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Info, start_http_server
from prometheus_client import gc_collector, platform_collector, process_collector

from coldbridge_server.fastmetrics import FastCounter, FastHistogram

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
        self._answers: dict[tuple[int, str, int, str], tuple[Any, Any]] = {}
        self._keep: list[tuple[Any, Any]] = []
        if process_metrics:
            process_collector.ProcessCollector(registry=registry)
            platform_collector.PlatformCollector(registry=registry)
            gc_collector.GCCollector(registry=registry)
        r = registry
        lock = threading.Lock()  # the five grpc_server_* families: one update per call phase
        self.grpc_started = FastCounter(
            "grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS, registry=r,
            lock=lock,
        )
        self.grpc_handled = FastCounter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*_GRPC_LABELS, "grpc_code"),
            registry=r, lock=lock,
        )
        self.grpc_seconds = FastHistogram(
            "grpc_server_handling_seconds",
            "Time from RPC start to completion on the server.",
            _GRPC_LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r, lock=lock,
        )
        self.grpc_received = FastCounter(
            "grpc_server_msg_received_total", "Stream messages received.", _GRPC_LABELS,
            registry=r, lock=lock,
        )
        self.grpc_sent = FastCounter(
            "grpc_server_msg_sent_total", "Stream messages sent.", _GRPC_LABELS,
            registry=r, lock=lock,
        )
        self.recommendations = FastCounter(
            "coldbridge_recommendations_total",
            "Recommend/Score answers, by the path that produced them, the strategy and the "
            "user's lifecycle stage.",
            ("provenance", "strategy", "stage"),
            registry=r,
        )
        self.fallbacks = FastCounter(
            "coldbridge_fallbacks_total", "Answers served by the popularity fallback, by reason.",
            ("reason",), registry=r,
        )
        self.inference_seconds = FastHistogram(
            "coldbridge_inference_seconds", "onnxruntime session run time, by model.",
            ("model",), buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.topk_batch_size = FastHistogram(
            "coldbridge_topk_batch_size", "Recommend calls merged into one top-k model run.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
        )
        self.strategy_errors = FastCounter(
            "coldbridge_strategy_errors_total", "Strategy failures at request time.",
            ("strategy",), registry=r,
        )
        self.bundle_loads = FastCounter(
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
        self.events_received = FastCounter(
            "coldbridge_events_received_total", "Streamed events received, by domain.",
            ("domain",), registry=r,
        )
        self.events_applied = FastCounter(
            "coldbridge_events_applied_total",
            "Streamed events durably logged and applied, by domain.", ("domain",), registry=r,
        )
        self.events_rejected = FastCounter(
            "coldbridge_events_rejected_total", "Streamed events rejected, by domain and reason.",
            ("domain", "reason"), registry=r,
        )
        self.event_apply_seconds = FastHistogram(
            "coldbridge_event_apply_seconds",
            "Time to validate, log (commit) and apply one group of batches.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.ack_lag_seconds = FastHistogram(
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
        self.online_updates_per_user = FastHistogram(
            "coldbridge_online_updates_per_user",
            "The user's total number of online updates, observed at each update (high "
            "buckets filling up = users warming up).",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=r,
        )
        self.prequential_hits = FastCounter(
            "coldbridge_prequential_hits_total",
            "Target events whose item was in the user's top-K before learning from it.",
            ("strategy", "stage"), registry=r,
        )
        self.prequential_events = FastCounter(
            "coldbridge_prequential_events_total",
            "Target events evaluated prequentially (hit rate = hits / events).",
            ("strategy", "stage"), registry=r,
        )

    def count_events(self, family: Any, domain: str, n: int = 1, reason: str = "") -> None:
        """Add ``n`` to one of the ``events_*`` counters (``reason`` for rejections)."""
        labels = (domain, reason) if reason else (domain,)
        family.labels(*labels).inc(n)

    def observe_prequential(self, strategy: str, stage: str, hit: bool) -> None:
        """Count one prequentially evaluated target event."""
        self.prequential_events.labels(strategy, stage).inc()
        if hit:
            self.prequential_hits.labels(strategy, stage).inc()

    def child(self, family: Any, *labels: str) -> Any:
        """``family.labels(*labels)`` of a ``prometheus_client`` gauge, cached (its ``labels()``
        costs microseconds; the fast families cache their children themselves)."""
        key = (id(family), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children.setdefault(key, family.labels(*labels))
        return found

    def observe_inference(self, model: str, seconds: float) -> None:
        """Record one onnxruntime session run."""
        self.inference_seconds.labels(model).observe(seconds)

    def count_answer(
        self, provenance: Enum | str, strategy: str, fallback_reason: str,
        stage: Enum | str = "new",
    ) -> None:
        """Count one Recommend/Score answer (and its fallback reason, if any).

        ``provenance`` and ``stage`` may be the enum members themselves: the children are
        cached by member identity, which skips the (slow) ``Enum.value`` / ``Enum.__hash__``
        on the serving path.
        """
        key = (id(provenance), strategy, id(stage), fallback_reason)
        found = self._answers.get(key)
        if found is None:
            labels = [getattr(x, "value", x) for x in (provenance, strategy, stage)]
            found = (self.recommendations.labels(*labels),
                     self.fallbacks.labels(fallback_reason) if fallback_reason else None)
            self._keep.append((provenance, stage))  # ids stay valid while we hold them
            self._answers[key] = found
        answers, fallbacks = found
        answers.inc()
        if fallbacks is not None:
            fallbacks.inc()


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> tuple[Any, int]:
    """Serve ``/metrics`` over HTTP on its own port; returns ``(server, bound_port)``."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, int(server.server_port)
