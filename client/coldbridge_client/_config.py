"""Value objects that configure a client: per-call deadlines, the gRPC retry policy, reconnects.

The retry policy becomes a gRPC *service config* (channel option ``grpc.service_config``):
gRPC itself retries a call that failed with one of the retryable codes, before any response
arrived, with exponential backoff, within the call's deadline. ``UNAVAILABLE`` is what the
server answers while it warms up and what a refused connection gives.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_RECONNECT",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "EVENTS_SERVICE",
    "RECOMMENDER_SERVICE",
    "ReconnectPolicy",
    "RetryPolicy",
    "Timeouts",
]

RECOMMENDER_SERVICE = "coldbridge.v1.Recommender"
EVENTS_SERVICE = "coldbridge.v1.Events"
_GRPC_MAX_ATTEMPTS = 5  # gRPC treats larger values as 5


@dataclass(frozen=True)
class Timeouts:
    """Default deadline of each call, in seconds (``None``: no deadline).

    Every client method also takes ``timeout=`` to override its default for one call.

    Examples
    --------
    >>> Timeouts(recommend=0.5).recommend
    0.5
    """

    recommend: float | None = 2.0
    score: float | None = 2.0
    model_info: float | None = 5.0
    ingest: float | None = 10.0
    user_state: float | None = 2.0
    reload: float | None = 600.0
    delete_user: float | None = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's client-side retry policy for the coldbridge services.

    Parameters
    ----------
    max_attempts
        Attempts of one call, the first included (2 to 5; gRPC caps it at 5).
    initial_backoff, max_backoff
        Seconds; the n-th retry waits a random time in ``[0, min(initial * multiplier**(n-1),
        max)]``.
    backoff_multiplier
        Growth of the backoff per retry.
    retryable_status_codes
        Status code names that are retried.

    Examples
    --------
    >>> RetryPolicy().service_config()["methodConfig"][0]["retryPolicy"]["initialBackoff"]
    '0.2s'
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 2.0
    backoff_multiplier: float = 2.0
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def __post_init__(self) -> None:
        if not 2 <= self.max_attempts <= _GRPC_MAX_ATTEMPTS:
            raise ValueError(
                f"max_attempts must be in 2..{_GRPC_MAX_ATTEMPTS}, got {self.max_attempts}"
            )
        if not 0 < self.initial_backoff <= self.max_backoff or self.backoff_multiplier <= 0:
            raise ValueError("need 0 < initial_backoff <= max_backoff and backoff_multiplier > 0")
        if not self.retryable_status_codes:
            raise ValueError("retryable_status_codes must not be empty")

    def service_config(self) -> dict[str, Any]:
        """Return the service config (as a dict) applying this policy to both services."""
        return {
            "methodConfig": [
                {
                    "name": [{"service": RECOMMENDER_SERVICE}, {"service": EVENTS_SERVICE}],
                    "retryPolicy": {
                        "maxAttempts": self.max_attempts,
                        "initialBackoff": _duration(self.initial_backoff),
                        "maxBackoff": _duration(self.max_backoff),
                        "backoffMultiplier": self.backoff_multiplier,
                        "retryableStatusCodes": list(self.retryable_status_codes),
                    },
                }
            ]
        }

    def channel_options(self) -> list[tuple[str, Any]]:
        """Return the channel options that enable this policy."""
        return [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", json.dumps(self.service_config())),
        ]


@dataclass(frozen=True)
class ReconnectPolicy:
    """How :class:`~coldbridge_client.EventStream` reopens a broken stream.

    Parameters
    ----------
    max_attempts
        Consecutive streams that may fail without any acknowledgement before the helper gives
        up (the pending events stay available in ``EventStream.unacked``).
    initial_backoff, max_backoff, backoff_multiplier
        The wait before the n-th consecutive reopening is random in
        ``[0, min(initial * multiplier**(n-1), max)]`` seconds ("full jitter").
    """

    max_attempts: int = 10
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 < self.initial_backoff <= self.max_backoff or self.backoff_multiplier <= 0:
            raise ValueError("need 0 < initial_backoff <= max_backoff and backoff_multiplier > 0")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Return the wait in seconds before reopening after ``failures`` failed streams."""
        ceiling = self.initial_backoff * self.backoff_multiplier ** max(failures - 1, 0)
        return (rng or random).uniform(0.0, min(ceiling, self.max_backoff))


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()
DEFAULT_RECONNECT = ReconnectPolicy()


def _duration(seconds: float) -> str:
    """Format seconds as a protobuf JSON Duration (``"0.2s"``; never an exponent)."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
