"""Rebuild the users' online state for a new bundle from the durable event log.

The log is read through the :class:`~coldbridge_server.streaming.store.EventStore` interface,
a chunk at a time, each read under the ingest writer's lock (the store is used by one thread
at a time); the chunk is applied outside the lock, so the old bundle keeps ingesting and
answering meanwhile. When a read comes back short, the log tail is read and applied under
the lock, and the caller swaps before releasing it: no event acknowledged in between is
missed or applied twice. As in start-up recovery (:mod:`coldbridge_server.streaming.replay`),
events of items the new bundle lacks are skipped (and counted here), and each event is applied
with the time it was logged at (``received_at``, the live apply's time), so a rebuilt state
equals the one a restart on the new bundle recovers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby, islice

from coldbridge_server.errors import NotReadyError
from coldbridge_server.streaming.ingest import Ingestor
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import Event, validate

__all__ = ["CHUNK", "Replay", "replay_log"]

CHUNK = 512
"""Events read per lock hold (bounds the writer's pause and the chunk's memory)."""
YIELD = 1.0
"""After applying a chunk, sleep this many times its apply time: the rebuild holds the GIL
at most 1 / (1 + YIELD) of the time, so request threads keep their latency."""


@dataclass
class Replay:
    """Progress of a rebuild: applied and skipped events, the last log position read."""

    applied: int = 0
    skipped: int = 0
    seq: int = 0


@contextmanager
def paused(ingestor: Ingestor) -> Iterator[None]:
    """Hold the writer's lock; refuse if the ingest stopped (the store may be closed)."""
    with ingestor.writer_lock:
        if not ingestor.running:
            raise NotReadyError("the event ingest is not running (shutting down?)")
        yield


def replay_log(
    ingestor: Ingestor, updater: OnlineUpdater, swap: Callable[[Replay], None]
) -> Replay:
    """Apply the whole log to ``updater``, then call ``swap`` with the writer paused.

    Raises
    ------
    NotReadyError
        If the ingest stops during the rebuild (nothing is swapped).
    """
    progress = Replay()
    while True:
        with paused(ingestor):
            chunk = _read(ingestor, progress.seq, CHUNK)
            if len(chunk) < CHUNK:  # the tail: finish and swap with the writer paused
                _apply(updater, chunk, progress)
                _apply(updater, _read(ingestor, progress.seq, None), progress)
                swap(progress)
                return progress
        start = time.perf_counter()
        _apply(updater, chunk, progress)
        time.sleep(YIELD * (time.perf_counter() - start))


_Logged = tuple[int, Event, float]


def _read(ingestor: Ingestor, seq: int, limit: int | None) -> list[_Logged]:
    events = ingestor.store.received_after(seq)
    try:
        return list(islice(events, limit))
    finally:
        close = getattr(events, "close", None)
        if close is not None:  # a generator: release its cursor now
            close()


def _apply(updater: OnlineUpdater, chunk: list[_Logged], progress: Replay) -> None:
    if not chunk:
        return
    progress.seq = chunk[-1][0]
    # a logged batch shares one received_at: applied together, as the writer applied it
    for received_at, rows in groupby(chunk, key=lambda row: row[2]):
        events = [event for _, event, _ in rows]
        valid = [event for event in events if validate(event, updater.bundle) is None]
        progress.skipped += len(events) - len(valid)
        progress.applied += len(valid)
        if valid:
            updater.apply_many(valid, received_at, evaluate=False)
