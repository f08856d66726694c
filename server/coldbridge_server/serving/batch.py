"""Dynamic batching of top-k scoring across concurrent requests.

Scoring one user against the whole catalogue reads the full item matrix (25 MiB for
100k items x 64 dims): it is memory-bound, and scoring B users at once costs little more
than scoring one. :class:`TopkBatcher` lets concurrent Recommend handlers share that read.

There is no timer: a single worker takes *everything queued* when it becomes free (up to
``max_batch``) and runs it as one ``[B, d]`` batch. An idle server therefore adds no
waiting (a lone request is run at once), while under load requests that arrive during a
run are merged into the next one ("continuous batching").
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np

__all__ = ["TopkBatcher"]

TopkFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class _Pending:
    __slots__ = ("vector", "k", "done", "scores", "indices", "error")

    def __init__(self, vector: np.ndarray, k: int) -> None:
        self.vector, self.k = vector, k
        self.done = threading.Event()
        self.scores: np.ndarray | None = None
        self.indices: np.ndarray | None = None
        self.error: BaseException | None = None


class TopkBatcher:
    """Merge concurrent top-k calls into batched model runs.

    Parameters
    ----------
    topk
        ``topk(user_vectors [B, d], k) -> (scores [B, k], indices [B, k])``, best first.
    max_batch
        Most requests per model run.
    observe_batch
        Optional callback receiving each run's batch size (for the metrics histogram).

    Examples
    --------
    >>> items = np.eye(3, dtype=np.float32)
    >>> def topk(u, k):
    ...     s = u @ items.T
    ...     idx = np.argsort(-s, axis=1)[:, :k]
    ...     return np.take_along_axis(s, idx, 1), idx
    >>> batcher = TopkBatcher(topk, max_batch=8)
    >>> scores, indices = batcher.topk(np.array([0.1, 0.9, 0.5], dtype=np.float32), 2)
    >>> indices.tolist()
    [1, 2]
    >>> batcher.close()
    """

    def __init__(
        self,
        topk: TopkFn,
        *,
        max_batch: int = 64,
        observe_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._topk = topk
        self.max_batch = max_batch
        self._observe = observe_batch
        self._queue: deque[_Pending] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(
            target=self._run, name="coldbridge-topk-batcher", daemon=True
        )
        self._worker.start()

    def topk(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of one user vector ``[d]``: ``(scores [k], indices [k])``."""
        pending = _Pending(vector, k)
        with self._cv:
            if self._closed:
                raise RuntimeError("batcher is closed")
            self._queue.append(pending)
            self._cv.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.scores is not None and pending.indices is not None
        return pending.scores, pending.indices

    def close(self) -> None:
        """Stop the worker after the queued requests are served."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._worker.join(timeout=10)

    def _take(self) -> list[_Pending] | None:
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if not self._queue:
                return None
            count = min(len(self._queue), self.max_batch)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                k = max(p.k for p in batch)
                scores, indices = self._topk(np.stack([p.vector for p in batch]), k)
                for row, p in enumerate(batch):
                    p.scores, p.indices = scores[row, : p.k], indices[row, : p.k]
                if self._observe is not None:
                    self._observe(len(batch))
            except BaseException as exc:  # handed to every waiting caller, never lost
                for p in batch:
                    p.error = exc
            finally:
                for p in batch:
                    p.done.set()
