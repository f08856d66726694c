"""The writer thread of the ingest pipeline: a bounded queue of requests, handled in groups.

::

    handler threads --_put(work)--> Queue(queue_size) --> writer thread: take 1..64 requests,
       (block when full: backpressure)                     handle them under writer_lock;
                                                           retry a storage fault when due

:class:`Writer` holds the mechanics: the queue, the thread, stopping and draining it, the
lock a hot reload takes, and the retry timing of
:class:`~coldbridge_server.streaming.faults.StorageHealth`.
:class:`~coldbridge_server.streaming.ingest.Ingestor` says what handling a group means. The
thread never dies: an exception fails the group's waiters and marks health broken.
"""

from __future__ import annotations

import abc
import queue
import threading
from typing import TypeVar

from coldbridge_server.errors import ColdbridgeError, NotReadyError
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.streaming.faults import HealthCallback, StorageHealth
from coldbridge_server.streaming.work import Work

__all__ = ["Writer"]

_MAX_GROUP = 64
_W = TypeVar("_W", bound=Work)


class Writer(abc.ABC):
    """A queue of :class:`~coldbridge_server.streaming.work.Work` and the thread that takes it.

    Parameters
    ----------
    queue_size
        Requests that may wait for the writer; :meth:`_put` blocks beyond that.
    retry_seconds
        Pause between two attempts to recover from a storage fault.
    metrics
        Optional Prometheus metrics (the storage health's).
    """

    def __init__(
        self, *, queue_size: int, retry_seconds: float, metrics: Metrics | None = None
    ) -> None:
        self.health = StorageHealth(retry_seconds, metrics)
        self._queue: queue.Queue[Work | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self.writer_lock = threading.Lock()
        """Held by the writer while it processes a group; holding it pauses the writer (and
        grants the store to the holder: hot reload reads the log and swaps under it)."""
        self._submit_lock = threading.Lock()

    @property
    def on_health(self) -> HealthCallback | None:
        """``callback(serving, reason)`` on every change of the storage health."""
        return self.health.on_change

    @on_health.setter
    def on_health(self, callback: HealthCallback | None) -> None:
        self.health.on_change = callback

    @property
    def queued(self) -> int:
        """Requests waiting for the writer (approximate)."""
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        """Whether the writer thread accepts requests (after recovery, before close)."""
        return self._running.is_set()

    @abc.abstractmethod
    def _handle(self, work: list[Work]) -> None:
        """Handle one group of requests, in order (under ``writer_lock``)."""

    @abc.abstractmethod
    def _retry(self) -> None:
        """During a storage fault, once per ``retry_seconds``: try to recover."""

    def _start_writer(self) -> None:
        self._thread = threading.Thread(target=self._run, name="coldbridge-ingest", daemon=True)
        self._running.set()
        self._thread.start()

    def _stop_writer(self) -> bool:
        """Stop the writer after the queued requests; ``False`` if it was not running."""
        if self._thread is None or not self._running.is_set():
            return False
        with self._submit_lock:
            self._running.clear()
            self._queue.put(None)
        self._thread.join()
        return True

    def _put(self, work: _W) -> _W:
        with self._submit_lock:
            if not self._running.is_set():
                raise NotReadyError("the event ingest is not running")
            self._queue.put(work)
        return work

    def _run(self) -> None:
        """The writer: take up to 64 requests, handle them; never dies on an exception."""
        stop = False
        while not stop:
            group: list[Work | None] = []
            try:
                group.append(self._queue.get(timeout=self.health.wait_timeout()))
            except queue.Empty:
                pass  # a storage retry is due
            while group and group[-1] is not None and len(group) < _MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in group
            with self.writer_lock:  # holding it pauses the writer (hot reload)
                self._guarded([w for w in group if isinstance(w, Work)])
        while True:  # nothing can be queued any more (_put checks _running under the lock)
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                return
            if left is not None:
                left.fail(NotReadyError("the server is shutting down"))

    def _guarded(self, work: list[Work]) -> None:
        try:
            if self.health.retry_due():
                self._retry()
            self._handle(work)
        except Exception as exc:  # a bug: visible in health and to the waiters, never silent
            self.health.fatal("writer", exc)
            error = ColdbridgeError(f"ingest failed: {exc}")
            for item in work:
                if not item.done.is_set():
                    item.fail(error)
