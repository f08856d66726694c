"""Event-log retention of the Redis store.

Retention (``event_retention_seconds`` / ``event_retention_events``) trims each partition's
stream with :data:`~.redis_scripts.TRIM`, run by whichever replica just wrote a snapshot:

* only entries every stored snapshot covers (ids up to the lowest cursor of the bundle
  versions a partition keeps snapshots of, one of them the trimming replica's), so start-up
  on either version of a roll-out (its snapshot + the stream after it) still finds every
  event;
* of those, the entries beyond the newest ``keep`` of the partition, or whose stream id
  (Redis's millisecond clock when it logged them) is older than ``max_age_ms``;
* with the event ids that point to them, in the same script: the idempotency window ends
  exactly when the entry is gone;
* at most ``limit`` entries per script call (Redis is blocked only that long), and at most
  ``calls`` calls per partition and snapshot.

The script records the last deleted id as the partition's trim point (``trimmed`` in its
meta). A replica whose cursor is below it missed entries that are gone:
:meth:`~.redis_store.RedisEventStore.read` raises
:class:`~.redis_store.LogTrimmed`, and the replica re-bootstraps the partition from the snapshot
and the stream after it (:meth:`~.replicated.ReplicatedIngestor.bootstrap_partition`).
"""

from __future__ import annotations

from coldbridge_server.streaming.redis_client import translated
from coldbridge_server.streaming.redis_codec import keys
from coldbridge_server.streaming.redis_scripts import TRIM
from coldbridge_server.streaming.redis_store import RedisEventStore

__all__ = ["trim"]

_CHUNK = 1000


def trim(
    store: RedisEventStore,
    p: int,
    version: str,
    *,
    keep: int = 0,
    max_age_ms: int = 0,
    limit: int = _CHUNK,
    calls: int = 64,
) -> int:
    """Apply retention to partition ``p`` (see the module docs); return the entries deleted.

    ``keep``: the newest entries of the partition kept (0: no limit); ``max_age_ms``: older
    entries are deleted (0: no limit). Both 0: nothing is deleted.
    """
    if not keep and not max_age_ms:
        return 0
    log, ids, _, meta = keys(p)
    script = store.client.register_script(TRIM)
    deleted = 0
    for _ in range(calls):
        with translated("compact"):
            n, more = script(keys=[log, ids, meta], args=[version, keep, max_age_ms, limit])
        deleted += int(n)
        if not more:
            break
    return deleted
