"""Input limits shared by both services: id sizes, timestamp range, and echoes of client input.

Every string a client sends (user, item and event ids, strategy names) is at most
``max_id_bytes`` UTF-8 bytes (:func:`check_id`, :func:`check_ids`); a
``google.protobuf.Timestamp`` must lie in the range its definition allows
(:func:`timestamp_problem`); and a status or rejection message quotes client input only
through :func:`shorten`, so a huge value is never echoed back whole. The limits are
documented in docs/api.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from coldbridge_server.errors import InvalidRequestError

__all__ = [
    "ECHO_CHARS",
    "MAX_STATUS_CHARS",
    "TIMESTAMP_MAX_SECONDS",
    "TIMESTAMP_MIN_SECONDS",
    "check_id",
    "check_ids",
    "shorten",
    "timestamp_problem",
]

ECHO_CHARS: Final = 64
"""Characters of a client value quoted in a message; the rest is summarised by its size."""
MAX_STATUS_CHARS: Final = 1024
"""Longest status message the server sends (a last guard behind :func:`shorten`)."""
TIMESTAMP_MIN_SECONDS: Final = -62_135_596_800
"""0001-01-01T00:00:00Z, the smallest valid ``Timestamp.seconds``."""
TIMESTAMP_MAX_SECONDS: Final = 253_402_300_799
"""9999-12-31T23:59:59Z, the largest valid ``Timestamp.seconds``."""


def shorten(value: str, limit: int = ECHO_CHARS) -> str:
    """``repr(value)``, cut after ``limit`` characters with the value's size appended.

    Examples
    --------
    >>> shorten("v7")
    "'v7'"
    >>> shorten("x" * 100, limit=4)
    "'xxxx'… (100 bytes)"
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({_nbytes(value)} bytes)"


def check_id(field: str, value: str, max_bytes: int) -> None:
    """Raise :class:`InvalidRequestError` if ``value`` is longer than ``max_bytes`` in UTF-8.

    Examples
    --------
    >>> check_id("user_id", "u1", 4)
    >>> check_id("user_id", "ü" * 3, 4)
    Traceback (most recent call last):
    ...
    coldbridge_server.errors.InvalidRequestError: user_id: 6 bytes exceed max_id_bytes=4
    """
    # a str of n characters is n..4n UTF-8 bytes: encode only when the length cannot tell
    if len(value) * 4 <= max_bytes:
        return
    size = _nbytes(value)
    if size > max_bytes:
        raise InvalidRequestError(field, f"{size} bytes exceed max_id_bytes={max_bytes}")


def check_ids(field: str, values: Sequence[str], max_bytes: int) -> None:
    """:func:`check_id` of every entry of a repeated field (the error names the entry)."""
    if not values or max(map(len, values)) * 4 <= max_bytes:
        return
    for index, value in enumerate(values):
        check_id(f"{field}[{index}]", value, max_bytes)


def timestamp_problem(seconds: int, nanos: int) -> str | None:
    """Why ``Timestamp(seconds, nanos)`` is invalid, or ``None`` if it is valid.

    Valid: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z, nanos in 0..999,999,999
    (the range of the ``google.protobuf.Timestamp`` definition).

    Examples
    --------
    >>> timestamp_problem(0, 0) is None
    True
    >>> timestamp_problem(0, -5)
    'nanos=-5 is outside 0..999999999'
    """
    if not 0 <= nanos <= 999_999_999:
        return f"nanos={nanos} is outside 0..999999999"
    if not TIMESTAMP_MIN_SECONDS <= seconds <= TIMESTAMP_MAX_SECONDS:
        return (
            f"seconds={seconds} is outside {TIMESTAMP_MIN_SECONDS}..{TIMESTAMP_MAX_SECONDS} "
            "(0001-01-01 .. 9999-12-31)"
        )
    return None


def _nbytes(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))
