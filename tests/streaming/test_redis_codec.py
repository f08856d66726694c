"""A logged event's ``e`` field is the JSON of its SQLite row's value columns, formatted
without ``json.dumps`` (the writer encodes one per event), and decodes to the event as the
writer applies it from memory (a missing event time is the receive time)."""

from __future__ import annotations

import json
import math

import pytest
from coldbridge_server.streaming.redis_codec import decode_entry, encode_entry
from coldbridge_server.streaming.sqlite_codec import event_row
from coldbridge_server.streaming.validate import Domain, Event, Kind

RECEIVED = 1_700_000_123.456789

EVENTS = [
    Event("e1", "u1", "t1", Domain.TARGET, Kind.IMPLICIT),
    Event("e2", "u1", "s1", Domain.SOURCE, Kind.IMPLICIT, 0.0, 1_650_000_000.25),
    Event("e3", "u2", "t2", Domain.TARGET, Kind.RATING, 4.5, 1e-7),
    Event("e4", "ü", 'quote " back \\ slash', Domain.TARGET, Kind.RATING, -0.1, 0.0),
    Event("e5", "u3", "tab\tnew\nline\x00ñ€😀", Domain.SOURCE, Kind.RATING, 1e300, 2.0**40),
    Event("e6", "u4", "t3", Domain.TARGET, Kind.RATING, 1 / 3, 1_700_000_000.1 + 1e-6),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event_id)
def test_entry_is_the_json_of_the_row_and_decodes_to_the_logged_event(event: Event) -> None:
    text = encode_entry(event, RECEIVED)
    assert text == json.dumps(event_row(0, event, RECEIVED)[3:]) and text.isascii()
    fields = {b"i": event.event_id.encode(), b"u": event.user_id.encode(), b"e": text.encode()}
    decoded = decode_entry(fields)
    assert decoded == event._replace(timestamp=event.timestamp or RECEIVED)
    assert isinstance(decoded, Event)
    assert decoded.domain is event.domain and decoded.kind is event.kind


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_value_is_still_valid_for_json_loads(value: float) -> None:
    event = Event("e7", "u5", "t1", Domain.TARGET, Kind.IMPLICIT, value)
    text = encode_entry(event, RECEIVED)
    assert text == json.dumps(event_row(0, event, RECEIVED)[3:])
    decoded = decode_entry({b"i": b"e7", b"u": b"u5", b"e": text.encode()})
    assert isinstance(decoded, Event)
    assert decoded.value == value or (math.isnan(decoded.value) and math.isnan(value))
