"""Wiring of the Redis store (``store = "redis"``): the replicated ingestor and its gauge.

Kept out of ``app.py`` so that the SQLite path is untouched; docs/scaling.md describes the
design.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge

from coldbridge_server.config import Settings
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.streaming.redis_fleet import FleetBeacon
from coldbridge_server.streaming.redis_store import RedisEventStore, connect
from coldbridge_server.streaming.replicated import ReplicatedIngestor
from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.update import OnlineUpdater

__all__ = ["build_replicated"]


def build_replicated(
    settings: Settings, updater: OnlineUpdater, metrics: Metrics | None = None
) -> ReplicatedIngestor:
    """The ingestor over the Redis log of ``settings.redis_url`` (opened at recovery)."""

    def open_store() -> EventStore:
        return RedisEventStore(
            settings.redis_url,
            partitions=settings.redis_partitions,
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout=settings.redis_wait_timeout_seconds,
            timeout=settings.redis_timeout_seconds,
        )

    rebootstraps = None
    if metrics is not None:
        rebootstraps = Counter(
            "coldbridge_replica_rebootstraps",
            "Store redis: partitions this replica re-bootstrapped from their snapshot because "
            "retention deleted log entries it had not applied yet (it fell behind or was "
            "paused).",
            registry=metrics.registry,
        )
    ingestor = ReplicatedIngestor(
        open_store,
        updater,
        follow_block_ms=settings.redis_follow_ms,
        on_rebootstrap=None if rebootstraps is None else rebootstraps.inc,
        queue_size=settings.ingest_queue_size,
        snapshot_every=settings.snapshot_every_events,
        metrics=metrics,
        retention_seconds=settings.event_retention_seconds,
        retention_events=settings.event_retention_events,
        retry_seconds=settings.storage_retry_seconds,
    )
    if metrics is not None:
        lag = Gauge(
            "coldbridge_replica_lag_seconds",
            "Store redis: seconds since this replica last read the end of the shared event "
            "log (stays below a second while Redis answers; grows during a Redis outage, "
            "while Recommend serves the states in memory).",
            registry=metrics.registry,
        )
        lag.set_function(lambda: time.time() - ingestor.last_caught_up)
        ingestor.beacon = _fleet_beacon(settings, ingestor, metrics)
    return ingestor


def _fleet_beacon(
    settings: Settings, ingestor: ReplicatedIngestor, metrics: Metrics
) -> FleetBeacon:
    """The heartbeat of this replica's bundle version, and the fleet view's gauges."""
    versions = Gauge(
        "coldbridge_fleet_bundle_versions",
        "Store redis: distinct bundle versions served by the live replicas of the keyspace "
        "(from their heartbeats in Redis); above 1 during a roll-out's mixed-version window.",
        registry=metrics.registry,
    )
    replicas = Gauge(
        "coldbridge_fleet_replicas",
        "Store redis: live replicas of the keyspace per bundle version they serve.",
        ("version",),
        registry=metrics.registry,
    )
    shown: set[str] = set()

    def show(view: dict[str, int]) -> None:
        versions.set(len(view))
        for version, count in view.items():
            replicas.labels(version).set(count)
        for gone in shown - view.keys():
            replicas.remove(gone)
        shown.clear()
        shown.update(view)

    return FleetBeacon(
        lambda: connect(settings.redis_url, settings.redis_timeout_seconds),
        lambda: ingestor.bundle.version,
        settings.replica_heartbeat_seconds,
        show,
    )
