"""Prepare the history blend of freshly published users off the request and ack paths.

A vector user's fast-path blend (:class:`~coldbridge_server.serving.blend.AffineBlend`)
only changes with their events, so it is built once per published state. Built lazily, the
first request after each event pays for it (about the cost of the rest of the request at
10k items); :class:`BlendPreparer` builds it in a background thread as soon as the state is
published instead. The writer only records the user id (a dict write under a lock), so
acknowledgements and freshness do not wait for it, and a request that comes first builds
the blend itself: a prepared blend is an optimisation, never a condition of correctness.
Users published several times before the thread gets to them are prepared once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from coldbridge_server.core import UserState

__all__ = ["BlendPreparer"]

logger = logging.getLogger(__name__)


class BlendPreparer:
    """Run ``prepare(user_id)`` in a daemon thread for each user whose state was published.

    Parameters
    ----------
    prepare
        Builds and caches the user's blend (``UserResolver.prepare``).
    capacity
        Most users waiting; beyond it the oldest are dropped (their first request builds
        their blend), so a start-up recovery of many users cannot queue unbounded work.
    """

    def __init__(self, prepare: Callable[[str], None], *, capacity: int) -> None:
        self._prepare = prepare
        self.capacity = capacity
        self._pending: dict[str, None] = {}
        self._busy = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name="coldbridge-blend-prepare", daemon=True
        )
        self._thread.start()

    def published(self, state: UserState) -> None:
        """Queue ``state``'s user (a :meth:`~coldbridge_server.core.UserStates.subscribe`
        listener)."""
        if state.target_events <= 0:
            return
        with self._cv:
            self._pending[state.user_id] = None
            if len(self._pending) > self.capacity:
                del self._pending[next(iter(self._pending))]
            self._cv.notify()

    def idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running; whether that happened within ``timeout``."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _take(self) -> str:
        with self._cv:
            self._busy = False
            self._cv.notify_all()
            while not self._pending:
                self._cv.wait()
            self._busy = True
            user_id = next(iter(self._pending))
            del self._pending[user_id]
            return user_id

    def _run(self) -> None:
        while True:
            user_id = self._take()
            try:
                self._prepare(user_id)
            except Exception:  # an optimisation: the request path builds it instead
                logger.exception("preparing the history blend of %r failed", user_id)
