"""The history blend's fast path, prepared once per published user state.

:class:`AffineBlend` is what a request needs of a vector user's blend (their support ranked
and scored), :class:`PreparedBlends` keeps it per user within a memory budget, and
:class:`BlendPreparer` builds it off the request and ack paths as states are published.

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
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coldbridge_server.core import Blend, UserState

__all__ = ["AffineBlend", "BlendPreparer", "PreparedBlends", "prepared_bytes"]

logger = logging.getLogger(__name__)

_ENTRY_OVERHEAD = 1024


@dataclass(frozen=True, eq=False)
class AffineBlend:
    """A vector user's served scores: ``scale * (V_t u + b_t) + shift + bonus`` (module docs).

    ``support`` (sorted) lists the items with a history bonus and ``served`` their served
    scores (float32, as :meth:`HistoryModel.blend` returns them); ``ranked`` is the support
    best first (ties by index), ``ranked_served`` its scores. All of it only changes with
    the user's events, so it is built once per published user state
    (:class:`PreparedBlends`) and a request only merges (:meth:`merge_top`). Memory: 16 bytes
    per support item.
    """

    vector: np.ndarray
    vector32: np.ndarray
    scale: float
    shift: float
    support: np.ndarray
    served: np.ndarray
    ranked: np.ndarray
    ranked_served: np.ndarray

    def served_at(self, idx: np.ndarray, transferred: np.ndarray) -> np.ndarray:
        """Served scores (float32) of items ``idx`` whose vector scores are ``transferred``."""
        out = self.scale * np.asarray(transferred, dtype=np.float64) + self.shift
        out = out.astype(np.float32)
        if len(self.support):
            pos = np.minimum(np.searchsorted(self.support, idx), len(self.support) - 1)
            hit = self.support[pos] == idx
            out[hit] = self.served[pos[hit]]
        return out

    def merge_top(
        self, indices: np.ndarray, transferred: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` of the blend from the model's top ``n`` (``indices``, vector scores).

        Every item outside the model's top ``n`` is beaten by each of those ``n`` items:
        by its own score (the blend is increasing in the vector score, and the bonus is
        positive) or, for a support item, by its own bonus score or by the ``n`` support
        items ranked above it. So the answer lies in the model's top ``n`` (scored without
        bonus) plus the support's top ``n`` (with it); an item in both keeps its better,
        bonus, score. Ranked by float32 served score, ties by item index:
        :meth:`HistoryModel.blend`'s ranking. Pure Python over ``2n`` pairs: cheaper than
        a dozen NumPy calls for the ``n`` a request asks for (``benchmarks/serving.py
        --history``).
        """
        scale, shift = self.scale, self.shift
        out = array("f", [s * scale + shift for s in transferred.tolist()])  # float32 rounding
        pairs = [(-s, i) for s, i in zip(out.tolist(), indices.tolist(), strict=True)]
        head = zip(self.ranked_served[:n].tolist(), self.ranked[:n].tolist(), strict=True)
        pairs += [(-s, i) for s, i in head]
        pairs.sort()
        items: list[int] = []
        served: list[float] = []
        for neg, item in pairs:
            if item not in items:  # at most 2n pairs: a list beats a set here
                items.append(item)
                served.append(-neg)
                if len(items) == n:
                    break
        return np.array(items, dtype=np.int64), np.array(served, dtype=np.float32)


_Prepared = tuple[UserState, np.ndarray, AffineBlend | None, Blend]


class PreparedBlends:
    """A map user id -> (state, vector, fast-path blend, blend) of their latest state,
    bounded in bytes.

    Readers take an entry without a lock and use it only if it was built from the very state
    and vector they hold (identity); writers insert under a lock and evict the oldest entries
    while the entries' arrays (:func:`prepared_bytes`) exceed ``max_bytes``.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: dict[str, tuple[_Prepared, int]] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str) -> _Prepared | None:
        """The entry of ``user_id``, or ``None``."""
        found = self._entries.get(user_id)
        return None if found is None else found[0]

    def put(self, user_id: str, entry: _Prepared) -> None:
        """Store ``entry`` as the newest; drop the oldest entries beyond ``max_bytes``."""
        size = prepared_bytes(entry[2])
        with self._lock:
            old = self._entries.pop(user_id, None)
            self.bytes += size - (0 if old is None else old[1])
            self._entries[user_id] = (entry, size)
            while self.bytes > self.max_bytes and len(self._entries) > 1:
                self.bytes -= self._entries.pop(next(iter(self._entries)))[1]

    def __len__(self) -> int:
        return len(self._entries)


def prepared_bytes(blend: AffineBlend | None) -> int:
    """Memory of one cached entry: its arrays plus ~1 KiB of Python objects."""
    if blend is None:
        return _ENTRY_OVERHEAD
    arrays = (blend.vector, blend.vector32, blend.support, blend.served, blend.ranked)
    return _ENTRY_OVERHEAD + sum(x.nbytes for x in arrays) + blend.ranked_served.nbytes


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
