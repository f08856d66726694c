"""What handlers queue for the ingest writer: batches and erasures, and their results.

Each request carries a ``threading.Event``; the writer sets the result (or the error) and
releases the waiting handler.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from coldbridge_server.bundle import Bundle
from coldbridge_server.streaming.validate import Event, Rejection

__all__ = ["BatchResult", "Erasure", "Pending", "Work"]


@dataclass(frozen=True)
class BatchResult:
    """Outcome of one batch: accepted count, rejections, log position of its last event."""

    accepted: int
    rejections: tuple[Rejection, ...]
    log_position: int


@dataclass(eq=False)
class Work:
    """A queued request for the writer; :meth:`wait` blocks until the writer handled it."""

    done: threading.Event = field(default_factory=threading.Event, init=False)
    error: BaseException | None = field(default=None, init=False)

    def fail(self, error: BaseException) -> None:
        """Release the waiter with ``error``."""
        self.error = error
        self.done.set()

    def _wait(self) -> None:
        self.done.wait()
        if self.error is not None:
            raise self.error


@dataclass(eq=False)
class Pending(Work):
    """A submitted batch; :meth:`wait` returns its result once durable and applied.

    ``checked`` is the bundle the submitter already validated ``events`` against: while it
    is the served one, the writer only looks for duplicates.
    """

    events: Sequence[Event] = ()
    checked: Bundle | None = None
    result: BatchResult | None = field(default=None, init=False)

    def wait(self) -> BatchResult:
        """Block until the writer processed the batch; re-raise its error if it failed."""
        self._wait()
        assert self.result is not None
        return self.result


@dataclass(eq=False)
class Erasure(Work):
    """A queued :meth:`Ingestor.delete_user`; :meth:`wait` returns the deleted events."""

    user_id: str = ""
    result: int | None = field(default=None, init=False)
    had_state: bool = field(default=False, init=False)

    def wait(self) -> int:
        """Block until the deletion is durable; return the number of deleted events."""
        self._wait()
        assert self.result is not None
        return self.result
