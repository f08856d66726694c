"""Rebuild the users' online state for a new bundle from the durable event log.

The log is read through the :class:`~coldbridge_server.streaming.store.EventStore` interface,
a chunk at a time, each read under the ingest writer's lock (the store is used by one thread
at a time); the chunk is applied outside the lock, so the old bundle keeps ingesting and
answering meanwhile. When a read comes back short, the log tail is read and applied under
the lock, and the caller swaps before releasing it: no event acknowledged in between is
missed or applied twice. Under an ingest rate the rebuild cannot outpace, reads never come
back short: after catching up ``ROUNDS`` times with where the log ended when the round
began, the rest is applied with the writer paused (the pause is what arrived during the
last round), so a rebuild always ends. Users erased meanwhile
(:attr:`~coldbridge_server.streaming.ingest.Ingestor.erased_during_rebuild`) are forgotten
before the next chunk: their events read earlier are gone from the log, later ones follow.

As in start-up recovery (:mod:`coldbridge_server.streaming.replay`), events of items the new
bundle lacks are skipped (and counted here), and a user's ``last_update`` is the time their
last event was logged at (``received_at``, the live apply's time), so a rebuilt state equals
the one a restart on the new bundle recovers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from coldbridge_server.errors import NotReadyError
from coldbridge_server.streaming.ingest import Ingestor
from coldbridge_server.streaming.store import Logged
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import validate

__all__ = ["CHUNK", "ROUNDS", "Replay", "replay_log"]

CHUNK = 512
"""Events read per lock hold (bounds the writer's pause and the chunk's memory)."""
ROUNDS = 3
"""Catch-ups with the log end, with ingest running, before the rest is read with it paused."""
YIELD = 1.0
"""After applying a chunk, sleep this many times its apply time: the rebuild holds the GIL
at most 1 / (1 + YIELD) of the time, so request threads keep their latency."""


@dataclass
class Replay:
    """Progress of a rebuild: applied and skipped events, and where the log was read up to
    (the store's opaque cursor of :meth:`EventStore.read_chunk
    <coldbridge_server.streaming.store.EventStore.read_chunk>`)."""

    applied: int = 0
    skipped: int = 0
    cursor: Any = None


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
    progress, rounds, erased = Replay(), 1, set[str]()
    with paused(ingestor):
        end = ingestor.store.read_end()
        ingestor.erased_during_rebuild = erased
    try:
        while True:
            with paused(ingestor):
                for user_id in erased:
                    updater.forget(user_id)
                erased.clear()
                chunk = _read(ingestor, progress, CHUNK)
                if len(chunk) < CHUNK or rounds >= ROUNDS:  # the tail: finish, swap, paused
                    _apply(updater, chunk, progress)
                    _apply(updater, _read(ingestor, progress, None), progress)
                    swap(progress)
                    return progress
                if ingestor.store.read_covers(progress.cursor, end):
                    rounds, end = rounds + 1, ingestor.store.read_end()
            start = time.perf_counter()
            _apply(updater, chunk, progress)
            time.sleep(YIELD * (time.perf_counter() - start))
    finally:
        with ingestor.writer_lock:
            ingestor.erased_during_rebuild = None


def _read(ingestor: Ingestor, progress: Replay, limit: int | None) -> list[Logged]:
    chunk, progress.cursor = ingestor.store.read_chunk(progress.cursor, limit)
    return chunk


def _apply(updater: OnlineUpdater, chunk: list[Logged], progress: Replay) -> None:
    if not chunk:
        return
    valid = [row for row in chunk if validate(row[0], updater.bundle) is None]
    progress.skipped += len(chunk) - len(valid)
    progress.applied += len(valid)
    if not valid:
        return
    # one apply_many for the chunk (the rebuild must outpace the live writer, which applies
    # whole groups), then each user's last_update set to their last event's received_at:
    # what recovery's per-event apply leaves
    updater.apply_many([event for event, _ in valid], valid[-1][1], evaluate=False)
    logged = {event.user_id: received_at for event, received_at in valid}
    for user_id, received_at in logged.items():
        state = updater.states.get(user_id)
        if state is not None and state.last_update != received_at:
            updater.states.publish(dataclasses.replace(state, last_update=received_at))
