"""Streamed events as domain objects, and their validation into per-event rejections.

An :class:`Event` is what the servicer makes of a ``coldbridge.v1.Event``; unknown enum values
arrive as ``None`` so that validation, not the translator, rejects them.
:func:`validate` checks one event against the bundle and returns ``(reason, message)`` or
``None``; :func:`is_plain_target` is its fast path for the common event (a well-formed
implicit target event). :func:`admit` splits a batch for the ingest writer, which owns the
set of applied event ids (duplicates). :func:`check_batch` holds the stream protocol checks
of a whole batch.

:class:`EventPolicy` holds the input limits a client's event must also meet before it is
queued (checked by the servicer, so a bad event never reaches the writer's group commit):
a finite ``value`` of any kind, a rating within ``[min_rating, max_rating]`` and only for a
bundle trained on explicit feedback, a valid timestamp, ids of at most ``max_id_bytes``.
:func:`validate` alone decides what replay applies: events logged under other limits stay
applied after a restart.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from coldbridge_server.bundle import Bundle
from coldbridge_server.errors import InvalidRequestError
from coldbridge_server.limits import check_id, shorten, timestamp_problem

__all__ = [
    "Domain",
    "Event",
    "EventPolicy",
    "Kind",
    "Reason",
    "Rejection",
    "admit",
    "check_batch",
    "is_plain_target",
    "validate",
]


class Domain(enum.Enum):
    """The domain an event happened in."""

    SOURCE = "source"
    TARGET = "target"


class Kind(enum.Enum):
    """Feedback kind: an implicit interaction or an explicit rating."""

    IMPLICIT = "implicit"
    RATING = "rating"


class Reason(enum.Enum):
    """Why an event is rejected (mirrors the proto enum ``RejectionReason``)."""

    EMPTY_ID = "empty_id"
    UNKNOWN_DOMAIN = "unknown_domain"
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_ITEM = "unknown_item"
    INVALID_VALUE = "invalid_value"
    DUPLICATE_EVENT = "duplicate_event"


class Event(NamedTuple):
    """One interaction; ``timestamp`` is Unix seconds (0 = unknown).

    A named tuple: immutable, several times cheaper to build than a frozen dataclass (one is
    built per streamed event), and its fields are read by name as fast as by index.
    """

    event_id: str
    user_id: str
    item_id: str
    domain: Domain | None
    kind: Kind | None
    value: float = 0.0
    timestamp: float = 0.0


@dataclass(frozen=True)
class Rejection:
    """A rejected event: its position in the batch, id, reason and a message."""

    index: int
    event_id: str
    reason: Reason
    message: str


def validate(event: Event, bundle: Bundle) -> tuple[Reason, str] | None:
    """Return ``(reason, message)`` if ``event`` cannot be applied to ``bundle``, else ``None``."""
    for name in ("event_id", "user_id", "item_id"):
        if not getattr(event, name):
            return Reason.EMPTY_ID, f"{name} must be non-empty"
    if event.domain is None:
        return Reason.UNKNOWN_DOMAIN, "domain must be DOMAIN_SOURCE or DOMAIN_TARGET"
    if event.kind is None:
        return Reason.UNKNOWN_KIND, "kind must be EVENT_KIND_IMPLICIT or EVENT_KIND_RATING"
    if event.kind is Kind.RATING and not math.isfinite(event.value):
        return Reason.INVALID_VALUE, f"rating must be finite, got {event.value}"
    index = bundle.source_item_index if event.domain is Domain.SOURCE else bundle.target_item_index
    if event.item_id not in index:
        name = bundle.source_domain if event.domain is Domain.SOURCE else bundle.target_domain
        return Reason.UNKNOWN_ITEM, f"item {shorten(event.item_id)} is not a {name} item"
    return None


@dataclass(frozen=True)
class EventPolicy:
    """The input limits of streamed events (from :class:`~coldbridge_server.config.Settings`).

    Parameters
    ----------
    max_id_bytes
        Longest event, user or item id in UTF-8 bytes.
    min_rating, max_rating
        Accepted range of a rating.
    ratings
        Whether ratings are accepted at all (the bundle was trained on explicit feedback).
    """

    max_id_bytes: int = 256
    min_rating: float = 0.0
    max_rating: float = 10.0
    ratings: bool = True

    def check_ids(self, index: int, event: Event) -> None:
        """Raise :class:`InvalidRequestError` naming ``events[index].<field>`` for an id
        over ``max_id_bytes``."""
        for name in ("event_id", "user_id", "item_id"):
            check_id(f"events[{index}].{name}", getattr(event, name), self.max_id_bytes)

    def problem(self, event: Event, timestamp: tuple[int, int] | None) -> str | None:
        """Why ``event`` breaks the value limits (a rejection message), or ``None``.

        ``timestamp`` is the message's ``(seconds, nanos)``, ``None`` when unset.
        """
        value = event.value
        if not math.isfinite(value):
            return f"value: must be finite, got {value}"
        if event.kind is Kind.RATING:
            if not self.ratings:
                return (
                    "kind: EVENT_KIND_RATING is not accepted, the bundle was trained on "
                    "implicit feedback (send EVENT_KIND_IMPLICIT)"
                )
            if not self.min_rating <= value <= self.max_rating:
                return (
                    f"value: rating {value} is outside "
                    f"[min_rating={self.min_rating}, max_rating={self.max_rating}]"
                )
        if timestamp is not None:
            problem = timestamp_problem(*timestamp)
            if problem is not None:
                return f"timestamp: {problem}"
        return None


def is_plain_target(event: Event, target_items: Mapping[str, int]) -> bool:
    """Whether ``event`` is a well-formed implicit event of a known target item.

    The writer's fast path: ``True`` implies ``validate(event, bundle) is None``; ``False``
    means "call :func:`validate`" (the event may still be valid).
    """
    return (
        event.domain is Domain.TARGET
        and event.kind is Kind.IMPLICIT
        and bool(event.event_id)
        and bool(event.user_id)
        and bool(event.item_id)
        and event.item_id in target_items
    )


def admit(
    events: Sequence[Event], bundle: Bundle, ids: set[str], *, valid: bool = False
) -> tuple[list[Event], list[Rejection]]:
    """Split a batch into the events to apply and rejections; add the applied ids to ``ids``.

    ``ids`` are the applied event ids: an event whose id is among them (or earlier in the
    batch) is a duplicate. ``valid`` skips :func:`validate` (the events were validated
    against ``bundle`` already).
    """
    items = bundle.target_item_index
    ok: list[Event] = []
    bad: list[Rejection] = []
    for index, event in enumerate(events):
        eid = event.event_id
        if (valid or is_plain_target(event, items)) and eid not in ids:
            ids.add(eid)
            ok.append(event)
            continue
        problem = validate(event, bundle)
        if problem is None and eid in ids:
            problem = (Reason.DUPLICATE_EVENT, "event_id was already applied")
        if problem is None:
            ids.add(eid)
            ok.append(event)
        else:
            bad.append(Rejection(index, eid, *problem))
    return ok, bad


def check_batch(sequence: int, previous: int | None, size: int, max_events: int) -> None:
    """Stream protocol checks of one batch.

    Raises
    ------
    InvalidRequestError
        If the batch holds more than ``max_events`` events or its ``sequence`` does not
        increase over ``previous``.
    """
    if size > max_events:
        raise InvalidRequestError("events", f"{size} events exceed max_batch_events={max_events}")
    if previous is not None and sequence <= previous:
        raise InvalidRequestError("sequence", f"{sequence} does not increase (previous {previous})")
