"""Prometheus metrics on an injected registry, and the methods that record them.

Every metric hangs off the :class:`prometheus_client.CollectorRegistry` passed to
:class:`Metrics`, so two servers in one process (or one per test) never collide
("Duplicated timeseries"). The gRPC metrics use the names of
``go-grpc-prometheus`` / ``py-grpc-prometheus`` so existing dashboards work:

- ``grpc_server_started_total{grpc_service, grpc_method, grpc_type}``
- ``grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}``
- ``grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}`` (histogram)
- ``grpc_server_msg_received_total`` / ``grpc_server_msg_sent_total`` (same labels)

Counters and histograms are :mod:`~coldbridge_server.observability.fastmetrics` families
(sub-microsecond to record, same exposition); gauges and the info metric are
``prometheus_client``'s own. Callers record through methods of :class:`Metrics` (and the
:class:`GrpcSeries` it hands the interceptor), never by touching children or locks.
docs/operations.md's "Monitoring" section lists every metric; a test keeps it complete.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from enum import Enum
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Info,
    gc_collector,
    platform_collector,
    process_collector,
    start_http_server,
)

from coldbridge_server.observability.fastmetrics import FastCounter, FastHistogram

__all__ = ["GrpcSeries", "Metrics", "serve_metrics"]

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
        self._users: dict[str, Any] = {}
        self._answers: dict[tuple[Hashable, ...], tuple[Any, Any]] = {}
        if process_metrics:
            process_collector.ProcessCollector(registry=registry)
            platform_collector.PlatformCollector(registry=registry)
            gc_collector.GCCollector(registry=registry)
        r = registry
        lock = self._grpc_lock = threading.Lock()  # the grpc_server_* families (GrpcSeries)
        self.grpc_started = FastCounter(
            "grpc_server_started_total",
            "RPCs started on the server.",
            _GRPC_LABELS,
            registry=r,
            lock=lock,
        )
        self.grpc_handled = FastCounter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*_GRPC_LABELS, "grpc_code"),
            registry=r,
            lock=lock,
        )
        self.grpc_seconds = FastHistogram(
            "grpc_server_handling_seconds",
            "Time from RPC start to completion on the server.",
            _GRPC_LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r,
            lock=lock,
        )
        self.grpc_received = FastCounter(
            "grpc_server_msg_received_total",
            "Stream messages received.",
            _GRPC_LABELS,
            registry=r,
            lock=lock,
        )
        self.grpc_sent = FastCounter(
            "grpc_server_msg_sent_total",
            "Stream messages sent.",
            _GRPC_LABELS,
            registry=r,
            lock=lock,
        )
        self.recommendations = FastCounter(
            "coldbridge_recommendations_total",
            "Recommend/Score answers, by the path that produced them, the strategy and the "
            "user's lifecycle stage.",
            ("provenance", "strategy", "stage"),
            registry=r,
        )
        self.fallbacks = FastCounter(
            "coldbridge_fallbacks_total",
            "Answers served by the popularity fallback, by reason.",
            ("reason",),
            registry=r,
        )
        self.degraded_answers = FastCounter(
            "coldbridge_degraded_answers_total",
            "Recommend/Score answers that may miss acknowledged events (degraded_reason), by "
            "reason.",
            ("reason",),
            registry=r,
        )
        self.inference_seconds = FastHistogram(
            "coldbridge_inference_seconds",
            "onnxruntime session run time, by model.",
            ("model",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.topk_batch_size = FastHistogram(
            "coldbridge_topk_batch_size",
            "Recommend calls merged into one top-k model run.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.strategy_errors = FastCounter(
            "coldbridge_strategy_errors_total",
            "Strategy failures at request time.",
            ("strategy",),
            registry=r,
        )
        self.bundle_loads = FastCounter(
            "coldbridge_bundle_loads_total",
            "Bundle load attempts, by result (ok, error).",
            ("result",),
            registry=r,
        )
        self.bundle_info = Info("coldbridge_bundle", "The bundle being served.", registry=r)
        self.ready = Gauge(
            "coldbridge_ready", "1 once the bundle is loaded and warmed up, else 0.", registry=r
        )
        self._init_online(r)

    def _init_online(self, r: CollectorRegistry) -> None:
        # --- online learning (coldbridge.v1.Events; recorded by the streaming package) ---
        self.events_received = FastCounter(
            "coldbridge_events_received_total",
            "Streamed events received, by domain.",
            ("domain",),
            registry=r,
        )
        self.events_applied = FastCounter(
            "coldbridge_events_applied_total",
            "Streamed events durably logged and applied, by domain.",
            ("domain",),
            registry=r,
        )
        self.events_rejected = FastCounter(
            "coldbridge_events_rejected_total",
            "Streamed events rejected, by domain and reason.",
            ("domain", "reason"),
            registry=r,
        )
        self.event_apply_seconds = FastHistogram(
            "coldbridge_event_apply_seconds",
            "Time to validate, log (commit) and apply one group of batches.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ack_lag_seconds = FastHistogram(
            "coldbridge_ack_lag_seconds",
            "Time from receiving a batch to sending its ack.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_log_events = Gauge(
            "coldbridge_event_log_events", "Events in the durable event log.", registry=r
        )
        self.users = Gauge(
            "coldbridge_users",
            "Users with online state, by lifecycle stage.",
            ("stage",),
            registry=r,
        )
        self.online_updates_per_user = FastHistogram(
            "coldbridge_online_updates_per_user",
            "The user's total number of online updates, observed at each update (high "
            "buckets filling up = users warming up).",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.prequential_hits = FastCounter(
            "coldbridge_prequential_hits_total",
            "Target events whose item was in the user's top-K before learning from it.",
            ("strategy", "stage"),
            registry=r,
        )
        self.prequential_events = FastCounter(
            "coldbridge_prequential_events_total",
            "Target events evaluated prequentially (hit rate = hits / events).",
            ("strategy", "stage"),
            registry=r,
        )

        # --- storage faults, erasure and retention (recorded by streaming.ingest) ---
        self.storage_errors = FastCounter(
            "coldbridge_storage_errors_total",
            "Failed writes of the event log or snapshots and other writer-thread errors, by "
            "operation (append, snapshot, delete, compact, probe, apply, writer) and kind "
            "(full, io, other).",
            ("operation", "kind"),
            registry=r,
        )
        self.storage_ok = Gauge(
            "coldbridge_storage_ok",
            "1 while the durable state is writable (Events health SERVING), 0 during a storage "
            "fault or after an unrecoverable writer error.",
            registry=r,
        )
        self.storage_ok.set(1)
        self.events_erased = FastCounter(
            "coldbridge_events_erased_total",
            "Events deleted from the log, by reason (user: DeleteUser, retention: compaction).",
            ("reason",),
            registry=r,
        )

    def grpc_series(self, service: str, method: str, rpc_type: str) -> GrpcSeries:
        """The ``grpc_server_*`` series of one method (the interceptor binds them once)."""
        return GrpcSeries(self, (service, method, rpc_type), self._grpc_lock)

    def count_events(self, stage: str, domain: str, n: int = 1) -> None:
        """Add ``n`` streamed events of ``domain`` to ``coldbridge_events_<stage>_total``.

        ``stage`` is ``"received"`` or ``"applied"``.
        """
        family = self.events_received if stage == "received" else self.events_applied
        family.labels(domain).inc(n)

    def count_rejected(self, domain: str, reason: str) -> None:
        """Count one rejected streamed event."""
        self.events_rejected.labels(domain, reason).inc()

    def set_users(self, stage: str, count: int) -> None:
        """Set the number of users with online state in lifecycle stage ``stage``."""
        child = self._users.get(stage)
        if child is None:  # a prometheus_client gauge's labels() costs microseconds
            child = self._users.setdefault(stage, self.users.labels(stage))
        child.set(count)

    def count_strategy_error(self, strategy: str) -> None:
        """Count one failure of ``strategy`` at request time."""
        self.strategy_errors.labels(strategy).inc()

    def observe_prequential(self, strategy: str, stage: str, hit: bool) -> None:
        """Count one prequentially evaluated target event."""
        self.prequential_events.labels(strategy, stage).inc()
        if hit:
            self.prequential_hits.labels(strategy, stage).inc()

    def observe_inference(self, model: str, seconds: float) -> None:
        """Record one onnxruntime session run."""
        self.inference_seconds.labels(model).observe(seconds)

    def count_answer(
        self,
        provenance: Enum,
        strategy: str,
        fallback_reason: str,
        stage: Enum,
    ) -> None:
        """Count one Recommend/Score answer (and its fallback reason, if any).

        ``provenance`` and ``stage`` are the domain enums; their label is their ``value``.
        The children of each combination are looked up once and cached here.
        """
        key = (provenance, strategy, stage, fallback_reason)
        found = self._answers.get(key)
        if found is None:
            found = (
                self.recommendations.labels(provenance.value, strategy, stage.value),
                self.fallbacks.labels(fallback_reason) if fallback_reason else None,
            )
            self._answers[key] = found
        answers, fallbacks = found
        answers.inc()
        if fallbacks is not None:
            fallbacks.inc()


class GrpcSeries:
    """The ``grpc_server_*`` children of one method, recorded in one locked step per phase.

    The five ``grpc_server_*`` families share one lock, created and held only here, so a
    unary call costs two short critical sections: :meth:`begin` and :meth:`end`.

    Parameters
    ----------
    metrics
        The families.
    labels
        ``(grpc_service, grpc_method, grpc_type)``.
    lock
        The lock the five families were built with.
    """

    def __init__(
        self, metrics: Metrics, labels: tuple[str, str, str], lock: threading.Lock
    ) -> None:
        self.labels = labels
        self._lock = lock
        self._started = metrics.grpc_started.labels(*labels)
        self._seconds = metrics.grpc_seconds.labels(*labels)
        self._received = metrics.grpc_received.labels(*labels)
        self._sent = metrics.grpc_sent.labels(*labels)
        self._handled_family = metrics.grpc_handled
        self._handled: dict[str, Any] = {}

    def begin(self, received: int) -> None:
        """An RPC started, having received ``received`` messages so far."""
        with self._lock:
            self._started.value += 1
            self._received.value += received

    def received(self) -> None:
        """One more stream message received."""
        with self._lock:
            self._received.value += 1

    def sent(self) -> None:
        """One more stream message sent."""
        with self._lock:
            self._sent.value += 1

    def end(self, code: str, elapsed: float, sent: int) -> None:
        """The RPC ended with ``code`` after ``elapsed`` seconds, sending ``sent`` more."""
        handled, seconds = self._handled_child(code), self._seconds
        bucket = seconds.bucket(elapsed)
        with self._lock:
            self._sent.value += sent
            handled.value += 1
            seconds.counts[bucket] += 1
            seconds.total += elapsed

    def _handled_child(self, code: str) -> Any:
        child = self._handled.get(code)
        if child is None:
            child = self._handled.setdefault(code, self._handled_family.labels(*self.labels, code))
        return child


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> tuple[Any, int]:
    """Serve ``/metrics`` over HTTP on its own port; returns ``(server, bound_port)``."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, int(server.server_port)
