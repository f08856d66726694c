"""Rows of :class:`~coldbridge_server.streaming.sqlite_store.SqliteEventStore`: events and
user states <-> SQLite values."""

from __future__ import annotations

from typing import Any

import numpy as np

from coldbridge_server.core import UserState
from coldbridge_server.streaming.validate import Domain, Event, Kind

__all__ = ["decode_state", "encode_state", "event_row"]

_DOMAIN_NAMES: dict[Domain | None, str] = {d: d.value for d in Domain}
_KIND_NAMES: dict[Kind | None, str] = {k: k.value for k in Kind}

_Row = tuple[int, str, str, str, str, str, float, float, float]


def event_row(seq: int, event: Event, received_at: float) -> _Row:
    """The ``events`` row of a validated event (its domain and kind are set)."""
    return (
        seq,
        event.event_id,
        event.user_id,
        event.item_id,
        _DOMAIN_NAMES[event.domain],
        _KIND_NAMES[event.kind],
        event.value,
        event.timestamp or received_at,
        received_at,
    )


def _blob(array: np.ndarray | None, dtype: type[np.generic]) -> bytes | None:
    return None if array is None else np.asarray(array, dtype=dtype).tobytes()


def _array(blob: bytes | None, dtype: type[np.generic]) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=dtype).copy()


_COUNTERS = (
    '{"source_history": [%s], "source_events": %d, "target_events": %d, '
    '"online_updates": %d, "last_update": %r, "seen": [%s]}'
)


def encode_state(s: UserState) -> tuple[str, str, bytes | None, bytes | None]:
    # the JSON that json.dumps writes for these counters, formatted directly (2-3x faster)
    counters = _COUNTERS % (
        ", ".join(map(str, s.source_history)),
        s.source_events,
        s.target_events,
        s.online_updates,
        float(s.last_update),
        ", ".join(map(str, sorted(s.seen))),
    )
    return s.user_id, counters, _blob(s.prior, np.float32), _blob(s.delta, np.float64)


def decode_state(
    user_id: str, c: dict[str, Any], prior_blob: bytes | None, delta_blob: bytes | None
) -> UserState:
    """A stored state; ``vector`` is left to the caller (it needs the bundle's prior)."""
    prior, delta = _array(prior_blob, np.float32), _array(delta_blob, np.float64)
    if prior is not None:
        prior.setflags(write=False)
    return UserState(
        user_id,
        tuple(c["source_history"]),
        prior,
        delta,
        None,
        c["source_events"],
        c["target_events"],
        c["online_updates"],
        c["last_update"],
        frozenset(c["seen"]),
    )
