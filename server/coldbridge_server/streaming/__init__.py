"""The write path: validate streamed events, log them durably, learn online, recover.

Modules: ``validate`` (events as domain objects and their checks), ``store`` (the durable
state interface) and ``sqlite_store`` (its SQLite implementation), ``online`` (the River
learner), ``update`` (events -> user states), ``ingest`` (queue and writer thread),
``replay`` (snapshot + log recovery), ``servicer`` (``coldbridge.v1.Events``). Streaming never
imports :mod:`coldbridge_server.serving`; both meet in :mod:`coldbridge_server.core`.
"""

from __future__ import annotations

from coldbridge_server.streaming.ingest import BatchResult, Ingestor, Pending
from coldbridge_server.streaming.online import ColdStartEmbeddings
from coldbridge_server.streaming.servicer import EVENTS_SERVICE_NAME, EventsServicer
from coldbridge_server.streaming.sqlite_store import SqliteEventStore
from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import Domain, Event, Kind, Reason, Rejection

__all__ = [
    "EVENTS_SERVICE_NAME",
    "BatchResult",
    "ColdStartEmbeddings",
    "Domain",
    "Event",
    "EventStore",
    "EventsServicer",
    "Ingestor",
    "Kind",
    "OnlineUpdater",
    "Pending",
    "Reason",
    "Rejection",
    "SqliteEventStore",
]
