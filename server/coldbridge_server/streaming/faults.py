"""Storage faults of the ingest writer: what is broken, since when, and what health says.

The writer reports each failed or successful storage operation here. While any operation is
failing, the ``coldbridge.v1.Events`` health status is ``NOT_SERVING`` (``app.py`` wires the
callback to the health servicer) and ``coldbridge_storage_ok`` is 0; the writer retries every
``retry_seconds`` (the failed snapshot, or a probe write) and health turns ``SERVING`` again
by itself once every operation succeeds. An error the writer cannot recover from (the
in-memory state may no longer match the log) keeps health ``NOT_SERVING`` until a restart,
which rebuilds the state from the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from coldbridge_server.errors import StorageError, StorageFullError
from coldbridge_server.observability.metrics import Metrics

__all__ = ["HealthCallback", "StorageHealth", "fault_kind"]

logger = logging.getLogger(__name__)
HealthCallback = Callable[[bool, str], None]
"""``callback(serving, reason)``: called on every change of the writer's health."""


def fault_kind(exc: BaseException) -> str:
    """The ``kind`` label of a failure: ``full``, ``io`` or ``other``."""
    if isinstance(exc, StorageFullError):
        return "full"
    return "io" if isinstance(exc, (StorageError, OSError)) else "other"


class StorageHealth:
    """The failing storage operations of one writer, and the health they imply.

    Parameters
    ----------
    retry_seconds
        Pause between two recovery attempts during a fault.
    metrics
        Optional Prometheus metrics (``coldbridge_storage_*``).
    """

    def __init__(self, retry_seconds: float, metrics: Metrics | None = None) -> None:
        self.retry_seconds = retry_seconds
        self.metrics = metrics
        self.on_change: HealthCallback | None = None
        self.faults: dict[str, str] = {}
        self.broken: str | None = None
        self._next_retry = 0.0

    @property
    def serving(self) -> bool:
        """Whether the durable state is writable (no fault, nothing broken)."""
        return not self.faults and self.broken is None

    @property
    def reason(self) -> str:
        """Why health is ``NOT_SERVING`` (empty while serving)."""
        parts = ([self.broken] if self.broken else []) + list(self.faults.values())
        return "; ".join(parts)

    def failed(self, operation: str, exc: BaseException) -> None:
        """Record a failed ``operation`` (logged, counted, health ``NOT_SERVING``)."""
        kind, again = fault_kind(exc), operation in self.faults
        if again:  # once per retry: no traceback
            logger.warning("storage %s still failing (%s): %s", operation, kind, exc)
        else:
            logger.error("storage %s failed (%s): %s", operation, kind, exc, exc_info=exc)
        self._count(operation, kind)
        was = self.serving
        self.faults[operation] = f"{operation}: {exc}"
        self._next_retry = time.monotonic() + self.retry_seconds
        self._changed(was)

    def succeeded(self, *operations: str) -> None:
        """Clear the faults of ``operations`` (health ``SERVING`` once none is left)."""
        if not any(op in self.faults for op in operations):
            return
        was = self.serving
        for operation in operations:
            self.faults.pop(operation, None)
        logger.info("storage %s works again", "/".join(operations))
        self._changed(was)

    def fatal(self, operation: str, exc: BaseException) -> None:
        """Record an error the writer cannot recover from: ``NOT_SERVING`` until a restart."""
        logger.critical(
            "%s failed; the online state may not match the event log until a restart: %s",
            operation,
            exc,
            exc_info=exc,
        )
        self._count(operation, fault_kind(exc))
        was = self.serving
        self.broken = f"{operation} failed, restart needed: {exc}"
        self._changed(was)

    def retry_due(self) -> bool:
        """Whether a fault is pending and its retry time has come (then re-armed)."""
        if not self.faults or time.monotonic() < self._next_retry:
            return False
        self._next_retry = time.monotonic() + self.retry_seconds
        return True

    def wait_timeout(self) -> float | None:
        """How long the writer may block on its queue (``None``: no retry pending)."""
        if not self.faults:
            return None
        return max(0.0, self._next_retry - time.monotonic())

    def _count(self, operation: str, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.storage_errors.labels(operation, kind).inc()

    def _changed(self, was: bool) -> None:
        """Report a change, and every failure again (the status may have been overwritten,
        e.g. by the end of the warm-up, which sets every service SERVING)."""
        now = self.serving
        if now and was:
            return
        if self.metrics is not None:
            self.metrics.storage_ok.set(1 if now else 0)
        if now:
            logger.warning("event storage healthy again: Events health SERVING")
        elif was:
            logger.error("event storage failing, Events health NOT_SERVING: %s", self.reason)
        if self.on_change is not None:
            try:
                self.on_change(now, self.reason)
            except Exception:  # a broken callback must not stop the writer
                logger.exception("the storage health callback failed")
